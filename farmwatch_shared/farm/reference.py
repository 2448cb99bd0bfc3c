"""The farm-file reference (``docs/farm-file.md``), generated from the farm models.

Every table, key, type, unit, default, allowed value and description comes from the pydantic
models (``farm.model``, ``farm.alert_rules``, ``farm.register_maps``, ``calibration.vessels``,
``calibration.curves``): field descriptions are the attribute docstrings under each field, read
from the source with ``ast``; units come from the key's suffix (``_mm``, ``_s``, ``_pct``…).
Run ``python -m farmwatch_shared.farm.reference`` from the repository to rewrite the file;
``--check`` only compares (exit 1 when it is out of date).
"""

from __future__ import annotations

import argparse
import ast
import enum
import functools
import inspect
import json
import sys
import types
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.farm.register_maps import RegisterMap

DEFAULT_OUTPUT = Path("docs") / "farm-file.md"

# Section headings (bilingual), by anchor; a section without one is titled by its key.
TITLES = {
    "farm": "Granja / Farm",
    "agents": "Agentes / Agents",
    "agents-microcontroller": "Microcontrolador / Microcontroller",
    "sensors": "Sensores / Sensors",
    "sensors-source": "Fuente en un bus de campo / Field-bus source",
    "sensors-source-lorawansource": "Fuente LoRaWAN / LoRaWAN source",
    "sensors-transducer": "Transductor de nivel / Level transducer",
    "sensors-vessel": "Recipiente / Vessel",
    "alerts": "Reglas de alerta / Alert rules",
    "contacts": "Contactos / Contacts",
    "buses": "Buses de campo / Field buses",
    "buses-devices": "Dispositivos de un bus / Bus devices",
    "soil_curves": "Curvas de suelo / Soil curves",
    "soil_curves-curve": "Curva de calibración / Calibration curve",
    "calibrations": "Registros de calibración / Calibration records",
    "lorawan_devices": "Dispositivos LoRaWAN / LoRaWAN devices",
    "map-device": "Dispositivo / Device",
    "map-fields": "Valores del dispositivo / Device values",
}

# Variant headings (bilingual), by model class name; a variant without one is titled by its class.
VARIANT_TITLES = {
    "SoilMoistureSensor": "Humedad del suelo / Soil moisture",
    "RainGauge": "Pluviómetro / Rain gauge",
    "WaterLevelSensor": "Nivel de agua / Water level",
    "UltrasonicTransducer": "Ultrasónico / Ultrasonic",
    "PressureTransducer": "Presión / Pressure",
    "DepthTransducer": "Profundidad sumergida / Submersible depth",
    "VerticalCylinder": "Cilindro vertical / Vertical cylinder",
    "RectangularTrough": "Pileta rectangular / Rectangular trough",
    "HorizontalCylinder": "Cilindro horizontal / Horizontal cylinder",
    "StrappingTable": "Tabla de aforo / Strapping table",
    "LevelBelow": "Nivel bajo / Level below",
    "DaysLeftBelow": "Días de agua / Days of water left",
    "LevelFallingFaster": "Nivel que baja rápido / Level falling fast",
    "SoilMoistureBelow": "Suelo seco / Soil moisture below",
    "RainDeficit": "Falta de lluvia / Rain deficit",
    "Silent": "Sin datos / Silent",
    "PolynomialCurve": "Polinomio / Polynomial",
    "TableCurve": "Tabla / Table",
}

# Prose that the models cannot say, by anchor: where the semantics are described.
NOTES = {
    "sensors": "How raw values become calibrated values: [configuration.md](configuration.md).",
    "alerts": (
        "How rules are evaluated, the state machine and the SMS texts: [alerts.md](alerts.md)."
    ),
    "buses": (
        "Drivers (`modbus_rtu`, `sdi12`) and their `options`: [drivers.md](drivers.md); a "
        "`modbus_rtu` device names its [register map](#register-maps) in "
        '`options.register_map = "<name>"`.'
    ),
    "lorawan_devices": (
        "Codecs and their points, the network servers' set-up and what each guarantees: "
        "[lorawan.md](lorawan.md)."
    ),
    "calibrations": (
        "A probe's readings use the record in force at the reading's time; before its first "
        "record, the sensor's own `coefficients`."
    ),
}

