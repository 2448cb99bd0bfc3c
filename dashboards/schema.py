"""The schema of the dashboard JSON this project generates (the fields we emit, nothing else),
as strict pydantic models. Grafana accepts more; these pin down what we rely on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dashboards.influxql import DATASOURCE_TYPE, DATASOURCE_UID


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasourceRef(_Strict):
    """A panel's or query's data source: always the farmwatch InfluxDB one."""

    type: str
    uid: str

    @model_validator(mode="after")
    def _farmwatch(self) -> DatasourceRef:
        if (self.type, self.uid) != (DATASOURCE_TYPE, DATASOURCE_UID):
            raise ValueError("every query must use the farmwatch InfluxDB datasource")
        return self


class Target(_Strict):
    """One InfluxQL query of a panel, filtered by the time range and the farm variable."""

    refId: str = Field(pattern=r"^[A-Z]$")
    datasource: DatasourceRef
    query: str = Field(pattern=r"^(SELECT|SHOW) ")
    rawQuery: Literal[True]
    resultFormat: Literal["time_series", "table"]
    alias: str | None = None
    hide: bool | None = None

    @model_validator(mode="after")
    def _filtered(self) -> Target:
        selecting = self.query.startswith("SELECT")
        if selecting and ("$timeFilter" not in self.query or "/^$farm$/" not in self.query):
            raise ValueError("panel queries must use $timeFilter and the farm variable")
        return self


class GridPos(_Strict):
    """Where a panel sits on Grafana's 24-column grid."""

    x: int = Field(ge=0, lt=24)
    y: int = Field(ge=0)
    w: int = Field(gt=0, le=24)
    h: int = Field(gt=0)

    @model_validator(mode="after")
    def _inside(self) -> GridPos:
        if self.x + self.w > 24:
            raise ValueError("panel wider than the 24-column grid")
        return self


class ThresholdStep(_Strict):
    """One colour step of a threshold scale (``value`` None: the base colour)."""

    color: str
    value: float | None


class Thresholds(_Strict):
    """Absolute colour thresholds of a field."""

    mode: Literal["absolute"]
    steps: list[ThresholdStep] = Field(min_length=1)


class Matcher(_Strict):
    """Which series an override applies to (by name or regular expression)."""

    id: Literal["byName", "byRegexp"]
    options: str


class Property(_Strict):
    """One field property an override sets."""

    id: str
    value: Any = None


class Override(_Strict):
    """Field properties changed for the matching series."""

    matcher: Matcher
    properties: list[Property] = Field(min_length=1)


class FieldDefaults(_Strict):
    """Unit, decimals, range, thresholds and mappings of a panel's fields."""

    unit: str | None = None
    decimals: float | None = None
    min: float | None = None
    max: float | None = None
    thresholds: Thresholds | None = None
    mappings: list[dict[str, Any]] | None = None
    custom: dict[str, Any] | None = None
    noValue: str | None = None


class FieldConfig(_Strict):
    """A panel's field defaults and per-series overrides."""

    defaults: FieldDefaults
    overrides: list[Override] = []


class Panel(_Strict):
    """A stat, time-series or table panel with its queries and layout."""

    id: int = Field(gt=0)
    type: Literal["stat", "timeseries", "table"]
    title: str = Field(min_length=3)
    description: str = Field(min_length=10)
    datasource: DatasourceRef
    gridPos: GridPos
    targets: list[Target] = Field(min_length=1)
    fieldConfig: FieldConfig
    options: dict[str, Any]
    transparent: bool
    repeatDirection: Literal["h", "v"]
    timeFrom: str | None = Field(default=None, pattern=r"^\d+[mhdwy]$")
    timeShift: str | None = Field(default=None, pattern=r"^\d+[mhdwy]$")
    interval: str | None = Field(default=None, pattern=r"^\d+[smhd]$")
    transformations: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _unique_refs(self) -> Panel:
        refs = [t.refId for t in self.targets]
        if len(set(refs)) != len(refs):
            raise ValueError("duplicate refId")
        return self


class Variable(_Strict):
    """The ``farm`` template variable (one farm, several or all)."""

    name: Literal["farm"]
    type: Literal["query"]
    label: str
    datasource: DatasourceRef
    query: str
    refresh: int
    sort: int
    multi: bool
    includeAll: bool
    allValue: str
    allowCustomValue: bool
    auto: bool
    auto_count: int
    auto_min: str
    skipUrlSync: bool


class Templating(_Strict):
    """The dashboard's template variables."""

    list: list[Variable]


class TimeWindow(_Strict):
    """The default time range, relative to now."""

    from_: str = Field(alias="from", pattern=r"^now-\d+[mhdwy]$")
    to: Literal["now"]


class Dashboard(_Strict):
    """A whole dashboard as provisioned: read-only, in Mexico City time."""

    uid: str = Field(pattern=r"^farmwatch-[a-z-]+$")
    title: str
    description: str
    tags: list[str]
    timezone: Literal["America/Mexico_City"]
    editable: Literal[False]
    """Read-only: viewers cannot change the provisioned dashboards."""
    graphTooltip: int
    fiscalYearStartMonth: int
    refresh: str
    schemaVersion: int
    time: TimeWindow
    templating: Templating
    annotations: dict[str, Any]
    panels: list[Panel] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Dashboard:
        ids = [p.id for p in self.panels]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate panel id")
        return self
