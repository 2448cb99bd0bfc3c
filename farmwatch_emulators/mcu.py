"""Emulated farm microcontroller speaking FWL/1 (``firmware_configs/PROTOCOL.md``) on a pty.

Like the firmware it stands in for, it keeps every sample in a RAM ring buffer until the agent
acknowledges it (``$A``), resends unacknowledged samples when asked (``$S``) or when no
acknowledgement came for a while, and forgets its buffer on reboot.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.mcu_protocol import (
    AgentAck,
    AgentSync,
    LineAssembler,
    McuHello,
    McuReading,
    hello_line,
    parse_line,
    reading_line,
)


class McuEmulator:
    """One microcontroller on one serial link. Thread-safe; ``start`` runs its service loop."""

    def __init__(
        self,
        link: PtyLink,
        *,
        firmware: str = "fw-mcu 1.0",
        boot: int = 1,
        interval_s: int = 60,
        buffer_size: int = 512,
        resend_after_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.firmware = firmware
        self.boot = boot
        self.interval_s = interval_s
        self._buffer_size = buffer_size
        self._resend_after_s = resend_after_s
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._next_seq = 0
        self._unacked: OrderedDict[int, tuple[McuReading, float, float]] = OrderedDict()
        """seq → (reading, sampled at, last sent at)"""
        self._assembler = LineAssembler()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.overflowed = 0
        self.samples: list[McuReading] = []
        """Every sample taken, in order: the ground truth for tests."""
        self.acks_received = 0
        self.syncs_received = 0

    def start(self) -> None:
        """Say hello and serve the link in a background thread."""
        self.send_hello()
        self._thread = threading.Thread(target=self._serve, name="mcu-emulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the service loop (the link stays as it is)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def sample(self, channel: str, raw: float, age_ms: int = 0) -> McuReading:
        """Take a sample now, or one taken ``age_ms`` ago and kept in RAM (as after the link
        was down): buffer it and transmit it once, with its age."""
        with self._lock:
            reading = McuReading(
                boot=self.boot, seq=self._next_seq, channel=channel, raw=raw, age_ms=age_ms
            )
            self._next_seq += 1
            now = self._monotonic()
            if len(self._unacked) >= self._buffer_size:
                self._unacked.popitem(last=False)
                self.overflowed += 1
            self._unacked[reading.seq] = (reading, now - age_ms / 1000, now)
            self.samples.append(reading)
            self.link.write(reading_line(reading))
            return reading

    def send_hello(self) -> None:
        """Transmit the hello line."""
        with self._lock:
            oldest = next(iter(self._unacked), self._next_seq)
            hello = McuHello(self.firmware, self.boot, self.interval_s, self.overflowed, oldest)
            self.link.write(hello_line(hello))

    def send_raw(self, data: bytes) -> None:
        """Transmit arbitrary bytes (line noise, a half line, a corrupted frame)."""
        with self._lock:
            self.link.write(data)

    def reboot(self) -> None:
        """Power-cycle: RAM buffer lost, boot counter up, sequence from zero, hello."""
        with self._lock:
            self.boot += 1
            self._next_seq = 0
            self._unacked.clear()
            self.overflowed = 0
            self.send_hello()

    @property
    def unacknowledged(self) -> int:
        """Samples still waiting for the agent's acknowledgement."""
        with self._lock:
            return len(self._unacked)

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.service()
            self._stop.wait(0.01)

    def service(self) -> None:
        """Handle what the agent sent and resend samples whose acknowledgement is overdue."""
        with self._lock:
            for item in self._assembler.feed(self.link.read()):
                frame = parse_line(item) if isinstance(item, bytes) else item
                if isinstance(frame, AgentAck):
                    self.acks_received += 1
                    if frame.boot == self.boot:
                        for seq in [s for s in self._unacked if s <= frame.seq]:
                            del self._unacked[seq]
                elif isinstance(frame, AgentSync):
                    self.syncs_received += 1
                    self.send_hello()
                    self._resend_all()
            if self._unacked:
                _, _, oldest_sent = next(iter(self._unacked.values()))
                if self._monotonic() - oldest_sent >= self._resend_after_s:
                    self._resend_all()

    def _resend_all(self) -> None:
        """Go back to the oldest unacknowledged sample and resend all, in order."""
        now = self._monotonic()
        for seq, (reading, sampled, _sent) in list(self._unacked.items()):
            age_ms = int((now - sampled) * 1000)
            resent = McuReading(reading.boot, reading.seq, reading.channel, reading.raw, age_ms)
            if not self.link.write(reading_line(resent), timeout_s=0.05):
                return
            self._unacked[seq] = (reading, sampled, now)
