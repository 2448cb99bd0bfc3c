"""Property-based: random bytes on the serial line never crash anything, and the valid lines
around the garbage are still committed; for MQTT payloads see test_collector_property.py."""

from __future__ import annotations

import itertools
import logging
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from support.harness import edge_committer
from support.sensors import PROBE

from edge.mcu_link import McuLink
from edge.outbox import Outbox
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.mcu_protocol import LineAssembler, McuReading, reading_line
from farmwatch_shared.problems import ProblemLog

garbage = st.binary(max_size=300) | st.sampled_from(
    [
        b"$",
        b"*",
        b"$R,1,0,S1,5,0*0000",
        b"$R,1,0,S1,5,0",
        b"\r",
        b"$R,1,1,S1,1e9,0*FFFF",
        b"$H,x,1,1,1,1*0000",
        b"\xff" * 200,
        b"$A,1,1*1234",
        b"$S*8B66",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    noise=st.lists(garbage, min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=30),
)
def test_serial_garbage_never_escapes_and_the_valid_lines_around_it_are_committed(
    noise: list[bytes], cuts: list[int]
) -> None:
    valid = [reading_line(McuReading(1, seq, "S1", float(seq), 0)) for seq in range(len(noise))]
    stream = b"".join(junk + b"\n" + line for junk, line in zip(noise, valid, strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3", 1000)
        problems = ProblemLog(logging.getLogger("test.property.serial"))
        clock = SystemClock()
        committer = edge_committer(outbox, clock, problems)
        link = McuLink([PROBE], outbox, clock, problems, committer)
        assembler = LineAssembler()
        position = 0
        for cut in itertools.cycle(cuts):  # the serial port hands over arbitrary chunks
            if position >= len(stream):
                break
            for item in assembler.feed(stream[position : position + cut]):
                link.handle(item)
            position += cut
        held = outbox.after(-1, 1000)
        outbox.close()
    assert [r.raw for r in held] == [float(seq) for seq in range(len(valid))]
