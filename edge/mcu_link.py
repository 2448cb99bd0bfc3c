"""The microcontroller link: the agent's side of the FWL/1 serial protocol
(``firmware_configs/PROTOCOL.md``). It parses each line, answers it (acks, ``$S``), keeps the
stream's position and hands each sample to the committer.

Samples are committed strictly in the microcontroller's order: per boot, sample ``seq`` is
taken only after ``seq - 1``. A sample that arrives ahead of a missing one (the missing line
was garbled, or the agent just started) is not acknowledged, so the microcontroller resends it
after the gap is filled; the agent asks for that at once with ``$S``. The last committed
``(boot, seq)`` (``McuPosition``) is stored with each reading in one transaction, so a resend
of a committed sample is acknowledged again, never stored twice. Bad input (framing, checksum,
unknown channel, impossible value) is counted, logged once per cause, quarantined, and skipped.

A hello that says samples were overwritten (``oldest`` above the next expected sample) is only a
claim: the position skips to ``oldest`` when the sample with that very ``seq`` arrives, so a
wrong hello can never make the agent acknowledge samples it did not store. Within a known boot
the skipped samples must also fit the hello's ``overflowed`` count, or the hello is refused as
``mcu_bad_hello``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from edge.committer import ReadingCommitter
from edge.drivers.base import RawSample
from edge.outbox import McuPosition, Outbox, StateUpdate
from farmwatch_shared.clock import Clock
from farmwatch_shared.farm.model import SensorConfig
from farmwatch_shared.mcu_protocol import (
    SYNC_LINE,
    LineError,
    McuHello,
    McuReading,
    ack_line,
    parse_line,
)
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)
SYNC_INTERVAL_S = 1.0


class McuLink:
    """The link to one microcontroller: its lines in, acks out, its samples to the committer."""

    def __init__(
        self,
        sensors: Sequence[SensorConfig],
        outbox: Outbox,
        clock: Clock,
        problems: ProblemLog,
        committer: ReadingCommitter,
    ) -> None:
        self._by_channel = {s.channel: s for s in sensors}
        self._outbox = outbox
        self._clock = clock
        self._problems = problems
        self._committer = committer
        self._last_sync = -SYNC_INTERVAL_S
        self.last_hello: McuHello | None = None
        self._claim: tuple[int, int] | None = None
        """(boot, oldest) of the last hello that said samples were overwritten."""

    def handle(self, item: bytes | LineError) -> bytes | None:
        """Process one line from the serial port; return the line to answer with, if any."""
        try:
            frame = parse_line(item) if isinstance(item, bytes) else item
        except Exception as exc:  # noqa: BLE001 - a line the parser did not foresee is refused
            self._refuse("unparseable", f"{item!r:.80}: {type(exc).__name__}: {exc}")
            return None
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
        self.last_hello = frame
        self._claim = None
        stored = self._outbox.mcu_position()
        if stored.boot == frame.boot:
            skipped = frame.oldest - stored.seq - 1
            if skipped > frame.overflowed:
                # the samples in between can only have been overwritten, and it says it
                # overwrote fewer: an impossible hello, never a reason to skip samples
                self._problems.report(
                    "mcu_bad_hello",
                    f"hello: boot {frame.boot} oldest {frame.oldest} overflowed "
                    f"{frame.overflowed}, last committed seq {stored.seq}",
                )
                return
            if skipped <= 0:
                return
        elif frame.oldest == 0:
            return  # a new boot from its first sample: nothing to skip
        # A claim only: the position moves when the sample at ``oldest`` arrives (``_reading``)
        self._claim = (frame.boot, frame.oldest)

    def _reading(self, frame: McuReading) -> bytes | None:
        stored = self._outbox.mcu_position()
        last_seq = stored.seq if stored.boot == frame.boot else -1  # a new boot counts from 0
        if frame.seq <= last_seq:
            return ack_line(frame.boot, frame.seq)  # a resend of a committed sample
        if frame.seq > last_seq + 1:
            if self._claim != (frame.boot, frame.seq):
                why = "unknown boot" if stored.boot != frame.boot else f"expected {last_seq + 1}"
                return self._out_of_order(frame, why)
            self._claim = None
            self._problems.report(
                "mcu_overflow",
                f"el microcontrolador perdió lecturas / the microcontroller overwrote "
                f"{frame.seq - last_seq - 1} unacknowledged samples (boot {frame.boot})",
            )
        position = McuPosition(frame.boot, frame.seq)
        sensor = self._by_channel.get(frame.channel)
        if sensor is None:
            self._refuse("unknown_channel", f"channel {frame.channel!r}", StateUpdate(mcu=position))
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

    def _commit(self, sensor: SensorConfig, frame: McuReading, position: McuPosition) -> None:
        sample = RawSample(
            sensor=sensor.id,
            raw=frame.raw,
            ts_ms=self._clock.now_ms() - frame.age_ms,
            mono_ms=int(self._clock.monotonic() * 1000) - frame.age_ms,
        )
        self._committer.commit(sensor, sample, position)

    def _refuse(self, cause: str, detail: str, state: StateUpdate | None = None) -> None:
        self._committer.refuse(cause, detail, state)
