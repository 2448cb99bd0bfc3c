"""The microcontroller link never acknowledges a sample it did not store, whatever a hello says."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from support.harness import edge_committer

from edge.mcu_link import McuLink
from edge.outbox import McuPosition, Outbox
from farmwatch_shared.contract import SensorKind
from farmwatch_shared.farm.model import SoilMoistureSensor
from farmwatch_shared.mcu_protocol import (
    SYNC_LINE,
    McuHello,
    McuReading,
    ack_line,
    hello_line,
    reading_line,
)
from farmwatch_shared.problems import ProblemLog

PROBE = SoilMoistureSensor(
    id="probe", agent="pi-1", channel="S1", kind=SensorKind.SOIL_MOISTURE, coefficients=(0.0, 1.0)
)


class Clock:
    def __init__(self) -> None:
        self.mono = 100.0

    def now_ms(self) -> int:
        return 1_795_000_000_000

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        time.sleep(0)


def test_an_absurd_hello_never_makes_the_agent_acknowledge_samples_it_did_not_store(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox.db", 100)
    problems = ProblemLog(logging.getLogger("test.mcu-link"))
    clock = Clock()
    link = McuLink([PROBE], outbox, clock, problems, edge_committer(outbox, clock, problems))

    def sample(seq: int) -> bytes | None:
        return link.handle(reading_line(McuReading(1, seq, "S1", float(seq), 0)))

    for seq in range(10):
        assert sample(seq) == ack_line(1, seq)
    # CRC-valid hellos with an absurd oldest: one inconsistent with its overflowed count, one
    # consistent but false (the microcontroller still sends seq 10 next)
    link.handle(hello_line(McuHello("fw-mcu 1.0", 1, 60, 0, 4_000_000_000)))
    assert problems.count("mcu_bad_hello") == 1
    assert outbox.mcu_position() == McuPosition(1, 9)
    link.handle(hello_line(McuHello("fw-mcu 1.0", 1, 60, 4_000_000_000, 4_000_000_000)))
    assert outbox.mcu_position() == McuPosition(1, 9)  # a claim, not yet a move
    for seq in (10, 11):
        assert sample(seq) == ack_line(1, seq)
    assert [r.raw for r in outbox.after(-1, 20)] == [float(s) for s in range(12)]

    # a genuine overflow: 5 samples overwritten; the position skips when seq 17 arrives
    clock.mono += 2
    assert sample(17) == SYNC_LINE  # ahead of a gap: ask for the hello and a resend
    link.handle(hello_line(McuHello("fw-mcu 1.0", 1, 60, 5, 17)))
    assert sample(17) == ack_line(1, 17)
    assert problems.count("mcu_overflow") == 1
    assert outbox.mcu_position() == McuPosition(1, 17)
    # a new boot that overwrote its first samples: the claim, then its oldest sample
    link.handle(hello_line(McuHello("fw-mcu 1.0", 2, 60, 3, 3)))
    assert link.handle(reading_line(McuReading(2, 3, "S1", 3.0, 0))) == ack_line(2, 3)
    assert outbox.mcu_position() == McuPosition(2, 3)
    assert problems.count("mcu_overflow") == 2
    outbox.close()
