"""The farm file (``<farm>.toml``): one model of a farm, loaded and validated once, read by the
edge agent, the collector, the alerting service, the dashboards and the emulators alike.

``model`` holds the farm, its agents, sensors and field buses; ``alert_rules`` the alerts and
contacts; ``register_maps`` the Modbus device maps a farm file names (beside it, else shipped);
``directory`` loads every farm file of a farm directory; vessel geometry and calibration curves
are in :mod:`farmwatch_shared.calibration`.
"""
