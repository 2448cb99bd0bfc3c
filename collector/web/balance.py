"""Water balance per vessel and farm, per local day or month (pure; docs/web.md "Balance de agua").

Contract
--------
``farm_balance(farm, volumes, rain, start_ms, end_ms, period, rules) -> FarmBalance``

- ``volumes``: water_level sensor id → ``(ts_ms, litres)`` (the ``volume_l`` field), raw
  readings or 15-minute means, in any order; a sensor without series has no data. Series that
  start a day before ``start_ms`` give the first period settled levels and rates; points after
  ``end_ms`` only sharpen the last levels.
- ``rain``: ``(ts_ms, mm)`` of the farm's rain gauges, mm fallen in the interval ending at (raw
  readings) or starting at (15-minute sums) ``ts_ms``.
- Periods are the local days or months (``[farm] timezone``) overlapping ``[start_ms,
  end_ms)``; only changes inside that range count, each in the period where its quarter hour
  ends. ``complete`` says the period lies wholly inside the range.
- Litres are not rounded. Farm totals leave out transfers (water moved between the farm's own
  vessels); ``harvested + delivered - used = stored_end - stored_start``.

How each vessel is counted (``role``, ``fed_from`` in the farm file):

==================  ==========================================  ==============================
role                a rise is                                   a fall is
==================  ==========================================  ==============================
``rain_tank``       harvested when rain fell during it or up    transferred out to the vessels
                    to ``harvest_lag_h`` before; else delivered  it feeds, the rest drawn
``delivered_tank``  delivered (water truck, well pump)          as above
``storage``         delivered; transferred in if ``fed_from``   as above
``trough``          delivered (by hand); transferred in if      drunk
                    ``fed_from`` (a float valve)
==================  ==========================================  ==============================

Noise. Each series is averaged into 15-minute buckets and smoothed by a centred moving mean
over ± ``smooth_buckets`` (1 h). A rise or fall counts only as part of a swing of at least the
vessel's threshold, ``max(noise_floor_pct`` of its capacity, ``noise_sigmas`` × the noise of
the smoothed series), the noise estimated robustly (median absolute deviation of the bucketed
series' second differences, ÷ √(2·smooth_buckets + 1)). Swings are found by a zigzag
(hysteresis) filter on the smoothed series: the direction changes only once the level has come
back by the threshold from its last extreme, so jitter below it moves nothing, ever (a series
that never swung reads as flat). Within a swing the level is the smoothed series' monotone
envelope (its running maximum in a rise, minimum in a fall); after the last turning point its
running minimum, so a fall still under the threshold at the end counts, a rise never.

Inflow. Every rise is an inflow event, and outflow does not stop while a vessel fills: each
step of a rise adds the vessel's usual outflow at that hour (its mean fall outside rises at
that local hour, over all the days given) to its inflow and its outflow; what flowed out while
the level stood still inside a rise is booked at the next step up. A vessel with ``fed_from``
gets no such term: its fall is drinking minus its float valve's inflow, not its outflow. A
rain tank's rise is harvest at its steps during rain, up to ``harvest_lag_h`` after it and up
to the smoothing's hour before it; the other steps of a rise that had rain are harvest too,
unless together they reach the threshold (then they are a delivery).

Transfers. A fed vessel's rises are a transfer in from its tank, and that tank's transfer out.
A float valve refills its trough while the cattle drink, so part of the inflow never shows as
a rise. When the tank declares ``only_feeds_fed_vessels``, all its outflow is transfers: what
its fed vessels' rises do not explain is shared among them (by ``animals`` when each declares
it, equally otherwise) and their drunk is their fall plus that hidden inflow. Without it, a
fed trough's drunk is only its own fall, and the rest of its tank's fall is drawn.

Autonomy: water stored at the end ÷ mean daily use (drawn + drunk, farm total) over the last
``autonomy_window_days`` of the range: how long the water lasts if none comes in.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from farmwatch_shared.farm.model import FarmConfig, WaterLevelSensor

Period = Literal["day", "month"]
Series = Sequence[tuple[int, float]]
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class BalanceRules:
    """The noise and estimation settings (module docstring)."""

    bucket_ms: int = 15 * 60_000
    """Series are averaged into buckets of this length (the ``agg_15m`` aggregates')."""
    noise_floor_pct: float = 1.0
    """Smallest swing that counts, in % of the vessel's capacity."""
    noise_sigmas: float = 8.0
    """Smallest swing that counts, in standard deviations of the smoothed series' noise."""
    smooth_buckets: int = 4
    """The bucketed series is smoothed by a centred moving mean over ± this many buckets."""
    autonomy_window_days: float = 7.0
    """Recent use for the days of autonomy is averaged over this long."""


@dataclass(frozen=True)
class VesselBalance:
    """One vessel over one period, litres."""

    vessel: str
    role: str
    harvested_l: float = 0.0
    delivered_l: float = 0.0
    transferred_in_l: float = 0.0
    transferred_out_l: float = 0.0
    drawn_l: float = 0.0
    drunk_l: float = 0.0
    litres_per_animal_day: float | None = None
    """Drunk ÷ animals ÷ days; only for complete periods of a trough with ``animals``."""
    start_l: float | None = None
    """Stored at the start of the period (None: no data)."""
    end_l: float | None = None
    """Stored at the end of the period (None: no data)."""
    buckets: int = 0
    """15-minute buckets with data in the period (0: no data, the flows are not known)."""


@dataclass(frozen=True)
class FarmTotals:
    """The farm over one period, transfers left out, litres."""

    harvested_l: float
    delivered_l: float
    drawn_l: float
    drunk_l: float
    stored_start_l: float
    stored_end_l: float

    @property
    def used_l(self) -> float:
        """Water used: drawn + drunk."""
        return self.drawn_l + self.drunk_l


@dataclass(frozen=True)
class PeriodBalance:
    """One local day or month."""

    start_ms: int
    end_ms: int
    label: str
    """ISO date in farm time: ``2026-03-04`` (day) or ``2026-03`` (month)."""
    complete: bool
    vessels: dict[str, VesselBalance]
    """By sensor id, in farm-file order."""
    totals: FarmTotals


@dataclass(frozen=True)
class FarmBalance:
    """The balance of one farm over a range."""

    farm: str
    period: Period
    start_ms: int
    end_ms: int
    periods: list[PeriodBalance]
    autonomy_days: float | None
    """Stored ÷ recent use per day; None when nothing was used or too little data."""
    use_per_day_l: float | None
    stored_l: float | None
    """All vessels at the end of the range."""
    thresholds_l: dict[str, float]
    """Each vessel's smallest counted swing (its resolution), litres."""


# --- one vessel's series -------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    end_ms: int
    change_l: float
    inflow_l: float
    harvest: bool


@dataclass(frozen=True)
class _Track:
    times: list[int]
    levels: list[float]
    steps: list[_Step]
    """``steps[i - 1]`` goes from bucket ``i - 1`` to bucket ``i``."""
    threshold_l: float


def buckets(series: Series, bucket_ms: int) -> tuple[list[int], list[float]]:
    """Mean of the finite values in each bucket (bucket start times, ascending)."""
    sums: dict[int, list[float]] = {}
    for ts, value in series:
        if math.isfinite(value):
            sums.setdefault(ts - ts % bucket_ms, []).append(value)
    times = sorted(sums)
    return times, [math.fsum(sums[t]) / len(sums[t]) for t in times]


def smooth(times: Sequence[int], values: Sequence[float], half_width_ms: int) -> list[float]:
    """Local linear smoothing: at each bucket, the least-squares line through the buckets
    within ``± half_width_ms``, read at that bucket. Inside the series this is the centred
    moving mean; near its ends and gaps the line keeps a trend from being pulled back."""
    out = []
    lo = hi = 0
    for t in times:
        while times[lo] < t - half_width_ms:
            lo += 1
        while hi < len(times) and times[hi] <= t + half_width_ms:
            hi += 1
        hours = [(times[j] - t) / HOUR_MS for j in range(lo, hi)]
        window = values[lo:hi]
        mean_t, mean_x = statistics.fmean(hours), statistics.fmean(window)
        sxx = math.fsum((h - mean_t) ** 2 for h in hours)
        sxy = math.fsum((h - mean_t) * (x - mean_x) for h, x in zip(hours, window, strict=True))
        out.append(mean_x - (sxy / sxx) * mean_t if sxx > 0 else mean_x)
    return out


def noise_sigma(values: Sequence[float]) -> float:
    """Robust standard deviation of a series' noise, from its second differences."""
    second = [values[i + 1] - 2 * values[i] + values[i - 1] for i in range(1, len(values) - 1)]
    if len(second) < 3:
        return 0.0
    middle = statistics.median(second)
    mad = statistics.median(abs(d - middle) for d in second)
    return _MAD_TO_SIGMA * mad / math.sqrt(6.0)


def zigzag(values: Sequence[float], threshold: float) -> tuple[list[int], int]:
    """Turning points of a series whose swings are at least ``threshold``: their indices (the
    last one is the current extreme) and the direction of the first swing (+1 up, -1 down; 0 and
    no points when it never moved by the threshold)."""
    pivots: list[int] = []
    low = high = extreme = 0
    direction = first = 0
    for i, x in enumerate(values):
        if direction == 0:
            low = i if x < values[low] else low
            high = i if x > values[high] else high
            if x - values[low] >= threshold:
                pivots.append(low)
                direction = first = 1
                extreme = i
            elif values[high] - x >= threshold:
                pivots.append(high)
                direction = first = -1
                extreme = i
        elif (x - values[extreme]) * direction >= 0:
            extreme = i
        elif (values[extreme] - x) * direction >= threshold:
            pivots.append(extreme)
            direction = -direction
            extreme = i
    if direction:
        pivots.append(extreme)
    return pivots, first


def clean_levels(smoothed: Sequence[float], swings: tuple[Sequence[int], int]) -> list[float]:
    """The level without noise, from the smoothed series and its turning points: flat before
    the first; between two, the monotone envelope (running maximum in a rise, minimum in a
    fall); after the last, the running minimum (a fall not yet confirmed counts, a rise
    never). The mean of it all when it never swung."""
    pivots, first = swings
    if not pivots:
        return [statistics.fmean(smoothed)] * len(smoothed) if smoothed else []
    out = [smoothed[pivots[0]]] * len(smoothed)
    direction = first
    for k in range(len(pivots) - 1):
        envelope = smoothed[pivots[k]]
        for i in range(pivots[k] + 1, pivots[k + 1] + 1):
            envelope = max(envelope, smoothed[i]) if direction > 0 else min(envelope, smoothed[i])
            out[i] = envelope
        direction = -direction
    envelope = smoothed[pivots[-1]]
    for i in range(pivots[-1], len(smoothed)):
        envelope = min(envelope, smoothed[i])
        out[i] = envelope
    return out


class RainWindows:
    """When rain fell, by bucket: answers whether a level change was during or after rain."""

    def __init__(self, rain: Series, bucket_ms: int, lead_ms: int) -> None:
        self._bucket_ms = bucket_ms
        self._lead_ms = lead_ms
        self._starts = sorted({ts - ts % bucket_ms for ts, mm in rain if mm > 0})

    def near(self, start_ms: int, end_ms: int, lag_ms: int) -> bool:
        """Rain in a bucket that overlaps the change from bucket ``start_ms`` to bucket
        ``end_ms``, or that ended at most ``lag_ms`` before it, or began at most ``lead_ms``
        after it (the smoothing moves the start of a rise that early)."""
        i = bisect.bisect_left(self._starts, end_ms + self._bucket_ms + self._lead_ms)
        return i > 0 and self._starts[i - 1] + self._bucket_ms + lag_ms > start_ms


def rising_steps(count: int, swings: tuple[Sequence[int], int]) -> list[bool]:
    """Per bucket ``i``: whether the step into it lies in a rise (between a low and a high)."""
    pivots, direction = swings
    rising = [False] * count
    for k in range(len(pivots) - 1):
        if direction > 0:
            for i in range(pivots[k] + 1, pivots[k + 1] + 1):
                rising[i] = True
        direction = -direction
    return rising


def usual_outflow(
    times: Sequence[int], levels: Sequence[float], rising: Sequence[bool], zone: ZoneInfo
) -> list[float]:
    """The vessel's usual outflow (litres/ms) in each local hour of the day: the mean of its
    falls outside rises, that hour, over all the days given; the all-day mean for an hour
    never seen outside a rise."""
    fall = [0.0] * 24
    span = [0.0] * 24
    for i in range(1, len(times)):
        if not rising[i]:
            hour = _local_hour(times[i], zone)
            fall[hour] += levels[i - 1] - levels[i]
            span[hour] += times[i] - times[i - 1]
    total = sum(span)
    mean = max(math.fsum(fall) / total, 0.0) if total else 0.0
    return [max(f / d, 0.0) if d else mean for f, d in zip(fall, span, strict=True)]


def _local_hour(ts_ms: int, zone: ZoneInfo) -> int:
    return datetime.fromtimestamp(ts_ms / 1000, zone).hour


def inflows(
    times: Sequence[int],
    levels: Sequence[float],
    swings: tuple[Sequence[int], int],
    outflow: Sequence[float] | None,
    zone: ZoneInfo,
) -> list[float]:
    """Inflow per step: in a rise, each step up plus the outflow that went on meanwhile (the
    usual outflow of that hour; ``outflow`` None: none, a fed vessel), what went out while the
    level stood still carried to the next step up."""
    rising = rising_steps(len(times), swings)
    inflow = [0.0] * len(times)
    carry = 0.0
    last_up = 0
    for i in range(1, len(times)):
        if not rising[i]:
            if carry and last_up:
                inflow[last_up] += carry
            carry = 0.0
            continue
        during = outflow[_local_hour(times[i], zone)] * (times[i] - times[i - 1]) if outflow else 0
        step = levels[i] - levels[i - 1]
        if step > 0:
            inflow[i] = step + carry + during
            carry, last_up = 0.0, i
        else:
            carry += during
    if carry and last_up:
        inflow[last_up] += carry
    return inflow


def harvest_steps(
    times: Sequence[int],
    inflow: Sequence[float],
    swings: tuple[Sequence[int], int],
    threshold: float,
    rained: Callable[[int, int], bool],
) -> list[bool]:
    """Which steps' inflow is harvest, one rise at a time: the steps during or after rain
    (``rained(start, end)``); all of a rise that had rain unless its other steps together bring
    at least ``threshold`` (then those are a delivery; less is noise or the smoothing's lead)."""
    pivots, direction = swings
    harvest = [False] * len(times)
    for k in range(len(pivots) - 1):
        if direction > 0:
            steps = [i for i in range(pivots[k] + 1, pivots[k + 1] + 1) if inflow[i] > 0]
            wet = {i for i in steps if rained(times[i - 1], times[i])}
            dry = math.fsum(inflow[i] for i in steps if i not in wet)
            for i in steps:
                harvest[i] = i in wet or (bool(wet) and dry < threshold)
        direction = -direction
    return harvest


def track(
    sensor: WaterLevelSensor,
    series: Series,
    rain: RainWindows,
    zone: ZoneInfo,
    rules: BalanceRules,
) -> _Track:
    """One vessel's cleaned levels and, per bucket step, its change and inflow."""
    times, values = buckets(series, rules.bucket_ms)
    half = rules.smooth_buckets * rules.bucket_ms
    smoothed = smooth(times, values, half)
    capacity = sensor.vessel.volume_l(sensor.vessel.usable_height_mm)
    sigma = noise_sigma(values) / math.sqrt(2 * rules.smooth_buckets + 1)
    threshold = max(rules.noise_floor_pct / 100 * capacity, rules.noise_sigmas * sigma)
    swings = zigzag(smoothed, threshold)
    levels = clean_levels(smoothed, swings)
    rising = rising_steps(len(times), swings)
    outflow = None if sensor.fed_from else usual_outflow(times, levels, rising, zone)
    inflow = inflows(times, levels, swings, outflow, zone)
    harvest = [False] * len(times)
    if sensor.role == "rain_tank":
        lag_ms = int(sensor.harvest_lag_h * HOUR_MS)
        harvest = harvest_steps(
            times, inflow, swings, threshold, lambda a, b: rain.near(a, b, lag_ms)
        )
    steps = [
        _Step(times[i], levels[i] - levels[i - 1], inflow[i], harvest[i])
        for i in range(1, len(times))
    ]
    return _Track(times, levels, steps, threshold)


# --- periods ---------------------------------------------------------------------------------


def periods(
    timezone: str, start_ms: int, end_ms: int, period: Period
) -> list[tuple[int, int, str]]:
    """(start, end, label) of the local days or months overlapping ``[start_ms, end_ms)``."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(start_ms / 1000, zone).date()
    day = local.replace(day=1) if period == "month" else local
    result: list[tuple[int, int, str]] = []
    while True:
        following = _next(day, period)
        lo, hi = _local_ms(day, zone), _local_ms(following, zone)
        if lo >= end_ms:
            return result
        result.append((lo, hi, day.isoformat()[: 7 if period == "month" else 10]))
        day = following


def _next(day: date, period: Period) -> date:
    if period == "day":
        return day + timedelta(days=1)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _local_ms(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, time(0), tzinfo=zone).timestamp() * 1000)


@dataclass(frozen=True)
class _Sums:
    harvested: float = 0.0
    delivered: float = 0.0
    visible_in: float = 0.0
    change: float = 0.0
    start_l: float | None = None
    end_l: float | None = None
    buckets: int = 0


def _sums(sensor: WaterLevelSensor, track: _Track, lo: int, hi: int) -> _Sums:
    first = bisect.bisect_left(track.times, lo)
    last = bisect.bisect_left(track.times, hi)  # buckets [first, last) lie in the period
    if first >= last and (first == 0 or first == len(track.times)):
        return _Sums()
    steps = track.steps[max(first - 1, 0) : max(last - 1, 0)]
    inflow = math.fsum(s.inflow_l for s in steps if not s.harvest)
    harvested = math.fsum(s.inflow_l for s in steps if s.harvest)
    fed = sensor.fed_from is not None
    return _Sums(
        harvested=harvested,
        delivered=0.0 if fed else inflow,
        visible_in=inflow if fed else 0.0,
        change=math.fsum(s.change_l for s in steps),
        start_l=track.levels[max(first - 1, 0)],
        end_l=track.levels[max(last - 1, 0)],
        buckets=last - first,
    )


def _weights(fed: Sequence[WaterLevelSensor]) -> list[float]:
    animals = [v.animals for v in fed]
    if all(a is not None for a in animals):
        total = sum(a for a in animals if a is not None)
        return [(a or 0) / total for a in animals]
    return [1.0 / len(fed)] * len(fed)


def _depth(vessel: WaterLevelSensor, vessels: Mapping[str, WaterLevelSensor]) -> int:
    depth = 0
    while vessel.fed_from is not None:
        vessel = vessels[vessel.fed_from]
        depth += 1
    return depth


def _resolve(
    vessels: Mapping[str, WaterLevelSensor], sums: Mapping[str, _Sums], days: float | None
) -> dict[str, VesselBalance]:
    """Per-vessel flows of one period: transfers handed from each tank to the vessels it feeds
    (tanks first), then what is left of each vessel's outflow drawn or drunk."""
    transfer_in: dict[str, float] = {}
    result: dict[str, VesselBalance] = {}
    for vessel in sorted(vessels.values(), key=lambda v: _depth(v, vessels)):
        own = sums[vessel.id]
        received = transfer_in.get(vessel.id, own.visible_in)
        out = own.harvested + own.delivered + received - own.change
        fed = [v for v in vessels.values() if v.fed_from == vessel.id]
        shown = [sums[v.id].visible_in for v in fed]
        hidden = max(0.0, out - math.fsum(shown)) if vessel.only_feeds_fed_vessels else 0.0
        for child, visible, weight in zip(fed, shown, _weights(fed) if fed else [], strict=True):
            transfer_in[child.id] = visible + hidden * weight
        sent = math.fsum(transfer_in[v.id] for v in fed)
        rest = max(0.0, out - sent)
        trough = vessel.role == "trough"
        per_animal = None
        if trough and vessel.animals is not None and days is not None and own.buckets:
            per_animal = rest / vessel.animals / days
        result[vessel.id] = VesselBalance(
            vessel=vessel.id,
            role=vessel.role,
            harvested_l=own.harvested,
            delivered_l=own.delivered,
            transferred_in_l=received,
            transferred_out_l=sent,
            drawn_l=0.0 if trough else rest,
            drunk_l=rest if trough else 0.0,
            litres_per_animal_day=per_animal,
            start_l=own.start_l,
            end_l=own.end_l,
            buckets=own.buckets,
        )
    return {v: result[v] for v in vessels}


def _totals(vessels: Mapping[str, VesselBalance]) -> FarmTotals:
    flows = vessels.values()
    return FarmTotals(
        harvested_l=math.fsum(v.harvested_l for v in flows),
        delivered_l=math.fsum(v.delivered_l for v in flows),
        drawn_l=math.fsum(v.drawn_l for v in flows),
        drunk_l=math.fsum(v.drunk_l for v in flows),
        stored_start_l=math.fsum(v.start_l for v in flows if v.start_l is not None),
        stored_end_l=math.fsum(v.end_l for v in flows if v.end_l is not None),
    )


def _autonomy(
    vessels: Mapping[str, WaterLevelSensor],
    tracks: Mapping[str, _Track],
    end_ms: int,
    rules: BalanceRules,
) -> tuple[float | None, float | None, float | None]:
    """(days of autonomy, use per day, stored) at the end of the range."""
    known = {v: t for v, t in tracks.items() if t.times and t.times[0] < end_ms}
    if not known:
        return None, None, None
    earliest = min(t.times[0] for t in known.values())
    lo = max(end_ms - int(rules.autonomy_window_days * DAY_MS), earliest)
    sums = [_sums(vessels[v], t, lo, end_ms) for v, t in known.items()]
    stored = math.fsum(s.end_l for s in sums if s.end_l is not None)
    used = math.fsum(s.harvested + s.delivered - s.change for s in sums)
    latest = max(t.times[-1] for t in known.values()) + rules.bucket_ms
    span_days = (min(end_ms, latest) - lo) / DAY_MS
    if span_days < 1.0:
        return None, None, stored
    per_day = used / span_days
    return (stored / per_day if per_day > 0 else None), per_day, stored


def farm_balance(
    farm: FarmConfig,
    volumes: Mapping[str, Series],
    rain: Series,
    start_ms: int,
    end_ms: int,
    period: Period,
    rules: BalanceRules | None = None,
) -> FarmBalance:
    """The water balance of ``farm`` per local day or month (module docstring)."""
    rules = rules if rules is not None else BalanceRules()
    vessels = {s.id: s for s in farm.sensors if isinstance(s, WaterLevelSensor)}
    windows = RainWindows(rain, rules.bucket_ms, rules.smooth_buckets * rules.bucket_ms)
    zone = ZoneInfo(farm.farm.timezone)
    tracks = {v: track(s, volumes.get(v, ()), windows, zone, rules) for v, s in vessels.items()}
    result = []
    for lo, hi, label in periods(farm.farm.timezone, start_ms, end_ms, period):
        complete = lo >= start_ms and hi <= end_ms
        days = round((hi - lo) / DAY_MS) if complete else None
        clip_lo, clip_hi = max(lo, start_ms), min(hi, end_ms)
        sums = {v: _sums(vessels[v], t, clip_lo, clip_hi) for v, t in tracks.items()}
        flows = _resolve(vessels, sums, days)
        result.append(PeriodBalance(lo, hi, label, complete, flows, _totals(flows)))
    autonomy, per_day, stored = _autonomy(vessels, tracks, end_ms, rules)
    return FarmBalance(
        farm=farm.farm.id,
        period=period,
        start_ms=start_ms,
        end_ms=end_ms,
        periods=result,
        autonomy_days=autonomy,
        use_per_day_l=per_day,
        stored_l=stored,
        thresholds_l={v: t.threshold_l for v, t in tracks.items()},
    )


def combine(
    farm: FarmConfig, parts: Sequence[PeriodBalance], start_ms: int, end_ms: int, label: str
) -> PeriodBalance:
    """One period made of consecutive ones (the days of a month, each balanced on its own):
    flows summed, stored litres from the first and the last, litres per animal per day over
    the days when every part is complete."""
    animals = {s.id: s.animals for s in farm.sensors if isinstance(s, WaterLevelSensor)}
    complete = bool(parts) and all(p.complete for p in parts)
    days = round((end_ms - start_ms) / DAY_MS)
    vessels: dict[str, VesselBalance] = {}
    for vessel in parts[0].vessels if parts else ():
        mine = [p.vessels[vessel] for p in parts]
        starts = [v.start_l for v in mine if v.start_l is not None]
        ends = [v.end_l for v in mine if v.end_l is not None]
        drunk = math.fsum(v.drunk_l for v in mine)
        head = animals.get(vessel)
        vessels[vessel] = VesselBalance(
            vessel=vessel,
            role=mine[0].role,
            harvested_l=math.fsum(v.harvested_l for v in mine),
            delivered_l=math.fsum(v.delivered_l for v in mine),
            transferred_in_l=math.fsum(v.transferred_in_l for v in mine),
            transferred_out_l=math.fsum(v.transferred_out_l for v in mine),
            drawn_l=math.fsum(v.drawn_l for v in mine),
            drunk_l=drunk,
            litres_per_animal_day=drunk / head / days if complete and head and days else None,
            start_l=starts[0] if starts else None,
            end_l=ends[-1] if ends else None,
            buckets=sum(v.buckets for v in mine),
        )
    return PeriodBalance(start_ms, end_ms, label, complete, vessels, _totals(vessels))
