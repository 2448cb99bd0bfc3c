"""docs/farm-file.md is generated from the farm models, is up to date, and names every key.

The completeness checks walk the models on their own (not through the generator), so a key the
generator forgot, or one deleted from the file by hand, fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from farmwatch_shared.farm import reference
from farmwatch_shared.farm.alert_rules import LevelBelow, Silent
from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.farm.register_maps import RegisterMap

DOC = Path(__file__).resolve().parents[2] / "docs" / "farm-file.md"
ROW = re.compile(r"^\| `([^`]+)` \|(.*)\|$", re.MULTILINE)


def sections(text: str) -> dict[str, str]:
    """The text under each ``<a id="…">`` anchor, up to the next one."""
    parts = re.split(r'^<a id="([^"]+)"></a>$', text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def keys(section: str) -> set[str]:
    """The keys of a section's tables."""
    return set(rows(section))


def rows(section: str) -> dict[str, tuple[str, ...]]:
    """The cells after the key (type, unit, default, allowed, description) of each row."""
    found = {}
    for match in ROW.finditer(section):
        cells = tuple(c.strip() for c in re.split(r"(?<!\\)\|", match.group(2)))
        found[match.group(1)] = cells
    return found


def _models_in(tp: Any) -> Iterator[tuple[tuple[type[BaseModel], ...], str | None]]:
    """(variants, discriminator) of every model or discriminated union inside a type."""
    for arg in get_args(tp):
        if isinstance(arg, FieldInfo) and isinstance(arg.discriminator, str):
            (union, *_) = get_args(tp)
            yield tuple(get_args(union)), arg.discriminator
            return
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        yield (tp,), None
        return
    for arg in get_args(tp):
        yield from _models_in(arg)


def documented_models(
    model: type[BaseModel], path: str
) -> Iterator[tuple[type[BaseModel], list[str], str]]:
    """(model, anchors its keys may be documented under, discriminator) for each nested model;
    a variant's keys are under its own anchor or its union's (the keys every variant has)."""
    for name, info in model.model_fields.items():
        sub = f"{path}-{name}" if path else name
        found = list(_models_in(info.annotation))
        if isinstance(info.discriminator, str):
            found = [(tuple(get_args(info.annotation)), info.discriminator)]
        plain = [v for variants, d in found if d is None for v in variants]
        for variants, discriminator in found:
            for variant in variants:
                if discriminator is None:
                    # one key, several kinds of table: the first under the key's anchor
                    first = plain.index(variant) == 0
                    yield variant, [sub if first else f"{sub}-{variant.__name__.lower()}"], ""
                else:
                    (value,) = get_args(variant.model_fields[discriminator].annotation)
                    anchor = f"{sub}-{getattr(value, 'value', value)}"
                    yield variant, [anchor, sub], discriminator
                yield from documented_models(variant, sub)


def all_documented() -> dict[type[BaseModel], list[tuple[list[str], str]]]:
    """Every model of the farm file and of a register-map file, with the places (anchors,
    discriminator) it is reached at; a model reached twice (one curve union under soil curves
    and calibration records) needs documenting at one of them."""
    places: dict[type[BaseModel], list[tuple[list[str], str]]] = {
        FarmConfig: [(["top"], "")],
        RegisterMap: [(["register-maps"], "")],
    }
    for model, anchors, key in documented_models(FarmConfig, ""):
        places.setdefault(model, []).append((anchors, key))
    for model, anchors, key in documented_models(RegisterMap, ""):
        places.setdefault(model, []).append(([f"map-{a}" for a in anchors], key))
    return places


def test_the_reference_is_generated_from_the_models() -> None:
    assert DOC.read_text(encoding="utf-8") == reference.render(), (
        "docs/farm-file.md is out of date: run .venv/bin/python -m farmwatch_shared.farm.reference"
    )


def test_the_generator_check_mode_tells_an_out_of_date_file(tmp_path: Path) -> None:
    stale = tmp_path / "farm-file.md"
    assert reference.main([str(stale), "--check"]) == 1
    assert reference.main([str(stale)]) == 0
    assert reference.main([str(stale), "--check"]) == 0
    assert stale.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")


