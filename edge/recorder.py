"""Assembly: turns microcontroller lines into calibrated readings committed to the outbox.

Samples are committed strictly in the microcontroller's order: per boot, sample ``seq`` is
taken only after ``seq - 1``. A sample that arrives ahead of a missing one (the missing line
was garbled, or the agent just started) is not acknowledged, so the microcontroller resends it
after the gap is filled; the agent asks for that at once with ``$S``. The last committed
``(boot, seq)`` is stored with each reading in one transaction, so a resend of a committed
sample is acknowledged again, never stored twice. Bad input (framing, checksum, unknown channel,
impossible value) is counted, logged once per cause, quarantined, and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from edge.calibration import calibrate
from edge.farmconfig import RainGauge, SensorConfig
from edge.mcu_protocol import (
    SYNC_LINE,
    LineError,
    McuHello,
    McuReading,
    ack_line,
    parse_line,
)
from edge.outbox import Outbox
from farmwatch_shared.clock import Clock
from farmwatch_shared.contract import UNITS, Reading, ReadingFlag, reading_problem
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)
BOOT_KEY = "mcu.boot"
SEQ_KEY = "mcu.seq"
TS_NUDGE_LIMIT_MS = 1000
SYNC_INTERVAL_S = 1.0


class ReadingRecorder:
    """Parses, calibrates, checks and commits readings from one microcontroller."""

    def __init__(
        self,
        sensors: Sequence[SensorConfig],
        outbox: Outbox,
        clock: Clock,
        problems: ProblemLog,
        clock_trusted: Callable[[], bool] = lambda: True,
        boot_id: str = "",
    ) -> None:
        self._by_channel = {s.channel: s for s in sensors}
        self._outbox = outbox
        self._clock = clock
        self._problems = problems
        self._clock_trusted = clock_trusted
        self._boot_id = boot_id
        self._last_sync = -SYNC_INTERVAL_S
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

    def _position(self) -> tuple[int | None, int]:
        """(boot, last committed seq) of the microcontroller's stream, as stored."""
        boot = self._outbox.sensor_state(BOOT_KEY)
        seq = self._outbox.sensor_state(SEQ_KEY)
        return (None if boot is None else int(boot)), (-1 if seq is None else int(seq))

    def _hello(self, frame: McuHello) -> None:
        if self.last_hello is None or frame.boot != self.last_hello.boot:
            log.info(
                "Microcontrolador / microcontroller: %s, arranque / boot %d, cada / every %d s",
                frame.firmware,
                frame.boot,
                frame.interval_s,
            )
        self.last_hello = frame
        boot, last_seq = self._position()
        if boot != frame.boot:
            last_seq = -1  # a new boot counts from 0
        if frame.oldest > last_seq + 1:
            self._problems.report(
                "mcu_overflow",
                f"el microcontrolador perdió lecturas / the microcontroller overwrote "
                f"{frame.oldest - last_seq - 1} unacknowledged samples (boot {frame.boot})",
            )
        if boot != frame.boot or frame.oldest > last_seq + 1:
            self._outbox.set_state(
                {BOOT_KEY: float(frame.boot), SEQ_KEY: float(max(last_seq, frame.oldest - 1))}
            )

    def _reading(self, frame: McuReading) -> bytes | None:
        boot, last_seq = self._position()
        if boot != frame.boot:
            if frame.seq != 0:
                return self._out_of_order(frame, "unknown boot")
            last_seq = -1
        if frame.seq <= last_seq:
            return ack_line(frame.boot, frame.seq)  # a resend of a committed sample
        if frame.seq > last_seq + 1:
            return self._out_of_order(frame, f"expected seq {last_seq + 1}")
        position = {BOOT_KEY: float(frame.boot), SEQ_KEY: float(frame.seq)}
        sensor = self._by_channel.get(frame.channel)
        if sensor is None:
            self._refuse("unknown_channel", f"channel {frame.channel!r}", position)
            return ack_line(frame.boot, frame.seq)
        self._commit(sensor, frame, position)
        return ack_line(frame.boot, frame.seq)

    def _out_of_order(self, frame: McuReading, why: str) -> bytes | None:
        self._problems.report(
            "mcu_out_of_order", f"boot {frame.boot} seq {frame.seq}: {why}; asking for a resend"
        )
        now = self._clock.monotonic()
        if now - self._last_sync < SYNC_INTERVAL_S:
            return None
        self._last_sync = now
        return SYNC_LINE

    def _commit(self, sensor: SensorConfig, frame: McuReading, position: dict[str, float]) -> None:
        ts = self._clock.now_ms() - frame.age_ms
        last_ts_key = f"{sensor.id}.last_ts"
        last_ts = self._outbox.sensor_state(last_ts_key)
        if last_ts is not None and last_ts - TS_NUDGE_LIMIT_MS < ts <= last_ts:
            # Two readings of one sensor must not share a timestamp: (series, time) is the
            # point's identity in InfluxDB, so the second would overwrite the first. (A larger
            # step back is the clock being corrected, not a collision.)
            ts = int(last_ts) + 1
        state = {**position, last_ts_key: float(ts)}
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
            flags=0 if self._clock_trusted() else ReadingFlag.CLOCK_UNSYNCED,
        )
        problem = reading_problem(candidate)
        if problem is not None:
            detail = f"{sensor.id}: raw {frame.raw} → {candidate.value} {candidate.unit}"
            self._refuse(f"impossible_{problem}", detail, state)
            return
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
            **self._retiming(candidate.flags, frame.age_ms),
        )

    def _retiming(self, flags: int, age_ms: int) -> dict[str, Any]:
        """What a held reading needs to be re-timed later (nothing for a trusted one)."""
        if not flags & ReadingFlag.CLOCK_UNSYNCED:
            return {}
        return {
            "mono_ms": int(self._clock.monotonic() * 1000) - age_ms,
            "boot_id": self._boot_id,
        }

    def _refuse(self, cause: str, detail: str, state: dict[str, float] | None = None) -> None:
        self._problems.report(cause, detail)
        self._outbox.quarantine(self._clock.now_ms(), cause, detail, state or {})
