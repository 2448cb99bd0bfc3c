"""What cannot wait for the batch age: the news an operator must hear about at once.

On a paid cellular link the uplink holds readings up to a long batch age (minutes to an hour,
``FARMWATCH_EDGE_BATCH_MAX_AGE_S``) and sends them together. Some readings cannot wait: a value
crossing a threshold of one of the farm file's alert rules (either way: firing or recovering),
a level falling fast since the last reading the server has, a sensor that went silent (or
speaks again after a silence), and the agent's own restart. ``Urgency`` tells the uplink when
the readings waiting in the outbox hold such news, so it sends them at once. Pure logic: no
I/O, no clock of its own (times are the readings' and the caller's ``now_ms``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from farmwatch_shared.contract import Reading, SensorKind
from farmwatch_shared.farm.alert_rules import (
    AlertRule,
    LevelBelow,
    LevelFallingFaster,
    SoilMoistureBelow,
)
from farmwatch_shared.farm.model import BusSource, FarmConfig

LEVEL_HYSTERESIS = 5.0
"""Recovery above a level threshold when the rule names none (the alerting service's default)."""
SOIL_HYSTERESIS = 2.0
SILENT_AFTER_INTERVALS = 3
"""A sensor that missed this many of its samples in a row is silent."""


@dataclass(frozen=True)
class SensorWatch:
    """What is news about one sensor."""

    bands: tuple[tuple[float, float], ...] = ()
    """(fires below, recovers at or above) of the sensor's threshold rules: a value going below
    the first is news, and so is one reaching the second again; noise inside the band is not."""
    fall: float | None = None
    """A fall of this much since the last reading the server has is news."""
    silent_after_ms: int | None = None
    """No reading for this long is news, and so is the next one after it."""


def watches(
    rules: Sequence[AlertRule],
    intervals_s: Mapping[str, float | None],
    *,
    level_fall: float | None,
    levels: Sequence[str] = (),
) -> dict[str, SensorWatch]:
    """The watches of an agent's sensors (``intervals_s``: sensor → sample interval, None when
    the agent does not set it: no silence is news) from its
    farm's alert rules; ``level_fall`` (level points) applies to the water-level sensors named
    in ``levels``, a ``level_falling_faster`` rule's rate × window to its sensor if smaller."""
    bands: dict[str, set[tuple[float, float]]] = {s: set() for s in intervals_s}
    falls: dict[str, float] = {s: level_fall for s in levels if level_fall is not None}
    for rule in rules:
        if not isinstance(rule, LevelBelow | SoilMoistureBelow | LevelFallingFaster):
            continue
        sensor = rule.sensor
        if sensor not in intervals_s:
            continue
        if isinstance(rule, LevelBelow | SoilMoistureBelow):
            margin = LEVEL_HYSTERESIS if isinstance(rule, LevelBelow) else SOIL_HYSTERESIS
            recover = rule.recover_above_pct
            above = rule.threshold_pct + margin if recover is None else recover
            bands[sensor].add((rule.threshold_pct, max(above, rule.threshold_pct)))
        else:
            points = rule.rate_pct_per_h * rule.window_min / 60
            falls[sensor] = min(points, falls.get(sensor, points))
    return {
        sensor: SensorWatch(
            bands=tuple(sorted(bands[sensor])),
            fall=falls.get(sensor),
            silent_after_ms=(
                None if interval is None else int(SILENT_AFTER_INTERVALS * interval * 1000)
            ),
        )
        for sensor, interval in intervals_s.items()
    }


def low_after(was_low: bool | None, value: float, band: tuple[float, float]) -> bool | None:
    """Whether a sensor is in a band's low zone after ``value`` (None: not known yet, inside the
    band from the start)."""
    below, recovered = band
    if value < below:
        return True
    if value >= recovered:
        return False
    return was_low


class Urgency:
    """Whether the readings waiting to be sent hold news (see the module docstring).

    The uplink calls ``reason`` with the readings waiting (in seq order, possibly again and
    again with more of them) and ``sent`` with those it published; each reading is examined
    once. A new ``Urgency`` has news: the agent (re)started.
    """

    def __init__(self, sensor_watches: Mapping[str, SensorWatch]) -> None:
        self._watches = dict(sensor_watches)
        self._restarted = True
        self._examined = -1
        self._latest: dict[str, Reading] = {}
        """Newest reading examined per sensor (sent or waiting)."""
        self._told: dict[str, float] = {}
        """Value of the newest reading sent per sensor: what the server knows."""
        self._silence_told: dict[str, int] = {}
        """Per sensor, the ts of its last reading when its silence was sent as news."""
        self._low: dict[tuple[str, int], bool | None] = {}
        """Per (sensor, band): in its low zone (the alert's side of the threshold)."""
        self._news: tuple[int, str] | None = None
        """(seq, why) of the first waiting reading that is news."""

    def reason(self, waiting: Sequence[Reading], now_ms: int) -> str | None:
        """Why the waiting readings must go now, or None if they can wait."""
        for reading in waiting:
            if reading.seq > self._examined:
                self._examine(reading)
        if self._restarted and waiting:
            return "restart"
        if self._news is not None:
            return self._news[1]
        for sensor in self._silent(now_ms):
            return f"silent {sensor}"
        return None

    def sent(self, readings: Sequence[Reading], now_ms: int) -> None:
        """The uplink published ``readings`` (new ones, in seq order)."""
        if not readings:
            return
        self._restarted = False
        for reading in readings:
            self._told[reading.sensor] = reading.value
        if self._news is not None and self._news[0] <= readings[-1].seq:
            self._news = None
        for sensor in self._silent(now_ms):
            self._silence_told[sensor] = self._latest[sensor].ts

    def _examine(self, reading: Reading) -> None:
        self._examined = reading.seq
        before = self._latest.get(reading.sensor)
        self._latest[reading.sensor] = reading
        watch = self._watches.get(reading.sensor)
        if watch is None:
            return
        why = self._why(reading, before, watch)  # keeps the zones up to date: always
        if why is not None and self._news is None:
            self._news = (reading.seq, why)

    def _why(self, reading: Reading, before: Reading | None, watch: SensorWatch) -> str | None:
        why = None
        for index, band in enumerate(watch.bands):  # every band's zone is kept up to date
            key = (reading.sensor, index)
            was = self._low.get(key)
            now = low_after(was, reading.value, band)
            self._low[key] = now
            if why is None and was is not None and now is not None and now != was:
                why = f"threshold {reading.sensor} {band[0] if now else band[1]:g}"
        if why is not None:
            return why
        if (
            before is not None
            and watch.silent_after_ms is not None
            and (reading.ts - before.ts >= watch.silent_after_ms)
        ):
            return f"back {reading.sensor}"
        told = self._told.get(reading.sensor)
        if watch.fall is not None and told is not None and told - reading.value >= watch.fall:
            return f"fall {reading.sensor}"
        return None

    def _silent(self, now_ms: int) -> list[str]:
        silent = []
        for sensor, latest in self._latest.items():
            after = self._watches[sensor].silent_after_ms if sensor in self._watches else None
            if after is None or now_ms - latest.ts < after:
                continue
            if self._silence_told.get(sensor) != latest.ts:
                silent.append(sensor)
        return silent


def farm_watches(
    farm: FarmConfig, agent_id: str, *, level_fall: float | None
) -> dict[str, SensorWatch]:
    """The watches of one agent's sensors from its farm file: sample intervals (the
    microcontroller's, or each field-bus device's; a LoRaWAN device sends when it wakes, so
    its silence is the network server's and the device health's to tell), alert rules, the
    water-level sensors."""
    intervals: dict[str, float | None] = {}
    devices = {
        (bus.id, str(device.address)): device.interval_s
        for bus in farm.buses_of(agent_id)
        for device in bus.devices
    }
    sample_s = farm.agent(agent_id).microcontroller.sample_interval_s
    levels = []
    for sensor in farm.sensors_of(agent_id):
        source = sensor.source
        if source is None:
            intervals[sensor.id] = sample_s
        elif isinstance(source, BusSource):
            intervals[sensor.id] = devices[(source.bus, str(source.address))]
        else:
            intervals[sensor.id] = None
        if sensor.kind is SensorKind.WATER_LEVEL:
            levels.append(sensor.id)
    return watches(farm.alerts, intervals, level_fall=level_fall, levels=levels)
