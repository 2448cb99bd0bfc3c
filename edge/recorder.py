"""Assembly: turns microcontroller lines into calibrated readings committed to the outbox.

Each reading is identified by the microcontroller's (boot, seq); the last committed identity is
stored with the reading in one transaction, so a reading resent after an agent crash is
recognised and acknowledged again, never committed twice. Bad input (framing, checksum,
unknown channel, impossible value) is counted, logged once per cause, quarantined, and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from edge.calibration import calibrate
from edge.farmconfig import RainGauge, SensorConfig
from edge.mcu_protocol import LineError, McuHello, McuReading, ack_line, parse_line
from edge.outbox import Outbox
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import UNITS, Reading, reading_problem
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)
BOOT_KEY = "mcu.boot"
SEQ_KEY = "mcu.seq"


class ReadingRecorder:
    """Parses, calibrates, checks and commits readings from one microcontroller."""

    def __init__(
        self,
        sensors: Sequence[SensorConfig],
        outbox: Outbox,
        clock: Clock,
        problems: ProblemLog,
        reading_flags: Callable[[], int] = lambda: 0,
    ) -> None:
        self._by_channel = {s.channel: s for s in sensors}
        self._outbox = outbox
        self._clock = clock
        self._problems = problems
        self._reading_flags = reading_flags
        self.last_hello: McuHello | None = None

    def handle(self, item: bytes | LineError) -> bytes | None:
        """Process one line from the serial port; return the line to answer with, if any."""
        frame = parse_line(item) if isinstance(item, bytes) else item
        if isinstance(frame, LineError):
            self._refuse(frame.cause, repr(frame.line[:80]))
            return None
        if isinstance(frame, McuHello):
            self._hello(frame)
            return None
        if isinstance(frame, McuReading):
            return self._reading(frame)
        self._refuse("unexpected_record", repr(frame))
        return None

    def _hello(self, frame: McuHello) -> None:
        if self.last_hello is None or frame.boot != self.last_hello.boot:
            log.info(
                "Microcontrolador / microcontroller: %s, arranque / boot %d, cada / every %d s",
                frame.firmware,
                frame.boot,
                frame.interval_s,
            )
        if frame.overflowed and (
            self.last_hello is None
            or frame.overflowed
            > (self.last_hello.overflowed if self.last_hello.boot == frame.boot else 0)
        ):
            self._problems.report(
                "mcu_overflow",
                f"el microcontrolador perdió lecturas / microcontroller overwrote "
                f"{frame.overflowed} unacknowledged readings (boot {frame.boot})",
            )
        self.last_hello = frame

    def _reading(self, frame: McuReading) -> bytes:
        last_boot = self._outbox.sensor_state(BOOT_KEY)
        last_seq = self._outbox.sensor_state(SEQ_KEY)
        if last_boot == frame.boot and last_seq is not None:
            if frame.seq <= last_seq:
                return ack_line(frame.boot, frame.seq)  # already committed: a resend
            if frame.seq > last_seq + 1:
                self._problems.report(
                    "mcu_gap", f"boot {frame.boot}: seq {last_seq:.0f} → {frame.seq}"
                )
        identity = {BOOT_KEY: float(frame.boot), SEQ_KEY: float(frame.seq)}
        sensor = self._by_channel.get(frame.channel)
        if sensor is None:
            self._refuse("unknown_channel", f"channel {frame.channel!r}", identity)
            return ack_line(frame.boot, frame.seq)
        ts = self._clock.now_ms() - frame.age_ms
        state = dict(identity)
        previous = None
        if isinstance(sensor, RainGauge):
            previous = self._outbox.sensor_state(f"{sensor.id}.counter")
            counter_boot = self._outbox.sensor_state(f"{sensor.id}.boot")
            if previous is not None and counter_boot != frame.boot:
                previous = 0.0  # the microcontroller rebooted: its counter restarted at zero
        calibrated = calibrate(sensor, frame.raw, previous)
        if calibrated.counter is not None:
            state[f"{sensor.id}.counter"] = calibrated.counter
            state[f"{sensor.id}.boot"] = float(frame.boot)
        candidate = Reading(
            seq=0,
            sensor=sensor.id,
            kind=sensor.kind,
            ts=ts,
            value=round(calibrated.value, 4),
            unit=UNITS[sensor.kind],
            raw=frame.raw,
            volume_l=None if calibrated.volume_l is None else round(calibrated.volume_l, 2),
            flags=self._reading_flags(),
        )
        problem = reading_problem(candidate)
        if problem is not None:
            self._refuse(
                f"impossible_{problem}",
                f"{sensor.id}: raw {frame.raw} → {candidate.value} {candidate.unit}",
                state,
            )
        else:
            self._outbox.add(
                sensor=candidate.sensor,
                kind=candidate.kind,
                ts=ts,
                value=candidate.value,
                unit=candidate.unit,
                raw=candidate.raw,
                volume_l=candidate.volume_l,
                flags=candidate.flags,
                state=state,
            )
        return ack_line(frame.boot, frame.seq)

    def _refuse(self, cause: str, detail: str, state: dict[str, float] | None = None) -> None:
        self._problems.report(cause, detail)
        self._outbox.quarantine(self._clock.now_ms(), cause, detail, state or {})