# Units by key suffix (first match wins, longest first), and whole keys without a suffix.
UNIT_SUFFIXES = (
    ("_pct_per_h", "%/h"),
    ("_mm_h", "mm/h"),
    ("_kg_m3", "kg/m³"),
    ("_ms", "ms"),
    ("_mm", "mm"),
    ("_cm", "cm"),
    ("_kpa", "kPa"),
    ("_pct", "%"),
    ("_days", "d"),
    ("_min", "min"),
    ("_s", "s"),
    ("_h", "h"),
)
UNIT_KEYS = {"days": "d", "baudrate": "bit/s", "litres_per_animal_day": "L/animal/d"}

HEADER = (
    "clave / key",
    "tipo / type",
    "unidad / unit",
    "por defecto / default",
    "valores / allowed",
    "descripción / description",
)

INTRO = """\
<!-- Generado desde los modelos / generated from the models:
     python -m farmwatch_shared.farm.reference
     No editar a mano / do not edit by hand (tests/unit/test_farm_reference.py checks it). -->
# El archivo de granja / The farm file (`<farm>.toml`)

Un archivo TOML por granja describe lo que hay en ella: agentes, microcontroladores, sensores,
buses de campo, recipientes, calibraciones, reglas de alerta y contactos. Esta referencia se
genera de los modelos que lo validan: cada clave, su tipo, unidad, valor por defecto y valores
permitidos. `farmwatch-edge --check-config` y `farmwatch-collector --check-config` lo validan sin
arrancar nada.

One TOML file per farm says what is on the farm: agents, microcontrollers, sensors, field buses,
vessels, calibration records, alert rules and contacts. The edge agent, the collector, the
alerting service, the dashboards and the emulators all read it, validated by the models in
`farmwatch_shared/farm/` and `farmwatch_shared/calibration/`; this reference is generated from
them. The shipped farms (`firmware_configs/*.toml`) are complete examples.

- **required / obligatorio**: the key must be given; every other key has the default shown
  (*unset*: absent, which TOML cannot write otherwise — it has no null).
- Unknown keys are refused (a misspelt key is an error, not ignored), and so is a value outside
  the allowed range. Types: *string*, *integer*, *number* (an integer or a float), *boolean*,
  *array* (`[...]`), *table*; a nested table may be written inline
  (`vessel = { shape = "rectangular", ... }`) or as a sub-table (`[sensors.vessel]` after its
  `[[sensors]]`).
- The unit column comes from the key's name: {units}.
"""

MAP_INTRO = """\
A Modbus device on a `[[buses]]` entry names its register map in
`options.register_map = "<name>"`: the map is looked up beside the farm file
(`register_maps/<name>.toml`), then among the shipped maps (`farmwatch_shared/farm/shipped_maps/`).
One TOML file per device type; a sensor's `source.point` names one of its `[fields.<point>]`.
Every shipped map names its source (the manual it was taken from) in its header comment.
"""


@dataclass(frozen=True)
class Row:
    """One key of a table, as documented."""

    key: str
    type: str
    unit: str
    default: str
    allowed: str
    description: str


@dataclass(frozen=True)
class Target:
    """Something documented in a section of its own: a model or a discriminated union."""

    anchor: str
    toml: str
    """How the table is written, e.g. ``[[sensors]]``, ``[sensors.vessel]``."""
    path: str
    """Dotted key path, e.g. ``sensors.vessel``."""
    prefix: str
    """Anchor prefix of the document part (``map-`` for register-map files)."""
    models: tuple[type[BaseModel], ...]
    discriminator: str | None = None
    description: str = ""
    """The parent field's description (shown for a union, which has no docstring)."""


def render() -> str:
    """The whole reference, as Markdown."""
    out = _Writer()
    units = [f"`{suffix}` {unit}" for suffix, unit in UNIT_SUFFIXES]
    units += [f"`{key}` {unit}" for key, unit in UNIT_KEYS.items()]
    out.text(INTRO.replace("{units}", ", ".join(units)))
    out.heading(2, "Nivel superior / Top level", "top")
    out.text(_docstring(FarmConfig))
    out.table(_rows(FarmConfig, "", "", out))
    out.text(_checks_text(FarmConfig))
    out.flush(2)
    out.heading(2, "Mapas de registros / Register maps", "register-maps")
    out.text(MAP_INTRO)
    out.table(_rows(RegisterMap, "", "map-", out))
    out.flush(3)
    return out.result()


