"""SDI-12 sensors behind a USB SDI-12 adapter, emulated on a pty (SDI-12 v1.4 behaviour).

The agent opens the pty like the adapter's ``/dev/ttyUSB*``, writes commands (``0M!``) and
reads the answers as CR LF lines. Implemented: ``?!``, ``a!``, ``aI!``, ``aAb!``, ``aM!``,
``aM1!``…``aM9!``, ``aMC!``/``aMCn!`` (CRC), ``aD0!``…``aD9!``. After ``atttn`` the sensor
measures for ``ready_after_s`` and then sends the service request ``a<CR><LF>``; a data command
before that aborts the measurement (the answer carries no values), as the standard says. Unknown
commands and other addresses get no answer. Faults can be injected per sensor: ``silent``
(ignore the next command), ``garble`` (corrupt one digit of the next data answer),
``no_service_request``.

The CRC here is written separately from the agent's, from the standard, so a shared mistake
cannot hide.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from farmwatch_emulators.pty_link import PtyLink

VALUES_PER_ANSWER_CHARS = 35
"""Most characters of values in one answer to aDn! after aM! (75 after aC!, not emulated)."""


def sdi12_crc(data: bytes) -> bytes:
    """CRC-16 (reflected 0xA001, initial 0) in SDI-12's 3-character encoding."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return bytes((0x40 | (crc >> 12), 0x40 | ((crc >> 6) & 0x3F), 0x40 | (crc & 0x3F)))


@dataclass
class Sdi12Sensor:
    """One emulated sensor: what it measures and how it answers."""

    address: str
    values: list[float]
    decimals: int = 2
    wait_s: int = 1
    """The ``ttt`` the sensor announces."""
    ready_after_s: float = 0.2
    """When the measurement is really ready (≤ wait_s); then the service request is sent."""
    vendor: str = "FWEMUL"
    model: str = "SOIL3"
    version: str = "100"
    serial: str = "SN0001"
    faults: deque[str] = field(default_factory=deque)

    def answer_pages(self) -> list[str]:
        """Values split into data answers of at most VALUES_PER_ANSWER_CHARS characters."""
        pages: list[str] = []
        current = ""
        for value in self.values:
            text = f"{value:+.{self.decimals}f}"
            if len(current) + len(text) > VALUES_PER_ANSWER_CHARS:
                pages.append(current)
                current = ""
            current += text
        return [*pages, current] if current else pages


@dataclass
class _Measurement:
    values_pages: list[str]
    crc: bool
    ready_at: float
    service_request: bool
    aborted: bool = False
    requested: bool = False


class Sdi12Bus:
    """An SDI-12 adapter with sensors on its bus, on a pty; ``path`` is what the agent opens."""

    def __init__(self, sensors: list[Sdi12Sensor], link_path: Path | None = None) -> None:
        self.link = PtyLink(link_path)
        self.sensors = {s.address: s for s in sensors}
        self._pending: dict[str, _Measurement] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sdi12-bus", daemon=True)
        self.commands: list[tuple[float, str]] = []
        """(monotonic time, command) of every command received."""
        self.sent: list[tuple[float, str]] = []
        """(monotonic time, answer without CR LF) of every answer sent."""
        self.counts: Counter[str] = Counter()

    @property
    def path(self) -> str:
        """The tty the agent opens."""
        return self.link.path

    def start(self) -> Sdi12Bus:
        """Start answering."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and unplug."""
        self._stop.set()
        self._thread.join(2)
        self.link.close()

    def inject(self, address: str, fault: str, times: int = 1) -> None:
        """Queue ``fault`` ("silent", "garble", "no_service_request") for a sensor."""
        with self._lock:
            self.sensors[address].faults.extend([fault] * times)

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            buffer += self.link.read()
            while b"!" in buffer:
                cmd, _, buffer = buffer.partition(b"!")
                self._command(cmd.decode("ascii", errors="replace").strip("\r\n\x00"))
            self._service_requests()
            time.sleep(0.005)

    def _say(self, text: str) -> None:
        self.sent.append((time.monotonic(), text))
        self.link.write(text.encode("ascii") + b"\r\n")

    def _fault(self, sensor: Sdi12Sensor, name: str) -> bool:
        with self._lock:
            if sensor.faults and sensor.faults[0] == name:
                sensor.faults.popleft()
                self.counts[name] += 1
                return True
        return False

    def _command(self, cmd: str) -> None:
        now = time.monotonic()
        self.commands.append((now, cmd + "!"))
        if cmd == "?":
            if self.sensors:
                self._say(next(iter(self.sensors)))
            return
        sensor = self.sensors.get(cmd[:1])
        if sensor is None:
            return
        if self._fault(sensor, "silent"):
            return
        a, body = sensor.address, cmd[1:]
        pending = self._pending.get(a)
        if pending is not None and not pending.requested and now < pending.ready_at:
            pending.aborted = True  # any command to a measuring sensor aborts the measurement
        self._answer(sensor, body, now)

    def _answer(self, sensor: Sdi12Sensor, body: str, now: float) -> None:
        a = sensor.address
        if body == "":
            self._say(a)
        elif body == "I":
            self._say(
                f"{a}14{sensor.vendor:<8.8}{sensor.model:<6.6}{sensor.version:3.3}{sensor.serial}"
            )
        elif len(body) == 2 and body[0] == "A" and body[1].isalnum():
            del self.sensors[a]
            sensor.address = body[1]
            self.sensors[body[1]] = sensor
            self._say(body[1])
        elif body in {"M", "MC"} or (
            body[:-1] in {"M", "MC"} and body[-1].isdigit() and body[-1] != "0"
        ):
            self._start_measurement(sensor, crc=body.startswith("MC"), now=now)
        elif len(body) == 2 and body[0] == "D" and body[1].isdigit():
            self._data(sensor, int(body[1]))

    def _start_measurement(self, sensor: Sdi12Sensor, crc: bool, now: float) -> None:
        pages = sensor.answer_pages()
        count = len(sensor.values)
        self._pending[sensor.address] = _Measurement(
            values_pages=pages,
            crc=crc,
            ready_at=now + sensor.ready_after_s,
            service_request=sensor.wait_s > 0 and not self._fault(sensor, "no_service_request"),
        )
        self._say(f"{sensor.address}{sensor.wait_s:03d}{count}")

    def _service_requests(self) -> None:
        now = time.monotonic()
        for address, pending in self._pending.items():
            if pending.service_request and not pending.requested and now >= pending.ready_at:
                pending.requested = True
                if not pending.aborted:
                    self._say(address)

    def _data(self, sensor: Sdi12Sensor, page: int) -> None:
        pending = self._pending.get(sensor.address)
        a = sensor.address
        if pending is None or pending.aborted or page >= len(pending.values_pages):
            text = a
        else:
            text = a + pending.values_pages[page]
        if pending is not None and pending.crc:
            text += sdi12_crc(text.encode("ascii")).decode("ascii")
        if len(text) > 2 and self._fault(sensor, "garble"):
            digits = [i for i, ch in enumerate(text) if ch.isdigit() and i > 0]
            i = digits[len(digits) // 2]
            # a digit changed (still a number: only a CRC can notice) or, without CRC, a
            # character that is not part of any SDI-12 value
            swap = str((int(text[i]) + 5) % 10) if pending and pending.crc else "?"
            text = text[:i] + swap + text[i + 1 :]
        self._say(text)
