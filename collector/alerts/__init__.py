"""The alerting service: rules from the farm files → alert state machine → SMS (modem/HTTP)."""
