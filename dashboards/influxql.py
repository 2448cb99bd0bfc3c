"""An InfluxQL query type for the Grafana Foundation SDK (which ships none for InfluxDB).

Queries are raw InfluxQL (``rawQuery``): it runs on InfluxDB 1.x, on 2.x through the v1
compatibility API with a DBRP mapping, and on 3.x.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common

DATASOURCE_TYPE = "influxdb"
DATASOURCE_UID = "farmwatch-influxdb"
"""The datasource every panel uses; provisioning and the push command create it."""

ResultFormat = Literal["time_series", "table"]


def datasource_ref() -> common.DataSourceRef:
    """Reference to the farmwatch InfluxDB datasource."""
    return common.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class InfluxQLQuery(cogvariants.Dataquery):
    """One raw InfluxQL target of a panel."""

    def __init__(
        self,
        ref_id: str = "A",
        query: str = "",
        alias: str | None = None,
        result_format: ResultFormat = "time_series",
        hide: bool | None = None,
        datasource: common.DataSourceRef | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.query = query
        self.alias = alias
        self.result_format = result_format
        self.hide = hide
        self.datasource = datasource if datasource is not None else datasource_ref()

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": self.datasource,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Parse a target written by ``to_json`` (or by Grafana, raw mode)."""
        datasource = data.get("datasource")
        return cls(
            ref_id=str(data.get("refId", "A")),
            query=str(data.get("query", "")),
            alias=data.get("alias"),
            result_format=data.get("resultFormat", "time_series"),
            hide=data.get("hide"),
            datasource=common.DataSourceRef.from_json(datasource) if datasource else None,
        )


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder for :class:`InfluxQLQuery`, in the SDK's fluent style."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query)

    def build(self) -> InfluxQLQuery:
        """The query built so far."""
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        """Query letter (A, B, …)."""
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> Self:
        """Series name pattern, e.g. ``$tag_farm/$tag_sensor``."""
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        """Return rows as a table instead of time series."""
        self._internal.result_format = "table"
        return self


def variant_config() -> cogruntime.DataqueryConfig:
    """Lets the SDK's JSON parser decode influxdb targets into :class:`InfluxQLQuery`."""
    return cogruntime.DataqueryConfig(
        identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json
    )


def register() -> None:
    """Register the default plugins and this query type with the SDK runtime."""
    from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    cogruntime.register_dataquery_variant(variant_config())
