"""Property-based, at every boundary where outside bytes enter the edge agent (issue 11): FWL/1
serial lines, Modbus registers and raw values, SDI-12 answers, farm files. No exception but the
boundary's own escapes, and the next valid input still arrives."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.harness import edge_committer

from edge.drivers.base import RawSample
from edge.drivers.modbus_rtu import decode_field
from edge.drivers.poller import OutboxSink
from edge.drivers.sdi12_protocol import (
    Sdi12Error,
    crc_chars,
    parse_ack,
    parse_address,
    parse_data,
    parse_identification,
    parse_measurement,
)
from edge.mcu_link import McuLink
from edge.outbox import Outbox
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.farm.model import FarmConfig, FarmConfigError, load_farm_config
from farmwatch_shared.farm.register_maps import RegisterField
from farmwatch_shared.mcu_protocol import LineAssembler, McuReading, encode_line, reading_line
from farmwatch_shared.problems import ProblemLog

LOG = logging.getLogger("test.property.edge")

# -- FWL/1 serial lines ----------------------------------------------------------------------
PROBE = FarmConfig.model_validate(
    {
        "farm": {"id": "f", "name": "x"},
        "agents": [{"id": "pi-1"}],
        "sensors": [
            {
                "id": "probe",
                "agent": "pi-1",
                "channel": "S1",
                "kind": "soil_moisture",
                "coefficients": [0.0, 0.001],
            }
        ],
    }
).sensors[0]
counts = st.integers(min_value=0, max_value=9_999_999_999)
far = st.integers(min_value=10**7, max_value=9_999_999_999)  # beyond every valid seq here
crc_valid_junk = st.one_of(
    # hellos of any numbers: the agent must not skip a sample on their word
    st.builds(
        lambda b, o, n: encode_line(f"H,fw-mcu 1.0,{b},60,{o},{n}"),
        st.integers(0, 3),
        counts,
        st.integers(0, 10**6),
    ),
    # samples ahead of any gap, of another channel, with impossible numbers
    st.builds(lambda s, ch: encode_line(f"R,1,{s},{ch},5,0"), far, st.sampled_from(["S1", "Z9"])),
    st.builds(lambda s: encode_line(f"R,1,{s},S1,999999999.999999,0"), far),
    st.builds(lambda n: encode_line(f"A,1,{n}"), counts),
    st.just(encode_line("S")),
    st.builds(encode_line, st.text("RHAS,0123456789.-_xyz", max_size=40)),
)
garbage = st.one_of(
    st.binary(max_size=200),
    crc_valid_junk,
    # truncated and overlong frames
    # (cut short of the checksum's last digit: the whole frame before "\r\n" is not garbage)
    st.builds(lambda cut: reading_line(McuReading(1, 7, "S1", 1.5, 0))[:cut], st.integers(0, 19)),
    st.just(b"$" + b"R," * 80 + b"*0000"),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise=st.lists(garbage, min_size=1, max_size=10), chunk=st.integers(1, 50))
def test_fwl1_garbage_and_crc_valid_nonsense_never_cost_a_valid_sample(
    noise: list[bytes], chunk: int
) -> None:
    valid = [reading_line(McuReading(1, seq, "S1", float(seq), 0)) for seq in range(len(noise))]
    stream = b"".join(junk + b"\n" + line for junk, line in zip(noise, valid, strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3", 1000)
        problems = ProblemLog(LOG)
        clock = SystemClock()
        link = McuLink([PROBE], outbox, clock, problems, edge_committer(outbox, clock, problems))
        assembler = LineAssembler()
        for i in range(0, len(stream), chunk):
            for item in assembler.feed(stream[i : i + chunk]):
                link.handle(item)
        raws = [r.raw for r in outbox.after(-1, 1000)]
        outbox.close()
    assert raws == [float(seq) for seq in range(len(noise))]


# -- Modbus registers and what any raw value does to calibration ------------------------------
fields = st.builds(
    RegisterField,
    address=st.integers(0, 100),
    type=st.sampled_from(["int16", "uint16", "int32", "uint32", "float32"]),
    word_order=st.sampled_from(["big", "little"]),
    scale=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
)
special_words = st.sampled_from([0x7FC0, 0x7F80, 0xFF80, 0xFFC0, 0x0000, 0xFFFF, 0x8000])
words = st.lists(st.integers(0, 0xFFFF) | special_words, min_size=0, max_size=3)


@settings(max_examples=400, deadline=None)
@given(field=fields, registers=words)
def test_modbus_registers_decode_to_a_float_or_a_value_error(
    field: RegisterField, registers: list[int]
) -> None:
    try:
        value = decode_field(field, registers)
    except ValueError:
        assert len(registers) != field.width
        return
    assert isinstance(value, float)


SENSORS = FarmConfig.model_validate(
    {
        "farm": {"id": "f", "name": "x"},
        "agents": [{"id": "pi-1"}],
        "sensors": [
            {
                "id": "pond",
                "agent": "pi-1",
                "channel": "M1",
                "kind": "water_level",
                "transducer": {"type": "pressure"},
                "vessel": {"shape": "strapping_table", "points": [[0, 0], [2000, 9000]]},
            },
            {
                "id": "tank",
                "agent": "pi-1",
                "channel": "M2",
                "kind": "water_level",
                "transducer": {"type": "ultrasonic", "mount_height_mm": 2100},
                "vessel": {"shape": "horizontal_cylinder", "diameter_mm": 2000, "length_mm": 3000},
            },
            {"id": "rain", "agent": "pi-1", "channel": "M3", "kind": "rain"},
            {
                "id": "soil",
                "agent": "pi-1",
                "channel": "M4",
                "kind": "soil_moisture",
                "coefficients": [0.0, 1.0, 0.001],
            },
        ],
        "calibrations": [
            {
                "sensor": "soil",
                "effective_from": "2024-01-01T00:00:00Z",
                "curve": {"type": "table", "points": [[0, 0], [100, 50]]},
            }
        ],
    }
)
raw_values = st.floats() | st.sampled_from(
    [
        struct.unpack(">f", bytes.fromhex(h))[0]
        for h in ("7fc00000", "7f800000", "ff800000", "7f7fffff", "00000001")
    ]
)


@settings(max_examples=200, deadline=None)
@given(raws=st.lists(raw_values, min_size=1, max_size=12))
def test_any_raw_value_is_committed_or_quarantined_and_the_next_good_one_commits(
    raws: list[float],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3", 10_000)
        clock = SystemClock()
        problems = ProblemLog(LOG)
        sink = OutboxSink(SENSORS.sensors, edge_committer(outbox, clock, problems, SENSORS))
        ts = 1_795_000_000_000
        for i, raw in enumerate(raws):
            for sensor in ("pond", "tank", "rain", "soil"):
                sink(RawSample(sensor, raw, ts + i * 60_000, 0))
        before = outbox.last_seq()
        for sensor, good in (("pond", 10.0), ("tank", 1000.0), ("rain", 7.0), ("soil", 30.0)):
            sink(RawSample(sensor, good, ts + len(raws) * 60_000, 0))
        good_ones = outbox.after(before, 10)
        counter = outbox.sensor_state("rain").counter
        outbox.close()
    # the rain after a believable counter may be refused as too much rain at once, but the
    # good counter is the gauge's baseline either way
    assert [r.sensor for r in good_ones if r.sensor != "rain"] == ["pond", "tank", "soil"]
    assert all(math.isfinite(r.value) and math.isfinite(r.raw) for r in good_ones)
    assert counter is not None
    assert counter.counter == 7


# -- SDI-12 answers ---------------------------------------------------------------------------
def _crc_line(body: str) -> bytes:
    data = body.encode("ascii")
    return data + crc_chars(data) + b"\r\n"


sdi12_lines = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda t: t.encode("ascii", "replace") + b"\r\n", st.text(max_size=60)),
    st.builds(
        lambda t, cut: _crc_line("0" + t)[:cut],
        st.text("+-.0123456789", max_size=40),
        st.integers(0, 50),
    ),
    st.builds(lambda t: ("0" + t + "\r\n").encode(), st.text("+-.0123456789e", max_size=40)),
)


@settings(max_examples=400, deadline=None)
@given(line=sdi12_lines, crc=st.booleans())
def test_sdi12_answers_parse_or_raise_sdi12_error_only(line: bytes, crc: bool) -> None:
    for parse in (
        lambda: parse_ack(line, "0"),
        lambda: parse_address(line),
        lambda: parse_identification(line, "0"),
        lambda: parse_measurement(line, "0"),
        lambda: parse_data(line, "0", crc=crc),
    ):
        with contextlib.suppress(Sdi12Error):
            parse()


# -- farm files -------------------------------------------------------------------------------
def _toml(value: Any) -> str:
    """A TOML value written inline (tables as inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
VALID = {
    "farm": {"id": "oax-test", "name": "Prueba"},
    "agents": [{"id": "pi-1"}],
    "sensors": [dict(PROBE.model_dump(mode="json", exclude_none=True), agent="pi-1")],
}
keys = st.sampled_from(["farm", "agents", "sensors", "buses", "calibrations", "alerts", "x"])


@st.composite
def farm_texts(draw: st.DrawFn) -> str:
    """A valid farm file with some of it replaced by random structures, nested deeply at times,
    or plain text cut anywhere."""
    data: dict[str, Any] = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(0, 3))):
        data[draw(keys)] = draw(values)
    text = "\n".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in data.items())
    if draw(st.booleans()):  # an array or inline table nested up to thousands deep
        depth = draw(st.integers(1, 3000))
        opening, closing = draw(st.sampled_from([("[", "]"), ('{"a" = ', "}")]))
        text += f"\ndeep = {opening * depth}1{closing * depth}"
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=farm_texts(), raw=st.binary(max_size=40))
def test_any_farm_file_loads_or_raises_farm_config_error_only(text: str, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "farm.toml"
        for content in (text.encode("utf-8"), raw):
            path.write_bytes(content)
            with contextlib.suppress(FarmConfigError):
                load_farm_config(path)


def test_a_farm_file_nested_thousands_deep_is_a_farm_config_error(tmp_path: Path) -> None:
    path = tmp_path / "farm.toml"
    path.write_text("farm = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(FarmConfigError, match="nested too deeply"):
        load_farm_config(path)
