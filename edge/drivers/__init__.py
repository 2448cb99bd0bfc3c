"""Field-bus sensor drivers (Modbus RTU, SDI-12, …) selected per bus in the farm file.

Each driver is one module here exposing ``DRIVER: DriverSpec`` (see ``edge.drivers.base``); the
registry finds it by the bus's ``driver`` name, so adding a driver touches nothing else.
"""
