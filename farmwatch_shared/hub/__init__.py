"""The hub past one server: a clustered NATS JetStream instead of one Mosquitto (docs/scale-out.md).

``layout`` names the subjects, the stream, the presence bucket, the consumers and each user's
rights (definitions as data); ``server_config`` renders a node's configuration; ``link`` is one
NATS connection on its own event-loop thread; ``consumer`` the pull consumer the collector and
the alerting service read through; ``apply`` creates the definitions idempotently. Everything
here needs the ``hub`` extra (nats-py); nothing on the MQTT path imports it.
"""
