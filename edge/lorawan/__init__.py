"""LoRaWAN sensors behind a network server (ChirpStack v4, The Things Stack v3): the agent
subscribes to the server's MQTT integration and turns each uplink into raw samples for the
committer, like any other source (docs/lorawan.md).

- ``events``: the network servers' JSON events → uplinks, joins, device statuses (pure);
- ``codecs``: vendors' payload layouts as data, and small pure decoders;
- ``sequence``: frame counters → new uplink, duplicate, rejoin, lost uplinks (pure);
- ``source``: the assembly (subscribe, decide, commit, acknowledge) and device health.
"""
