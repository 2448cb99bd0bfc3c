"""Code shared by the edge agent and the collector: the MQTT contract and small utilities."""