class _Writer:
    """Accumulates Markdown; nested targets met in a table are documented by ``flush``."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._pending: list[Target] = []
        self._done: dict[tuple[type[BaseModel], ...], str] = {}

    def result(self) -> str:
        return "\n".join(self._lines).rstrip("\n") + "\n"

    def text(self, text: str) -> None:
        if text:
            self._lines.extend([*text.rstrip("\n").split("\n"), ""])

    def heading(self, level: int, title: str, anchor: str) -> None:
        self._lines.extend([f'<a id="{anchor}"></a>', "", f"{'#' * level} {title}", ""])

    def table(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        self._lines.append("| " + " | ".join(HEADER) + " |")
        self._lines.append("|" + "---|" * len(HEADER))
        for row in rows:
            cells = (
                f"`{row.key}`",
                row.type,
                row.unit,
                row.default,
                row.allowed,
                row.description,
            )
            self._lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        self._lines.append("")

    def link(self, target: Target) -> str:
        """A link to ``target``'s section, queuing it the first time it is met."""
        anchor = self._done.get(target.models)
        if anchor is None:
            anchor = self._done[target.models] = target.anchor
            self._pending.append(target)
        title = TITLES.get(anchor, target.toml)
        return f"[{title}](#{anchor})"

    def flush(self, level: int) -> None:
        """Document the queued targets (and what they queue in turn) at ``level``."""
        pending, self._pending = self._pending, []
        for target in pending:
            self._section(target, level)
            self.flush(min(level + 1, 4))

    def _section(self, target: Target, level: int) -> None:
        self.heading(
            level, f"{TITLES.get(target.anchor, target.path)}: `{target.toml}`", target.anchor
        )
        if target.discriminator is None:
            (model,) = target.models
            self.text(_docstring(model))
            self.text(NOTES.get(target.anchor, ""))
            self.table(_rows(model, target.path, target.prefix, self))
            self.text(_checks_text(model))
        else:
            self._union(target, target.discriminator, min(level + 1, 4))

    def _union(self, target: Target, key: str, level: int) -> None:
        values = [_discriminator_value(m, key) for m in target.models]
        self.text(
            f"{target.description} One of {len(values)} variants, chosen by `{key}`: "
            + ", ".join(f"`{v}`" for v in values)
            + "."
        )
        self.text(NOTES.get(target.anchor, ""))
        variant_rows = [_rows(m, target.path, target.prefix, self) for m in target.models]
        common = _common_rows(variant_rows)
        selector = Row(
            key, "string", "", "required", ", ".join(f'`"{v}"`' for v in values), "The variant."
        )
        self.text("Claves de todas las variantes / Keys of every variant:")
        self.table([selector, *common.values()])
        for model, value, rows in zip(target.models, values, variant_rows, strict=True):
            title = VARIANT_TITLES.get(model.__name__, model.__name__)
            anchor = f"{target.anchor}-{value}"
            self.heading(level, f'{title}: `{key} = "{value}"`', anchor)
            self.text(_docstring(model))
            self.table([r for r in rows if r.key != key and common.get(r.key) != r])
            self.text(_checks_text(model))


def _common_rows(variant_rows: Sequence[Sequence[Row]]) -> dict[str, Row]:
    """The keys documented alike in most variants, in the first variant's order; a variant whose
    row differs (another default, another description) lists its own."""
    counts = Counter(row for rows in variant_rows for row in rows)
    keys_everywhere = set.intersection(*({r.key for r in rows} for rows in variant_rows))
    common: dict[str, Row] = {}
    for row, count in sorted(counts.items(), key=lambda item: -item[1]):
        if row.key in keys_everywhere and row.key not in common and 2 * count > len(variant_rows):
            common[row.key] = row
    order = [r.key for r in variant_rows[0]]
    return {key: common[key] for key in sorted(common, key=order.index)}


