"""Per-farm configuration (``<farm>.toml`` in the farm directory): agents, sensors, buses.

Sensors are declared as data: a frozen model per kind carrying its calibration and, for water
levels, the vessel geometry. The collector's alert rules and the dashboards read the same file.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from farmwatch_shared.calibration.curves import CalibrationRecord, SoilCurve
from farmwatch_shared.calibration.vessels import Positive, Transducer, Vessel
from farmwatch_shared.contract import IDENT_PATTERN, SensorKind
from farmwatch_shared.farm.alert_rules import AlertRule, Contact

Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]
Channel = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,8}$")]
VesselRole = Literal["rain_tank", "delivered_tank", "trough", "storage"]
"""A water-level sensor's vessel as the water balance counts it."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BusSource(_Frozen):
    """Where a sensor read over a field bus (Modbus RTU, SDI-12) gets its raw value."""

    bus: Ident
    """Id of the field bus (``[[buses]]``) the device is on."""
    address: int | str
    """Device address on the bus: Modbus unit id 1–247, SDI-12 address "0"–"9", "a"–"z"…"""
    point: str = Field(min_length=1, max_length=32)
    """Which value of the device: a register-map field (Modbus) or a value index (SDI-12)."""


class LorawanSource(_Frozen):
    """Where a sensor read over LoRaWAN gets its raw value: a point of one of its device's
    uplinks, as the device's codec decodes them."""

    lorawan: Ident
    """Id of the LoRaWAN device (``[[lorawan_devices]]``)."""
    point: str = Field(min_length=1, max_length=32)
    """Which value of the uplink: a point of the device's codec (``distance_mm``,
    ``moisture_pct``, ``depth_mm``…; see docs/lorawan.md) or a key of its ``object_fields``."""


class _SensorBase(_Frozen):
    id: Ident
    """Sensor id, unique in the farm: names the series in the database and the sensor in alert
    rules."""
    agent: Ident
    """Id of the agent (``[[agents]]``) that reads the sensor."""
    channel: Channel
    """Microcontroller channel the sensor is wired to (e.g. "U1"), unique per agent; a sensor
    on a field bus also takes a channel name of its own."""
    label: str = ""
    """Human name shown to operators, e.g. "Bebedero potrero norte"."""
    source: BusSource | LorawanSource | None = None
    """Set for sensors on a field bus or behind a LoRaWAN network server; unset for sensors on
    the FWL/1 microcontroller."""


class SoilMoistureSensor(_SensorBase):
    """Capacitive soil probe; raw counts → volumetric water content (%) by a polynomial."""

    kind: Literal[SensorKind.SOIL_MOISTURE]
    depth_cm: int = Field(default=20, ge=0)
    """Depth of the probe below the surface (shown on the dashboards)."""
    coefficients: tuple[float, ...] = Field(min_length=1)
    """c0 + c1·raw + c2·raw² + … gives VWC in %."""
    wilting_point_pct: float | None = Field(default=None, ge=0, le=100)
    """Volumetric water content at the soil's permanent wilting point: below it the pasture
    cannot draw water (the phone page draws the probe against it)."""
    field_capacity_pct: float | None = Field(default=None, ge=0, le=100)
    """Volumetric water content the soil holds after free drainage; above it the soil is
    saturated."""

    @model_validator(mode="after")
    def _wilting_below_capacity(self) -> SoilMoistureSensor:
        wilting, capacity = self.wilting_point_pct, self.field_capacity_pct
        if wilting is not None and capacity is not None and wilting >= capacity:
            raise ValueError("wilting_point_pct must be below field_capacity_pct")
        return self


