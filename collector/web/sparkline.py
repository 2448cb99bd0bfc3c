"""A 7-day sparkline as inline SVG, drawn on the server: a pure function of the points."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 240
HEIGHT = 48


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def sparkline_path(
    points: Sequence[tuple[int, float]],
    *,
    start_ms: int,
    end_ms: int,
    lo: float,
    hi: float,
    gap_ms: int,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """The SVG path data of ``points`` (ts_ms, value; oldest first) in a ``width`` × ``height``
    box spanning ``start_ms``–``end_ms`` and ``lo``–``hi`` (values outside are clamped to the
    edge). The line breaks where two points are more than ``gap_ms`` apart (no data is drawn as
    no data, not as a slope); a point alone becomes a short dash."""
    if end_ms <= start_ms or hi <= lo:
        raise ValueError("empty time or value range")
    span_t = end_ms - start_ms
    span_v = hi - lo
    parts: list[str] = []
    previous_ts: int | None = None
    run = 0
    for ts, value in points:
        if ts < start_ms or ts > end_ms:
            continue
        x = (ts - start_ms) / span_t * width
        y = height - (min(max(value, lo), hi) - lo) / span_v * height
        starts = previous_ts is None or ts - previous_ts > gap_ms
        if starts:
            if run == 1:
                parts.append("h1")
            parts.append(f"M{_num(x)} {_num(y)}")
            run = 1
        else:
            parts.append(f"L{_num(x)} {_num(y)}")
            run += 1
        previous_ts = ts
    if run == 1:
        parts.append("h1")
    return "".join(parts)


def sparkline_svg(
    points: Sequence[tuple[int, float]],
    *,
    start_ms: int,
    end_ms: int,
    lo: float,
    hi: float,
    label: str,
    guides: Sequence[float] = (),
    gap_ms: int = 3 * 3_600_000,
) -> Markup:
    """An inline ``<svg>`` of the points with dashed horizontal guides (thresholds, wilting
    point, field capacity); ``label`` is its accessible name. Empty Markup without points."""
    path = sparkline_path(points, start_ms=start_ms, end_ms=end_ms, lo=lo, hi=hi, gap_ms=gap_ms)
    if not path:
        return Markup("")
    lines = "".join(
        f'<path class="g" d="M0 {_num(HEIGHT - (g - lo) / (hi - lo) * HEIGHT)}H{WIDTH}"/>'
        for g in guides
        if lo < g < hi
    )
    return Markup(
        f'<svg class="spark" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(label)}">{lines}<path d="{path}"/></svg>'
    )