def _rows(model: type[BaseModel], path: str, prefix: str, out: _Writer) -> list[Row]:
    docs = field_docs(model)
    rows = []
    for name, info in model.model_fields.items():
        kind = _Type(out, f"{path}.{name}" if path else name, prefix, docs.get(name, ""))
        text = kind.describe(info.annotation, info.discriminator, info.metadata)
        rows.append(
            Row(
                key=name,
                type=text,
                unit=unit_of(name),
                default=_default(info),
                allowed=", ".join(kind.allowed),
                description=_markdown(docs.get(name, "")),
            )
        )
    return rows


class _Type:
    """Describes one field's type; collects its allowed values and links nested tables."""

    def __init__(self, out: _Writer, path: str, prefix: str, description: str) -> None:
        self._out = out
        self._path = path
        self._prefix = prefix
        self._description = _markdown(description)
        self.allowed: list[str] = []

    def describe(self, tp: Any, discriminator: object, metadata: Sequence[object]) -> str:
        """Type text of ``tp`` (a field annotation with its metadata)."""
        self._constraints(metadata)
        if isinstance(discriminator, str):
            return "table: " + self._target(tp, discriminator, f"[{self._path}]")
        return self._text(tp, f"[{self._path}]")

    def _text(self, tp: Any, toml: str) -> str:
        origin, args = get_origin(tp), get_args(tp)
        if origin is Annotated:
            inner, *meta = args
            self._constraints(meta)
            for item in meta:
                if isinstance(item, FieldInfo) and isinstance(item.discriminator, str):
                    return "table: " + self._target(inner, item.discriminator, toml)
            return self._text(inner, toml)
        if origin in (Union, types.UnionType):
            kept = [a for a in args if a is not type(None)]
            models = [a for a in kept if isinstance(a, type) and issubclass(a, BaseModel)]
            # one key, several kinds of table (``source``: a bus or a LoRaWAN device): the
            # first keeps the key's anchor, the others get one of their own
            return " or ".join(
                "table: " + self._target(a, None, toml, f"-{a.__name__.lower()}")
                if a in models[1:]
                else self._text(a, toml)
                for a in kept
            )
        if origin is Literal:
            self.allowed.extend(f"`{_toml_value(a)}`" for a in args)
            return "integer" if all(isinstance(a, int) for a in args) else "string"
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return "array of " + _plural(self._text(args[0], f"[{toml}]"))
            return "[" + ", ".join(self._text(a, toml) for a in args) + "]"
        if origin is dict:
            return "table of " + _plural(self._text(args[1], f"[{self._path}.<name>]"))
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return "table: " + self._target(tp, None, toml)
        return _SCALARS.get(tp, getattr(tp, "__name__", str(tp)))

    def _target(self, tp: Any, discriminator: str | None, toml: str, suffix: str = "") -> str:
        models = tuple(get_args(tp)) if discriminator else (tp,)
        anchor = self._prefix + self._path.replace(".", "-") + suffix
        target = Target(
            anchor, toml, self._path, self._prefix, models, discriminator, self._description
        )
        return self._out.link(target)

    def _constraints(self, metadata: Sequence[object]) -> None:
        for item in metadata:
            self.allowed.extend(_constraint_text(item))


def _plural(item: str) -> str:
    """``table: <link>`` → ``tables: <link>``; other item types stay as they are."""
    return "tables" + item.removeprefix("table") if item.startswith("table: ") else item


_SCALARS: dict[object, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    AwareDatetime: "date-time with offset",
    datetime: "date-time",
}


def _constraint_text(item: object) -> Iterator[str]:
    if isinstance(item, FieldInfo):
        for inner in item.metadata:
            yield from _constraint_text(inner)
        return
    bounds = (
        (annotated_types.Gt, "gt", ">"),
        (annotated_types.Ge, "ge", "≥"),
        (annotated_types.Lt, "lt", "<"),
        (annotated_types.Le, "le", "≤"),
    )
    for kind, attribute, symbol in bounds:
        if isinstance(item, kind):
            yield f"{symbol} {getattr(item, attribute)}"
    if isinstance(item, annotated_types.MinLen):
        yield f"length ≥ {item.min_length}"
    if isinstance(item, annotated_types.MaxLen):
        yield f"length ≤ {item.max_length}"
    if getattr(item, "allow_inf_nan", True) is False:
        yield "finite"
    pattern = getattr(item, "pattern", None)
    if isinstance(pattern, str):
        yield f"pattern `{pattern}`"