class RainGauge(_SensorBase):
    """Tipping-bucket gauge; raw is the microcontroller's cumulative tip counter."""

    kind: Literal[SensorKind.RAIN]
    bucket_mm: Positive = 0.2
    """Rain per tip of the bucket."""
    counter_modulo: int = Field(default=65536, gt=1)
    """The tip counter rolls over to 0 at this value (65536 for a 16-bit counter)."""
    max_rate_mm_h: Positive = 300.0
    """Rain faster than this over an interval is not rain (a stuck or bouncing switch)."""
    min_tip_interval_ms: float = Field(default=50.0, ge=0)
    """A bucket cannot tip faster than this (switch debounce); more tips are bounces."""


class WaterLevelSensor(_SensorBase):
    """Level of a trough or tank → % of usable height and litres from the vessel geometry."""

    kind: Literal[SensorKind.WATER_LEVEL]
    transducer: Transducer
    """What measures the level: raw value → level above the vessel bottom."""
    vessel: Vessel
    """The trough or tank: usable height and level → litres."""
    clamp_margin_pct: float = Field(default=3.0, ge=0, le=20)
    """Readings this far outside 0–100 % are sensor noise and are clamped; beyond it they are
    impossible and quarantined."""
    role: VesselRole = "storage"
    """What the vessel is for the water balance (docs/web.md): "rain_tank" (fills from a roof
    or catchment: rises during and after rain are harvest), "delivered_tank" (filled by a water
    truck or a well pump: rises are deliveries), "trough" (cattle drink from it: falls are
    drunk), "storage" (any other tank: rises are deliveries, falls are drawn)."""
    fed_from: Ident | None = None
    """Id of the tank (a water_level sensor of this farm) that fills this trough or storage
    tank through a float valve or a pipe: its rises are a transfer out of that tank, not
    inflow."""
    animals: int | None = Field(default=None, ge=1, le=100_000)
    """Head of cattle drinking at this trough (troughs only): gives litres per animal per day."""
    harvest_lag_h: float | None = Field(default=None, ge=0, le=48)
    """Rain tanks only: rises up to this long after the last rain are still harvest (water
    running down gutters or a channel); later rises are deliveries. Unset: 2 h."""
    only_feeds_fed_vessels: bool = False
    """Tanks that feed troughs only: true when every litre leaving this tank goes to the vessels
    that name it in ``fed_from`` (no tap, no unmonitored trough), so all its falls are transfers
    and a float-valve trough's drinking hidden by its refill is counted as drunk."""

    @model_validator(mode="after")
    def _role_keys(self) -> WaterLevelSensor:
        if self.fed_from is not None and self.role not in ("trough", "storage"):
            raise ValueError(
                f"sensor {self.id}: fed_from is for troughs and storage tanks, not a {self.role}"
            )
        if self.fed_from == self.id:
            raise ValueError(f"sensor {self.id}: fed_from names the sensor itself")
        if self.animals is not None and self.role != "trough":
            raise ValueError(f"sensor {self.id}: animals drink at troughs, not a {self.role}")
        if self.harvest_lag_h is not None and self.role != "rain_tank":
            raise ValueError(f"sensor {self.id}: harvest_lag_h is for rain tanks only")
        if self.only_feeds_fed_vessels and self.role == "trough":
            raise ValueError(f"sensor {self.id}: a trough feeds no vessel")
        return self


SensorConfig = Annotated[
    SoilMoistureSensor | RainGauge | WaterLevelSensor, Field(discriminator="kind")
]


class MicrocontrollerSettings(_Frozen):
    """Settings compiled into the farm microcontroller's firmware (see firmware_configs/)."""

    firmware: str = "fw-mcu 1.0"
    """Firmware name and version built for this microcontroller."""
    baudrate: int = 9600
    """Serial line speed (8N1) between the microcontroller and the agent."""
    sample_interval_s: int = Field(default=60, ge=1)
    """How often the microcontroller samples every sensor."""
    hello_interval_s: int = Field(default=3600, ge=10)
    """How often the microcontroller sends its hello record (also sent at boot)."""
    buffer_readings: int = Field(default=512, ge=1)
    """Samples the firmware keeps in RAM until the agent acknowledges them."""