PLACES = all_documented()


@pytest.mark.parametrize(("model", "places"), PLACES.items(), ids=[m.__name__ for m in PLACES])
def test_every_key_of_every_model_is_in_its_section(
    model: type[BaseModel], places: list[tuple[list[str], str]]
) -> None:
    documented = sections(DOC.read_text(encoding="utf-8"))
    missing = []
    for anchors, discriminator in places:
        if anchors[0] not in documented:
            missing.append(f"no section {anchors[0]}")
            continue
        found = set().union(*(keys(documented.get(a, "")) for a in anchors))
        if discriminator:
            value = get_args(model.model_fields[discriminator].annotation)[0]
            if f'`{discriminator} = "{getattr(value, "value", value)}"`' in documented[anchors[0]]:
                found.add(discriminator)
        if not set(model.model_fields) - found:
            return
        missing.append(f"{anchors[0]} lacks {sorted(set(model.model_fields) - found)}")
    pytest.fail(f"{model.__name__}: " + "; ".join(missing))


def test_every_key_has_a_type_a_default_and_a_description() -> None:
    for section in sections(DOC.read_text(encoding="utf-8")).values():
        for key, (type_, _unit, default, _allowed, description) in rows(section).items():
            assert type_, key
            assert default, key
            assert description, key


def test_rain_and_level_keys_are_named_with_units_and_defaults() -> None:
    documented = sections(DOC.read_text(encoding="utf-8"))
    rain = rows(documented["sensors-rain"])
    assert rain["bucket_mm"][:4] == ("number", "mm", "`0.2`", "> 0, finite")
    assert rain["counter_modulo"][:4] == ("integer", "", "`65536`", "> 1")
    assert rain["min_tip_interval_ms"][:4] == ("number", "ms", "`50.0`", "≥ 0")
    assert rain["max_rate_mm_h"][:4] == ("number", "mm/h", "`300.0`", "> 0, finite")
    pressure = rows(documented["sensors-transducer-pressure"])
    assert pressure["offset_kpa"][:4] == ("number", "kPa", "`0.0`", "")
    assert pressure["sensor_elevation_mm"][:4] == ("number", "mm", "`0.0`", "")


def test_defaults_required_keys_and_allowed_values_come_from_the_models() -> None:
    documented = sections(DOC.read_text(encoding="utf-8"))
    rules = rows(documented["alerts"])
    assert rules["escalate_after_s"][:4] == ("integer", "s", "`3600`", "≥ 0")
    assert rules["severity"][2:4] == ('`"warning"`', '`"warning"`, `"critical"`')
    silent = rows(documented["alerts-silent"])
    assert silent["for_s"][2] == "`0`"
    assert silent["sensor"][2] == "unset"
    contact = rows(documented["contacts"])
    assert contact["phone"][2:4] == ("required", "pattern `^\\+[1-9][0-9]{6,14}$`")
    herd = "`set herd_size and litres_per_animal_day together`"
    assert herd in documented["alerts-days_left_below"]


@pytest.mark.parametrize(
    ("key", "unit"),
    [
        ("max_rate_mm_h", "mm/h"),
        ("min_tip_interval_ms", "ms"),
        ("rate_pct_per_h", "%/h"),
        ("density_kg_m3", "kg/m³"),
        ("after_s", "s"),
        ("days", "d"),
        ("counter_modulo", ""),
        ("address", ""),
    ],
)
def test_units_come_from_the_key_names(key: str, unit: str) -> None:
    assert reference.unit_of(key) == unit


def test_field_docstrings_are_read_from_the_source_along_the_class_hierarchy() -> None:
    assert reference.field_docs(Silent)["for_s"].startswith("``after_s`` already is the delay")
    assert reference.field_docs(LevelBelow)["for_s"].startswith("How long the condition")
    assert reference.field_docs(Silent)["resolve_for_s"].startswith("How long the recovery")
