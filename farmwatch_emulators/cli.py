"""``farmwatch-emulator``: a farm's emulated microcontroller (and field buses) on pseudo-terminals,
driven by the drought scenario, for trying an edge agent by hand."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from farmwatch_emulators.farm import FarmEmulator
from farmwatch_emulators.field_buses import FarmBuses
from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.farm.model import FarmConfigError, load_farm_config

DESCRIPTION = """\
Emula el microcontrolador de una granja en un pseudo-terminal. / Emulates a farm's
microcontroller on a pseudo-terminal: point an agent at the printed path
(FARMWATCH_EDGE_SERIAL_PORT). Field buses in the farm file are emulated too.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="farmwatch-emulator",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--farm-file", type=Path, required=True)
    parser.add_argument("--agent-id", help="agent of the farm file (if it has several)")
    parser.add_argument("--link", type=Path, help="stable path to create for the tty")
    parser.add_argument(
        "--speedup", type=float, default=60.0, help="simulated seconds per real second"
    )
    parser.add_argument("--duration", type=float, help="stop after N seconds")
    args = parser.parse_args(argv)
    try:
        farm = load_farm_config(args.farm_file)
        agent = farm.agent(args.agent_id)
    except FarmConfigError as exc:
        print(f"Error de configuración / configuration error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    link = PtyLink(args.link)
    settings = agent.microcontroller
    mcu = McuEmulator(
        link, interval_s=settings.sample_interval_s, buffer_size=settings.buffer_readings
    )
    wired = [s for s in farm.sensors_of(agent.id) if s.source is None]
    emulator = FarmEmulator(mcu, wired, speedup=args.speedup)
    buses = FarmBuses(farm, agent.id, emulator.scenario, emulator.sim_time)
    mcu.start()
    emulator.start()
    buses.start()
    print(f"microcontroller: {link.path}", flush=True)
    for bus_id, path in buses.ports.items():
        print(f"bus {bus_id}: {path}", flush=True)
    stop.wait(args.duration)
    emulator.stop()
    buses.stop()
    mcu.stop()
    link.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
