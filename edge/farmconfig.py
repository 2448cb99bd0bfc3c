"""Per-farm configuration (``firmware_configs/<farm>.toml``): agents, microcontrollers, sensors.

Sensors are declared as data: a frozen model per kind carrying its calibration and, for water
levels, the vessel geometry. The collector's alert rules and the dashboards read the same file.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from farmwatch_shared.alert_rules import AlertRule, Contact
from farmwatch_shared.contract import IDENT_PATTERN, SensorKind

Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]
Channel = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,8}$")]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VerticalCylinder(_Frozen):
    """Round tank standing upright."""

    shape: Literal["vertical_cylinder"]
    diameter_mm: Positive
    height_mm: Positive

    @property
    def usable_height_mm(self) -> float:
        return self.height_mm

    def volume_l(self, level_mm: float) -> float:
        """Litres held at ``level_mm`` above the bottom."""
        radius_dm = self.diameter_mm / 200.0
        return math.pi * radius_dm**2 * (level_mm / 100.0)


class RectangularTrough(_Frozen):
    """Box-shaped trough or tank with vertical walls."""

    shape: Literal["rectangular"]
    length_mm: Positive
    width_mm: Positive
    height_mm: Positive

    @property
    def usable_height_mm(self) -> float:
        return self.height_mm

    def volume_l(self, level_mm: float) -> float:
        """Litres held at ``level_mm`` above the bottom."""
        return (self.length_mm / 100.0) * (self.width_mm / 100.0) * (level_mm / 100.0)


class HorizontalCylinder(_Frozen):
    """Cylindrical tank lying on its side."""

    shape: Literal["horizontal_cylinder"]
    diameter_mm: Positive
    length_mm: Positive

    @property
    def usable_height_mm(self) -> float:
        return self.diameter_mm

    def volume_l(self, level_mm: float) -> float:
        """Litres held at ``level_mm`` above the bottom (circular segment × length)."""
        r = self.diameter_mm / 200.0  # dm
        h = min(max(level_mm / 100.0, 0.0), 2 * r)
        segment = r * r * math.acos((r - h) / r) - (r - h) * math.sqrt(max(2 * r * h - h * h, 0.0))
        return segment * (self.length_mm / 100.0)


Vessel = Annotated[
    VerticalCylinder | RectangularTrough | HorizontalCylinder, Field(discriminator="shape")
]


class UltrasonicTransducer(_Frozen):
    """Distance sensor above the water: raw value is the distance to the surface in mm."""

    type: Literal["ultrasonic"]
    mount_height_mm: Positive
    """Distance from the sensor face to the vessel bottom."""

    def level_mm(self, raw: float) -> float:
        return self.mount_height_mm - raw


class PressureTransducer(_Frozen):
    """Submerged hydrostatic sensor: raw value is gauge pressure in kPa."""

    type: Literal["pressure"]
    offset_kpa: float = 0.0
    density_kg_m3: Positive = 1000.0
    sensor_elevation_mm: float = 0.0
    """Height of the sensor above the vessel bottom."""

    def level_mm(self, raw: float) -> float:
        return (raw - self.offset_kpa) * 1e6 / (self.density_kg_m3 * 9.80665) + (
            self.sensor_elevation_mm
        )


Transducer = Annotated[UltrasonicTransducer | PressureTransducer, Field(discriminator="type")]


class _SensorBase(_Frozen):
    id: Ident
    agent: Ident
    channel: Channel
    label: str = ""
    """Human name shown to operators, e.g. "Bebedero potrero norte"."""


class SoilMoistureSensor(_SensorBase):
    """Capacitive soil probe; raw counts → volumetric water content (%) by a polynomial."""

    kind: Literal[SensorKind.SOIL_MOISTURE]
    depth_cm: int = Field(default=20, ge=0)
    coefficients: tuple[float, ...] = Field(min_length=1)
    """c0 + c1·raw + c2·raw² + … gives VWC in %."""


class RainGauge(_SensorBase):
    """Tipping-bucket gauge; raw is the microcontroller's cumulative tip counter."""

    kind: Literal[SensorKind.RAIN]
    bucket_mm: Positive = 0.2
    counter_modulo: int = Field(default=65536, gt=1)


class WaterLevelSensor(_SensorBase):
    """Level of a trough or tank → % of usable height and litres from the vessel geometry."""

    kind: Literal[SensorKind.WATER_LEVEL]
    transducer: Transducer
    vessel: Vessel
    clamp_margin_pct: float = Field(default=3.0, ge=0, le=20)
    """Readings this far outside 0–100 % are sensor noise and are clamped; beyond it they are
    impossible and quarantined."""


SensorConfig = Annotated[
    SoilMoistureSensor | RainGauge | WaterLevelSensor, Field(discriminator="kind")
]


class MicrocontrollerSettings(_Frozen):
    """Settings compiled into the farm microcontroller's firmware (see firmware_configs/)."""

    firmware: str = "fw-mcu 1.0"
    baudrate: int = 9600
    sample_interval_s: int = Field(default=60, ge=1)
    hello_interval_s: int = Field(default=3600, ge=10)
    buffer_readings: int = Field(default=512, ge=1)
    """Samples the firmware keeps in RAM until the agent acknowledges them."""


class AgentConfig(_Frozen):
    """One Raspberry Pi edge agent and the microcontroller it reads."""

    id: Ident
    serial_port: str = "/dev/ttyUSB0"
    microcontroller: MicrocontrollerSettings = MicrocontrollerSettings()


class FarmInfo(_Frozen):
    """Who and where the farm is."""

    id: Ident
    name: str
    timezone: str = "America/Mexico_City"
    state: str = ""


class FarmConfig(_Frozen):
    """A whole farm file."""

    farm: FarmInfo
    agents: tuple[AgentConfig, ...] = Field(min_length=1)
    sensors: tuple[SensorConfig, ...] = ()
    alerts: tuple[AlertRule, ...] = ()
    contacts: tuple[Contact, ...] = ()

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
        return self

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
    except tomllib.TOMLDecodeError as exc:
        raise FarmConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return FarmConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise FarmConfigError(f"{path}: {problems}") from None
