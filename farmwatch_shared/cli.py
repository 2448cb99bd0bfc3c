"""Command-line plumbing shared by the services: logging, signals, settings errors."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from pydantic import ValidationError


def setup_logging(level: str) -> None:
    """Log to stderr with timestamps (journald adds its own, but plain runs need them)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, for a clean shutdown."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def config_error(exc: Exception) -> int:
    """Print a configuration error for an operator and return the exit code 2."""
    if isinstance(exc, ValidationError):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
    else:
        detail = str(exc)
    print(f"Error de configuración / configuration error: {detail}", file=sys.stderr)
    return 2