def unit_of(key: str) -> str:
    """The unit a key's name gives its value ("" when the name carries none)."""
    if key in UNIT_KEYS:
        return UNIT_KEYS[key]
    for suffix, unit in UNIT_SUFFIXES:
        if key.endswith(suffix):
            return unit
    return ""


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "each key's default"
    return f"`{_toml_value(value)}`"


def _toml_value(value: object) -> str:
    """``value`` written as in a TOML file."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _discriminator_value(model: type[BaseModel], key: str) -> str:
    (value,) = get_args(model.model_fields[key].annotation)
    return str(value.value if isinstance(value, enum.Enum) else value)


@functools.cache
def _module_tree(name: str) -> ast.Module:
    return ast.parse(inspect.getsource(sys.modules[name]))


def _class_node(model: type) -> ast.ClassDef | None:
    for node in _module_tree(model.__module__).body:
        if isinstance(node, ast.ClassDef) and node.name == model.__qualname__:
            return node
    return None


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field's attribute docstring (the string right under it), nearest class first."""
    docs: dict[str, str] = {}
    for cls in model.__mro__:
        node = _class_node(cls) if issubclass(cls, BaseModel) and cls is not BaseModel else None
        if node is None:
            continue
        for first, second in pairwise(node.body):
            if (
                isinstance(first, ast.AnnAssign)
                and isinstance(first.target, ast.Name)
                and isinstance(second, ast.Expr)
                and isinstance(second.value, ast.Constant)
                and isinstance(second.value.value, str)
            ):
                docs.setdefault(first.target.id, inspect.cleandoc(second.value.value))
    return docs


def validator_messages(model: type[BaseModel]) -> list[str]:
    """The messages of the ``ValueError``s a model's own methods raise (its validators and their
    helpers): the rules a file must follow beyond each key's type and range."""
    node = _class_node(model)
    if node is None:
        return []
    messages = []
    for method in node.body:
        if not isinstance(method, ast.FunctionDef) or not method.name.startswith("_"):
            continue
        for raised in ast.walk(method):
            if (
                isinstance(raised, ast.Raise)
                and isinstance(raised.exc, ast.Call)
                and isinstance(raised.exc.func, ast.Name)
                and raised.exc.func.id == "ValueError"
                and raised.exc.args
            ):
                messages.append(_message_text(raised.exc.args[0]))
    return messages


def _message_text(node: ast.expr) -> str:
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append("<" + ast.unparse(value.value).rsplit(".", 1)[-1] + ">")
        return "".join(parts)
    return ast.unparse(node)


def _checks_text(model: type[BaseModel]) -> str:
    messages = validator_messages(model)
    if not messages:
        return ""
    head = "Además se rechaza / also refused, with the message:"
    return head + "\n\n" + "\n".join(f"- `{m}`" for m in messages)


def _docstring(model: type[BaseModel]) -> str:
    return _markdown(inspect.cleandoc(model.__doc__ or ""))


def _markdown(text: str) -> str:
    """A docstring as Markdown: RST ````literal```` → ```literal```, lines joined."""
    return " ".join(text.replace("``", "`").split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the reference; exit 1 when it is out of date."""
    parser = argparse.ArgumentParser(
        prog="python -m farmwatch_shared.farm.reference",
        description="Genera la referencia del archivo de granja / writes the farm-file reference",
    )
    parser.add_argument(
        "output",
        nargs="?",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"archivo Markdown / Markdown file (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="solo comparar / only compare: exit 1 when the file is out of date",
    )
    args = parser.parse_args(argv)
    text = render()
    path: Path = args.output
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if args.check:
        if current != text:
            print(f"{path}: desactualizado / out of date; run {parser.prog}", file=sys.stderr)
            return 1
        return 0
    if current != text:
        path.write_text(text, encoding="utf-8")
        print(f"{path}: escrito / written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
