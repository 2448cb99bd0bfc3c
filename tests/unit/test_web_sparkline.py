"""The server-drawn 7-day sparkline (collector/web/sparkline.py)."""

from __future__ import annotations

import re

import pytest

from collector.web.sparkline import HEIGHT, WIDTH, sparkline_path, sparkline_svg

H = 3_600_000


def coords(path: str) -> list[tuple[str, float, float]]:
    return [(c, float(x), float(y)) for c, x, y in re.findall(r"([ML])([\d.]+) ([\d.]+)", path)]


def test_points_span_the_box_oldest_left_and_high_values_up() -> None:
    path = sparkline_path(
        [(0, 0.0), (5 * H, 50.0), (10 * H, 100.0)],
        start_ms=0,
        end_ms=10 * H,
        lo=0,
        hi=100,
        gap_ms=6 * H,
    )
    assert coords(path) == [("M", 0, HEIGHT), ("L", WIDTH / 2, HEIGHT / 2), ("L", WIDTH, 0)]


def test_values_outside_the_scale_are_clamped_to_its_edges() -> None:
    path = sparkline_path(
        [(0, -20.0), (H, 140.0)], start_ms=0, end_ms=H, lo=0, hi=100, gap_ms=2 * H
    )
    assert [(x, y) for _, x, y in coords(path)] == [(0, HEIGHT), (WIDTH, 0)]


def test_a_gap_in_the_data_breaks_the_line_instead_of_bridging_it() -> None:
    points = [(0, 50.0), (H, 50.0), (6 * H, 40.0), (7 * H, 40.0)]
    path = sparkline_path(points, start_ms=0, end_ms=7 * H, lo=0, hi=100, gap_ms=3 * H)
    assert [c for c, _, _ in coords(path)] == ["M", "L", "M", "L"]


def test_a_lone_point_becomes_a_visible_dash() -> None:
    path = sparkline_path(
        [(0, 50.0), (5 * H, 60.0)], start_ms=0, end_ms=5 * H, lo=0, hi=100, gap_ms=H
    )
    assert path.count("h1") == 2


def test_points_outside_the_window_are_left_out() -> None:
    path = sparkline_path(
        [(-H, 10.0), (0, 20.0), (2 * H, 30.0), (3 * H, 40.0)],
        start_ms=0,
        end_ms=2 * H,
        lo=0,
        hi=100,
        gap_ms=3 * H,
    )
    assert len(coords(path)) == 2


def test_svg_carries_guides_inside_the_scale_and_an_escaped_label() -> None:
    svg = sparkline_svg(
        [(0, 20.0), (H, 30.0)],
        start_ms=0,
        end_ms=H,
        lo=0,
        hi=50,
        label='Suelo <20 cm> "Cuba 22"',
        guides=[12.0, 30.0, 80.0],
    )
    assert svg.startswith("<svg ")
    assert svg.count('class="g"') == 2  # 80 is off the scale
    assert "&lt;20 cm&gt;" in svg
    assert "<20 cm>" not in svg
    assert "<script" not in svg


def test_no_points_no_svg() -> None:
    assert sparkline_svg([], start_ms=0, end_ms=H, lo=0, hi=100, label="x") == ""


def test_a_week_of_hourly_points_stays_small() -> None:
    week = [(i * H, 50 + (i % 24)) for i in range(168)]
    svg = sparkline_svg(week, start_ms=0, end_ms=167 * H, lo=0, hi=100, label="tanque")
    assert len(svg) < 2600


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        sparkline_path([(0, 1.0)], start_ms=5, end_ms=5, lo=0, hi=1, gap_ms=1)
