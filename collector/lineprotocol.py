"""InfluxDB line protocol, formatted directly (no per-point objects on the hot path).

A reading becomes one point whose series is (measurement=kind, farm, agent, sensor, unit) and
whose timestamp is the edge timestamp in ms: writing the same reading twice overwrites the same
point, so redelivery never duplicates.
"""

from __future__ import annotations

from farmwatch_shared.contract import AgentStatus, Reading

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": r"\\"})


def escape_measurement(name: str) -> str:
    """Escape a measurement name."""
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_KEY_ESCAPES)


def escape_string_field(text: str) -> str:
    """Quote and escape a string field value."""
    return '"' + text.translate(_STRING_ESCAPES) + '"'


def format_float(value: float) -> str:
    """A float field value (shortest repr that round-trips)."""
    return repr(float(value))


def reading_line(farm: str, agent: str, reading: Reading) -> str:
    """The line for one reading (identifiers are contract-validated: no escaping needed)."""
    fields = (
        f"raw={format_float(reading.raw)},seq={reading.seq}i,value={format_float(reading.value)}"
    )
    if reading.volume_l is not None:
        fields += f",volume_l={format_float(reading.volume_l)}"
    if reading.flags:
        fields += f",flags={reading.flags}i"
    return (
        f"{reading.kind.value},agent={agent},farm={farm},sensor={reading.sensor},"
        f"unit={escape_key(reading.unit)} {fields} {reading.ts}"
    )


def status_line(status: AgentStatus, fallback_ts_ms: int) -> str:
    """The ``agent_status`` point for an agent's (retained) status message."""
    online = "true" if status.state == "online" else "false"
    fields = (
        f"online={online},outbox_backlog={status.outbox_backlog}i,"
        f"dropped_total={status.dropped_total}i,rejected_lines={status.rejected_lines}i,"
        f"clock_synced={'true' if status.clock_synced else 'false'},"
        f"version={escape_string_field(status.version)}"
    )
    ts = status.ts if status.ts is not None else fallback_ts_ms
    return f"agent_status,agent={status.agent},farm={status.farm} {fields} {ts}"


def generic_line(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, float | int | bool | str],
    ts_ms: int,
) -> str:
    """Any point, with full escaping (for collector's own counters and alert logs)."""
    tag_part = "".join(
        f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()) if v != ""
    )
    field_parts = []
    for key, value in sorted(fields.items()):
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = f"{value}i"
        elif isinstance(value, float):
            text = format_float(value)
        else:
            text = escape_string_field(value)
        field_parts.append(f"{escape_key(key)}={text}")
    return f"{escape_measurement(measurement)}{tag_part} {','.join(field_parts)} {ts_ms}"
