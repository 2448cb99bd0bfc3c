"""farmwatch edge agent: runs on the farm's Raspberry Pi, reads sensors, publishes over MQTT."""
