"""A pseudo-terminal pair standing in for a USB serial adapter.

The device side (master) is ours; the agent opens the tty side by path with pyserial, exactly as
it would open ``/dev/ttyUSB0``. An optional stable symlink plays the role of
``/dev/serial/by-id/...``: unplugging closes the pair (the agent sees an I/O error) and plugging
in again creates a new pair behind the same link, as USB re-enumeration does.
"""

from __future__ import annotations

import errno
import os
import select
import termios
import time
import tty
from pathlib import Path


class PtyLink:
    """Device end of an emulated serial cable."""

    def __init__(self, link_path: Path | None = None) -> None:
        self._link_path = link_path
        self._master: int | None = None
        self._slave: int | None = None
        self.tty_name = ""
        self.plug()

    @property
    def path(self) -> str:
        """What the agent should open: the stable link if any, else the tty."""
        return str(self._link_path) if self._link_path is not None else self.tty_name

    @property
    def plugged(self) -> bool:
        """Whether the device is connected."""
        return self._master is not None

    def plug(self) -> None:
        """Connect (a new pty pair; the stable link is re-pointed to it)."""
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.tty_name = os.ttyname(slave)
        if self._link_path is not None:
            tmp = self._link_path.with_name(self._link_path.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.tty_name)
            tmp.replace(self._link_path)

    def unplug(self) -> None:
        """Disconnect: close the pair; the agent's open port fails with an I/O error."""
        if self._link_path is not None:
            self._link_path.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def write(self, data: bytes, timeout_s: float = 0.5) -> bool:
        """Send bytes to the agent; False if unplugged or nobody drained the line in time."""
        deadline = time.monotonic() + timeout_s
        view = memoryview(data)
        while view:
            if self._master is None:
                return False
            try:
                sent = os.write(self._master, view)
                view = view[sent:]
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                select.select([], [self._master], [], min(remaining, 0.05))
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return False
                raise
        return True

    def read(self) -> bytes:
        """Whatever the agent sent since the last call (non-blocking)."""
        if self._master is None:
            return b""
        chunks = []
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EIO:
                    break
                raise
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Release the pty."""
        self.unplug()