class BusDevice(_Frozen):
    """One device on a field bus and how often to poll it."""

    address: int | str
    """Device address on the bus, as sensors name it in ``source.address``."""
    interval_s: float = Field(default=60.0, gt=0)
    """How often the device is polled."""
    options: dict[str, str | int | float | bool] = {}
    """Driver-specific settings, e.g. ``register_map`` (Modbus), ``measure``, ``crc`` (SDI-12)."""


class BusConfig(_Frozen):
    """A serial field bus read directly by the agent (RS-485 Modbus RTU, SDI-12 adapter…)."""

    id: Ident
    """Bus id, unique in the farm; sensors name it in ``source.bus``."""
    agent: Ident
    """Id of the agent (``[[agents]]``) the bus adapter is plugged into."""
    driver: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
    """Name of a driver module in ``edge/drivers/`` (e.g. "modbus_rtu", "sdi12")."""
    port: str
    """Serial device of the bus adapter, e.g. "/dev/serial/by-id/usb-FTDI_USB-RS485-if00"."""
    baudrate: int = Field(default=9600, gt=0)
    """Serial line speed of the bus."""
    parity: Literal["N", "E", "O"] = "N"
    """Parity: none, even or odd."""
    stopbits: Literal[1, 2] = 1
    """Stop bits."""
    timeout_s: float = Field(default=1.0, gt=0)
    """How long to wait for a device's answer."""
    retries: int = Field(default=2, ge=0, le=10)
    """Further attempts after a request without a (valid) answer."""
    devices: tuple[BusDevice, ...] = Field(min_length=1)
    """The devices on the bus."""
    _farm_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _remember_farm_dir(self, info: ValidationInfo) -> BusConfig:
        if isinstance(info.context, dict) and isinstance(info.context.get("farm_dir"), Path):
            self._farm_dir = info.context["farm_dir"]
        return self

    @property
    def farm_dir(self) -> Path | None:
        """Directory of the farm file this bus was read from (None when built in code): drivers
        look their data up there first (``register_maps/<name>.toml``, see ``register_maps``)."""
        return self._farm_dir


DevEui = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$")]
TtsId = Annotated[str, Field(pattern=r"^[a-z0-9](?:-?[a-z0-9]){1,35}$")]
_CHIRPSTACK_APPLICATION = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_TTS_APPLICATION = r"^[a-z0-9](?:-?[a-z0-9]){1,35}@[a-z0-9](?:-?[a-z0-9]){1,35}$"


class LorawanDevice(_Frozen):
    """A battery LoRaWAN sensor behind a network server (ChirpStack v4 or The Things Stack v3)
    whose MQTT integration the agent subscribes to; its uplinks become readings of the sensors
    that name it in ``source.lorawan``."""

    id: Ident
    """Device id, unique in the farm; sensors name it in ``source.lorawan``."""
    agent: Ident
    """Id of the agent (``[[agents]]``) that subscribes to the network server for it."""
    network: Literal["chirpstack", "tts"]
    """The network server: ChirpStack v4 (``chirpstack``) or The Things Stack v3 / The Things
    Network (``tts``)."""
    application: str = Field(min_length=1, max_length=80)
    """The network server's application: a ChirpStack application id (a UUID), or
    ``<application id>@<tenant>`` on The Things Stack (``@ttn`` on The Things Network)."""
    dev_eui: DevEui | None = None
    """The device's DevEUI, 16 hex digits (required with ChirpStack, whose topics name it)."""
    device_id: TtsId | None = None
    """The Things Stack's end-device id (required with ``tts``, whose topics name it)."""
    codec: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
    """How its uplinks' bytes are decoded: a built-in codec (``dragino_ldds75``,
    ``dragino_dds75_lb``, ``dragino_lse01``, ``milesight_em500_swl``), or ``object`` to take the
    values the network server's own payload decoder produced (``object_fields``)."""
    object_fields: dict[str, str] = {}
    """With ``codec = "object"``: point name → dotted path of a number in the network server's
    decoded object (ChirpStack ``object``, The Things Stack ``decoded_payload``), e.g.
    ``{ distance_mm = "distance" }``."""

    @field_validator("dev_eui")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return None if value is None else value.lower()

    @model_validator(mode="after")
    def _addressable(self) -> LorawanDevice:
        if self.network == "chirpstack":
            if self.dev_eui is None:
                raise ValueError("a ChirpStack device needs its dev_eui")
            if not re.fullmatch(_CHIRPSTACK_APPLICATION, self.application):
                raise ValueError("a ChirpStack application is its id, a lower-case UUID")
        else:
            if self.device_id is None:
                raise ValueError("a The Things Stack device needs its device_id")
            if not re.fullmatch(_TTS_APPLICATION, self.application):
                raise ValueError(
                    'a The Things Stack application is "<application id>@<tenant>" (@ttn on TTN)'
                )
        if (self.codec == "object") != bool(self.object_fields):
            raise ValueError('object_fields go with codec = "object", and only with it')
        return self


