"""A whole emulated farm controller: the scenario's values sampled on every configured channel."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.scenario import DroughtScenario, raw_for
from farmwatch_shared.farm.model import SensorConfig


class FarmEmulator:
    """Samples each sensor of one agent from a scenario, with simulated time running
    ``speedup`` times faster than real time."""

    def __init__(
        self,
        mcu: McuEmulator,
        sensors: Sequence[SensorConfig],
        scenario: DroughtScenario | None = None,
        speedup: float = 60.0,
        start_s: float = 0.0,
    ) -> None:
        self.mcu = mcu
        self.sensors = tuple(sensors)
        self.scenario = scenario or DroughtScenario()
        self.speedup = speedup
        self.sim_s = start_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sim_time(self) -> float:
        """Seconds of simulated time since the scenario began."""
        return self.sim_s

    def sample_all(self) -> None:
        """Sample every channel at the current simulated time."""
        for sensor in self.sensors:
            self.mcu.sample(
                sensor.channel, raw_for(sensor, self.scenario.state_pct(sensor, self.sim_s))
            )

    def run(self, stop: threading.Event, samples: int | None = None) -> None:
        """Sample at the microcontroller's interval (scaled by ``speedup``) until stopped."""
        period = self.mcu.interval_s / self.speedup
        taken = 0
        next_at = time.monotonic()
        while not stop.is_set() and (samples is None or taken < samples):
            self.sample_all()
            taken += 1
            self.sim_s += self.mcu.interval_s
            next_at += period
            stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self, samples: int | None = None) -> None:
        """Run in a background thread."""
        self._thread = threading.Thread(
            target=self.run, args=(self._stop, samples), name="farm-emulator", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
