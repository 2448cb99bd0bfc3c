"""docs/alerts.md quotes the SMS the alerting service sends: the texts are rendered here by the
real engine, command handler and message templates (SQLite store in a temporary directory), so
the quotes cannot drift from the code."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from collector.alerts.commands import CommandHandler
from collector.alerts.engine import AlertEngine
from collector.alerts.messages import AlertFacts, Language, render
from collector.alerts.store import AlertStore
from farmwatch_shared.contract import Reading, ReadingBatch, SensorKind
from farmwatch_shared.farm.alert_rules import Contact
from farmwatch_shared.farm.model import FarmConfig, load_farm_config
from farmwatch_shared.problems import ProblemLog

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "alerts.md"
T0 = 1_795_000_000_000
MINUTE = 60_000
PHONE = "+529510000001"


class SteppedClock:
    """Wall and monotonic time both set by the test."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return self.now / 1000

    def sleep(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


def quoted() -> set[str]:
    """Every line of the fenced blocks of docs/alerts.md, and the part after each ``→``."""
    blocks = re.findall(r"^```\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    return {line.strip() for line in lines} | {line.split("→")[-1].strip() for line in lines}


def farm(name: str) -> FarmConfig:
    return load_farm_config(REPO / "firmware_configs" / f"{name}.toml")


def conversation(tmp_path: Path, language: Language) -> dict[str, str]:
    """oax-mixteca with one contact: the trough runs low, the alert fires, the contact texts;
    returns each message sent, by what prompted it."""
    contact = Contact(name="Encargado", phone=PHONE, language=language)
    config = farm("oax-mixteca").model_copy(update={"contacts": (contact,)})
    farms = {config.farm.id: config}
    clock = SteppedClock(T0)
    store = AlertStore(tmp_path / f"alerts-{language}.sqlite3", clock)
    problems = ProblemLog(logging.getLogger("test.alert_docs"))
    engine = AlertEngine(store, farms, clock, problems, "test-boot")
    level = SensorKind.WATER_LEVEL
    for step, minute in enumerate(range(0, 121, 10)):  # 2 h; the tank falls 0.5 %/h
        clock.now = T0 + minute * MINUTE
        tank = Reading(2 * step, "tank-main", level, clock.now, 80 - minute / 120, "%", 0.0)
        trough = Reading(2 * step + 1, "trough-north", level, clock.now, 19.0, "%", 0.0)
        engine.ingest_batch(ReadingBatch(1, config.farm.id, "pi-1", [tank, trough]))
        engine.tick()
    handler = CommandHandler(store, farms, clock, problems)
    prompts = ("OK 1", "OK 1 (again)", "OK 99", "NIVEL", "LEVEL", "hola")
    for number, prompt in enumerate(prompts):
        store.add_incoming(PHONE, prompt.removesuffix(" (again)"), str(number), clock.now)
        handler.handle_pending()
    sent = store.sms_log(config.farm.id)
    (firing,) = (str(m["text"]) for m in sent if m["kind"] == "firing")
    replies = [str(m["text"]) for m in sent if m["kind"] == "reply"]
    return {"firing": firing, **dict(zip(prompts, replies, strict=True))}


@pytest.mark.parametrize("language", ["es", "en"])
def test_the_quoted_sms_are_what_the_service_sends(tmp_path: Path, language: Language) -> None:
    quotes = quoted()
    for prompt, text in conversation(tmp_path, language).items():
        assert text in quotes, f"docs/alerts.md does not quote what {prompt} gets: {text!r}"


def test_the_quoted_alert_texts_are_the_templates() -> None:
    mixteca, istmo = farm("oax-mixteca"), farm("oax-istmo")
    trough_low = next(r for r in mixteca.alerts if r.id == "trough-north-low")
    trough = next(s for s in mixteca.sensors if s.id == "trough-north")
    tank_days = next(r for r in istmo.alerts if r.id == "tank-days-left")
    tank = next(s for s in istmo.sensors if s.id == "tank-steel")
    resolved = AlertFacts(mixteca.farm.name, trough_low, trough.label, 41.0, None, 1)
    days_left = AlertFacts(istmo.farm.name, tank_days, tank.label, 3.2, None, 4)
    texts = [render("resolved", resolved, "es", False), render("firing", days_left, "en", False)]
    quotes = quoted()
    for text in texts:
        assert text in quotes, text