class AgentConfig(_Frozen):
    """One Raspberry Pi edge agent and the microcontroller it reads."""

    id: Ident
    """Agent id, unique in the farm (``FARMWATCH_EDGE_AGENT_ID`` picks it on the Pi)."""
    serial_port: str = "/dev/ttyUSB0"
    """Serial device of the microcontroller (``FARMWATCH_EDGE_SERIAL_PORT`` overrides it)."""
    microcontroller: MicrocontrollerSettings = MicrocontrollerSettings()
    """The microcontroller's settings."""


class FarmInfo(_Frozen):
    """Who and where the farm is."""

    id: Ident
    """Farm id: in MQTT topics, in the database and as the farm's broker user."""
    name: str
    """Farm name shown to operators and in SMS."""
    timezone: str = "America/Mexico_City"
    """IANA time zone of the farm."""
    state: str = ""
    """State or region, e.g. "Oaxaca"."""


class FarmConfig(_Frozen):
    """A whole farm file."""

    farm: FarmInfo
    """Who and where the farm is."""
    agents: tuple[AgentConfig, ...] = Field(min_length=1)
    """The Raspberry Pi edge agents."""
    sensors: tuple[SensorConfig, ...] = ()
    """The sensors, one table each."""
    alerts: tuple[AlertRule, ...] = ()
    """The alert rules."""
    contacts: tuple[Contact, ...] = ()
    """Who receives the SMS alerts."""
    buses: tuple[BusConfig, ...] = ()
    """Field buses read directly by an agent."""
    soil_curves: tuple[SoilCurve, ...] = ()
    """Soil-moisture curves per soil type, named by calibration records."""
    calibrations: tuple[CalibrationRecord, ...] = ()
    """Dated calibration records of soil-moisture probes."""
    lorawan_devices: tuple[LorawanDevice, ...] = ()
    """LoRaWAN sensors, read through a network server's MQTT integration (docs/lorawan.md)."""

    @model_validator(mode="after")
    def _consistent(self) -> FarmConfig:
        agent_ids = [a.id for a in self.agents]
        if len(set(agent_ids)) != len(agent_ids):
            raise ValueError("agent ids must be unique")
        sensor_ids = [s.id for s in self.sensors]
        if len(set(sensor_ids)) != len(sensor_ids):
            raise ValueError("sensor ids must be unique")
        channels = [(s.agent, s.channel) for s in self.sensors]
        if len(set(channels)) != len(channels):
            raise ValueError("two sensors share one channel of the same agent")
        for sensor in self.sensors:
            if sensor.agent not in agent_ids:
                raise ValueError(f"sensor {sensor.id} names unknown agent {sensor.agent}")
        rule_ids = [rule.id for rule in self.alerts]
        if len(set(rule_ids)) != len(rule_ids):
            raise ValueError("alert rule ids must be unique")
        kinds = {s.id: s.kind for s in self.sensors}
        for rule in self.alerts:
            sensor_id = getattr(rule, "sensor", None)
            if sensor_id is not None and sensor_id not in kinds:
                raise ValueError(f"alert {rule.id} names unknown sensor {sensor_id}")
            wanted = _RULE_SENSOR_KIND.get(rule.type)
            if sensor_id is not None and wanted is not None and kinds[sensor_id] != wanted:
                raise ValueError(f"alert {rule.id}: {rule.type} needs a {wanted.value} sensor")
        self._check_buses(agent_ids)
        self._check_lorawan(agent_ids)
        self._check_calibrations(kinds)
        self._check_vessels()
        return self

    def _check_vessels(self) -> None:
        vessels = {s.id: s for s in self.sensors if isinstance(s, WaterLevelSensor)}
        fed = {s.fed_from for s in vessels.values() if s.fed_from is not None}
        for vessel in vessels.values():
            if vessel.fed_from is None:
                continue
            source = vessels.get(vessel.fed_from)
            if source is None:
                raise ValueError(
                    f"sensor {vessel.id}: fed_from names {vessel.fed_from}, not a water_level "
                    "sensor of this farm"
                )
            if source.role == "trough":
                raise ValueError(
                    f"sensor {vessel.id}: fed_from names {source.id}, a trough (troughs feed "
                    "no vessel)"
                )
            seen = [vessel.id]
            while source is not None:
                if source.id in seen:
                    raise ValueError(f"sensor {vessel.id}: fed_from goes round in a circle")
                seen.append(source.id)
                source = vessels.get(source.fed_from) if source.fed_from is not None else None
        for vessel in vessels.values():
            if vessel.only_feeds_fed_vessels and vessel.id not in fed:
                raise ValueError(
                    f"sensor {vessel.id}: only_feeds_fed_vessels, but no vessel names it in "
                    "fed_from"
                )

    def _check_buses(self, agent_ids: list[str]) -> None:
        buses = {b.id: b for b in self.buses}
        if len(buses) != len(self.buses):
            raise ValueError("bus ids must be unique")
        for bus in self.buses:
            if bus.agent not in agent_ids:
                raise ValueError(f"bus {bus.id} names unknown agent {bus.agent}")
            addresses = [str(d.address) for d in bus.devices]
            if len(set(addresses)) != len(addresses):
                raise ValueError(f"bus {bus.id}: two devices share an address")
        for sensor in self.sensors:
            if not isinstance(sensor.source, BusSource):
                continue
            owner = buses.get(sensor.source.bus)
            if owner is None:
                raise ValueError(f"sensor {sensor.id} names unknown bus {sensor.source.bus}")
            if owner.agent != sensor.agent:
                raise ValueError(f"sensor {sensor.id}: bus {owner.id} is on agent {owner.agent}")
            if str(sensor.source.address) not in {str(d.address) for d in owner.devices}:
                raise ValueError(
                    f"sensor {sensor.id}: no device {sensor.source.address} on bus {owner.id}"
                )

    def _check_lorawan(self, agent_ids: list[str]) -> None:
        devices = {d.id: d for d in self.lorawan_devices}
        if len(devices) != len(self.lorawan_devices):
            raise ValueError("LoRaWAN device ids must be unique")
        addresses = [
            (d.network, d.application, d.device_id or d.dev_eui) for d in self.lorawan_devices
        ]
        if len(set(addresses)) != len(addresses):
            raise ValueError("two LoRaWAN devices share one dev_eui / device_id")
        networks: dict[str, set[str]] = {}
        for device in self.lorawan_devices:
            if device.agent not in agent_ids:
                raise ValueError(f"LoRaWAN device {device.id} names unknown agent {device.agent}")
            networks.setdefault(device.agent, set()).add(device.network)
        for agent_id, kinds in networks.items():
            if len(kinds) > 1:
                raise ValueError(
                    f"agent {agent_id}: its LoRaWAN devices are on one network server (one "
                    f"broker per agent), not {' and '.join(sorted(kinds))}"
                )
        self._check_lorawan_sensors(devices)

    def _check_lorawan_sensors(self, devices: dict[str, LorawanDevice]) -> None:
        for sensor in self.sensors:
            if not isinstance(sensor.source, LorawanSource):
                continue
            owner = devices.get(sensor.source.lorawan)
            if owner is None:
                raise ValueError(
                    f"sensor {sensor.id} names unknown LoRaWAN device {sensor.source.lorawan}"
                )
            if owner.agent != sensor.agent:
                raise ValueError(
                    f"sensor {sensor.id}: LoRaWAN device {owner.id} is on agent {owner.agent}"
                )

    def lorawan_devices_of(self, agent_id: str) -> tuple[LorawanDevice, ...]:
        """The LoRaWAN devices one agent subscribes to."""
        return tuple(d for d in self.lorawan_devices if d.agent == agent_id)

    def _check_calibrations(self, kinds: dict[str, SensorKind]) -> None:
        curve_ids = {c.id for c in self.soil_curves}
        if len(curve_ids) != len(self.soil_curves):
            raise ValueError("soil curve ids must be unique")
        starts: dict[tuple[str, int], str] = {}
        for record in self.calibrations:
            # one instant, however its time zone is written (Z, -06:00, +00:00): one record
            start = (record.sensor, record.effective_ms)
            written = record.effective_from.isoformat()
            if start in starts:
                earlier = starts[start]
                raise ValueError(
                    f"calibration of {record.sensor}: two records take effect at one instant "
                    f"({earlier} and {written}, the same time in other time zones)"
                )
            starts[start] = written
            if kinds.get(record.sensor) is not SensorKind.SOIL_MOISTURE:
                raise ValueError(f"calibration names {record.sensor}, not a soil moisture sensor")
            if record.soil_curve is not None and record.soil_curve not in curve_ids:
                raise ValueError(
                    f"calibration of {record.sensor}: no soil curve {record.soil_curve}"
                )

    def buses_of(self, agent_id: str) -> tuple[BusConfig, ...]:
        """The field buses read by one agent."""
        return tuple(b for b in self.buses if b.agent == agent_id)

    def agent(self, agent_id: str | None) -> AgentConfig:
        """The agent with this id, or the only agent when ``agent_id`` is None."""
        if agent_id is None:
            if len(self.agents) != 1:
                raise FarmConfigError("this farm has several agents: set the agent id")
            return self.agents[0]
        for agent in self.agents:
            if agent.id == agent_id:
                return agent
        raise FarmConfigError(f"no agent {agent_id!r} in farm {self.farm.id}")

    def sensors_of(self, agent_id: str) -> tuple[SensorConfig, ...]:
        """The sensors wired to one agent."""
        return tuple(s for s in self.sensors if s.agent == agent_id)


_RULE_SENSOR_KIND = {
    "level_below": SensorKind.WATER_LEVEL,
    "days_left_below": SensorKind.WATER_LEVEL,
    "level_falling_faster": SensorKind.WATER_LEVEL,
    "soil_moisture_below": SensorKind.SOIL_MOISTURE,
    "rain_deficit": SensorKind.RAIN,
}


class FarmConfigError(ValueError):
    """A farm file that cannot be used; the message says what is wrong and where."""


def load_farm_config(path: Path) -> FarmConfig:
    """Read and validate a farm file; raise FarmConfigError with a readable message."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FarmConfigError(f"{path}: cannot read: {exc}") from None
    except UnicodeDecodeError as exc:
        raise FarmConfigError(f"{path}: not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FarmConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise FarmConfigError(f"{path}: not valid TOML: nested too deeply") from None
    try:
        return FarmConfig.model_validate(data, context={"farm_dir": path.absolute().parent})
    except RecursionError:
        raise FarmConfigError(f"{path}: nested too deeply") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise FarmConfigError(f"{path}: {problems}") from None
