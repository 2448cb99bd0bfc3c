# mypy: disable-error-code="no-untyped-call"
# (influxdb_client's Point, the reference these tests compare with, is not annotated)
"""Our direct line-protocol formatting is equivalent to influxdb_client's ``Point`` output."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from farmwatch_shared.contract import AgentStatus, Reading, SensorKind
from farmwatch_shared.lineprotocol import generic_line, reading_line, reading_lines, status_line

# characters line protocol treats specially, plus non-ASCII, mixed into arbitrary text
SPECIAL = st.sampled_from([",", "=", " ", '"', "\\", "\n", "\t", "\r", "#", "ñ", "°", "💧"])
TEXT = st.lists(st.one_of(SPECIAL, st.characters(codec="utf-8")), max_size=12).map("".join)
NAME = TEXT.filter(lambda s: s != "" and not s.startswith("#"))
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7976931348623157e308, 1e16, 1.0]),
)
FIELD_VALUE = st.one_of(
    FLOATS,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    TEXT,
)
IDENT = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,31}\Z")
TS_MS = st.integers(min_value=0, max_value=4_102_444_800_000)


def point_line(
    measurement: str, tags: dict[str, str], fields: dict[str, object], ts_ms: int
) -> str:
    point = Point(measurement)
    for key, tag in tags.items():
        point.tag(key, tag)
    for key, value in fields.items():
        point.field(key, value)
    line: str = point.time(ts_ms, WritePrecision.MS).to_line_protocol()
    return line


@settings(max_examples=400, deadline=None)
@given(
    measurement=NAME,
    tags=st.dictionaries(TEXT, TEXT, max_size=4),
    fields=st.dictionaries(NAME, FIELD_VALUE, min_size=1, max_size=5),
    ts_ms=TS_MS,
)
def test_generic_line_matches_point(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, float | int | bool | str],
    ts_ms: int,
) -> None:
    assert generic_line(measurement, tags, fields, ts_ms) == point_line(
        measurement, tags, dict(fields), ts_ms
    )


@given(
    measurement=NAME,
    fields=st.dictionaries(NAME, st.sampled_from([math.nan, math.inf, -math.inf]), min_size=1),
)
def test_non_finite_floats_are_left_out_and_an_empty_point_is_refused(
    measurement: str, fields: dict[str, float | int | bool | str]
) -> None:
    assert point_line(measurement, {}, dict(fields), 1) == ""
    try:
        generic_line(measurement, {}, fields, 1)
    except ValueError:
        return
    raise AssertionError("a point without fields must be refused")


READINGS = st.builds(
    Reading,
    seq=st.integers(min_value=0, max_value=2**53),
    sensor=IDENT,
    kind=st.sampled_from(list(SensorKind)),
    ts=TS_MS,
    value=FLOATS,
    unit=TEXT,
    raw=FLOATS,
    volume_l=st.one_of(st.none(), FLOATS),
    flags=st.integers(min_value=0, max_value=3),
)


def reading_point(farm: str, agent: str, reading: Reading) -> str:
    fields: dict[str, object] = {"raw": reading.raw, "seq": reading.seq, "value": reading.value}
    if reading.volume_l is not None:
        fields["volume_l"] = reading.volume_l
    if reading.flags:
        fields["flags"] = reading.flags
    tags = {"farm": farm, "agent": agent, "sensor": reading.sensor, "unit": reading.unit}
    return point_line(reading.kind.value, tags, fields, reading.ts)


@settings(max_examples=300, deadline=None)
@given(farm=IDENT, agent=IDENT, readings=st.lists(READINGS, min_size=1, max_size=8))
def test_reading_lines_match_point(farm: str, agent: str, readings: list[Reading]) -> None:
    expected = [reading_point(farm, agent, r) for r in readings]
    assert reading_lines(farm, agent, readings) == expected
    assert [reading_line(farm, agent, r) for r in readings] == expected


@given(
    status=st.builds(
        AgentStatus,
        v=st.just(1),
        farm=IDENT,
        agent=IDENT,
        state=st.sampled_from(["online", "offline"]),
        ts=st.one_of(st.none(), TS_MS),
        version=TEXT,
        outbox_backlog=st.integers(min_value=0, max_value=2**40),
        dropped_total=st.integers(min_value=0, max_value=2**40),
        rejected_lines=st.integers(min_value=0, max_value=2**40),
        clock_synced=st.booleans(),
    ),
    fallback=TS_MS,
)
def test_status_line_matches_point(status: AgentStatus, fallback: int) -> None:
    fields: dict[str, object] = {
        "online": status.state == "online",
        "outbox_backlog": status.outbox_backlog,
        "dropped_total": status.dropped_total,
        "rejected_lines": status.rejected_lines,
        "clock_synced": status.clock_synced,
        "version": status.version,
    }
    ts = status.ts if status.ts is not None else fallback
    expected = point_line("agent_status", {"farm": status.farm, "agent": status.agent}, fields, ts)
    assert status_line(status, fallback) == expected
