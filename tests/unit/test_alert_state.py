"""The alert state machine on the engine and its SQLite store: hysteresis, cooldown, reminders,
escalation, acknowledgement, restarts, and each rule type's condition."""

from __future__ import annotations

from pathlib import Path

from support.alert_feed import ESCALATION, FARM, PRIMARY, T0, Feed, level_rule

from collector.alerts.commands import CommandHandler
from farmwatch_shared.contract import AgentStatus
from farmwatch_shared.farm.alert_rules import (
    AlertRule,
    DaysLeftBelow,
    LevelFallingFaster,
    RainDeficit,
    Silent,
    SoilMoistureBelow,
)


def test_fires_after_for_s_then_resolves_after_hysteresis(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule())
    feed.reading("trough-north", 30, at_min=0)
    feed.reading("trough-north", 20, at_min=1)
    feed.reading("trough-north", 19, at_min=4)
    assert feed.states() == ["pending"]
    assert feed.sms() == []
    feed.reading("trough-north", 18, at_min=6)  # 5 minutes below: fires
    (alert,) = feed.sms("firing")
    assert alert["phone"] == PRIMARY
    assert str(alert["text"]).startswith(f"ALERTA {alert['incident']} Rancho modelo La Mixteca: ")
    assert "Bebedero potrero norte 18% (umbral 25%)" in str(alert["text"])
    feed.reading("trough-north", 30, at_min=10)  # above threshold, below recovery: still firing
    feed.reading("trough-north", 40, at_min=11)
    feed.reading("trough-north", 41, at_min=12)
    assert feed.sms("resolved") == []  # recovery must hold 2 minutes
    feed.reading("trough-north", 42, at_min=13)
    (resolved,) = feed.sms("resolved")
    assert str(resolved["text"]).startswith(f"RESUELTO {alert['incident']} ")
    assert feed.states() == ["pending", "firing", "resolved"]


def test_flapping_around_the_threshold_sends_one_alert(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule(for_s=0, cooldown_s=7200))
    minute = 0.0
    for _ in range(30):  # oscillates 23 ↔ 27 %, inside the hysteresis band
        feed.reading("trough-north", 23, at_min=minute)
        feed.reading("trough-north", 27, at_min=minute + 1)
        minute += 2
    assert len(feed.sms("firing")) == 1
    # wide flapping across the recovery level too: resolved and fired again within the cooldown
    for _ in range(5):
        feed.reading("trough-north", 40, at_min=minute)
        feed.reading("trough-north", 40, at_min=minute + 3)
        feed.reading("trough-north", 20, at_min=minute + 4)
        feed.reading("trough-north", 20, at_min=minute + 6)
        minute += 7
    assert feed.states().count("firing") == 6
    assert len(feed.sms("firing")) == 1  # cooldown: re-firings within 2 h are logged only
    assert feed.sms("resolved")[0]["incident"] == feed.sms("firing")[0]["incident"]
    # still firing when the cooldown ends: the operator hears about it then
    feed.tick(at_min=119)
    assert len(feed.sms("firing")) == 1
    feed.tick(at_min=120)
    assert len(feed.sms("firing")) == 2


def test_reminders_escalation_and_acknowledgement(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule(for_s=0, reminder_interval_s=1800, escalate_after_s=3600))
    feed.reading("trough-north", 10, at_min=0)
    (alert,) = feed.sms("firing")
    feed.tick(at_min=29)
    assert feed.sms("reminder") == []
    feed.tick(at_min=30)
    assert [m["phone"] for m in feed.sms("reminder")] == [PRIMARY]
    feed.tick(at_min=60)
    (escalation,) = feed.sms("escalation")
    assert escalation["phone"] == ESCALATION
    assert str(escalation["text"]).startswith(f"SIN RESPUESTA {alert['incident']} ")
    feed.tick(at_min=90)  # after escalating, reminders go to both
    assert sorted(str(m["phone"]) for m in feed.sms("reminder")) == [PRIMARY, PRIMARY, ESCALATION]
    assert feed.store.acknowledge(int(str(alert["incident"])), PRIMARY, feed.clock.now, via="sms")
    feed.tick(at_min=200)
    assert len(feed.sms("reminder")) == 3  # acknowledged: no more reminders
    assert "acknowledged" in feed.states()


def test_acknowledged_in_time_is_not_escalated(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule(for_s=0, escalate_after_s=3600))
    feed.reading("trough-north", 10, at_min=0)
    (alert,) = feed.sms("firing")
    handler = CommandHandler(feed.store, {FARM: feed.config}, feed.clock, feed.problems)
    feed.store.add_incoming(PRIMARY, f"ok {alert['incident']}", "26112912000000", feed.clock.now)
    handler.handle_pending()
    feed.tick(at_min=120)
    assert feed.sms("escalation") == []
    (reply,) = feed.sms("reply")
    assert reply["text"] == f"Alerta {alert['incident']} recibida, gracias. No se escalará."


def test_restart_in_the_middle_of_an_alert_neither_duplicates_nor_forgets(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule(for_s=300, reminder_interval_s=3600))
    feed.reading("trough-north", 20, at_min=0)
    feed.restart()  # pending survives
    feed.reading("trough-north", 20, at_min=5)
    assert len(feed.sms("firing")) == 1
    feed.restart()  # firing survives: the same readings again send nothing new
    feed.reading("trough-north", 20, at_min=6)
    feed.tick(at_min=30)
    assert len(feed.sms("firing")) == 1
    assert feed.sms("reminder") == []
    feed.restart()
    feed.tick(at_min=65)  # the reminder schedule survived the restarts
    assert len(feed.sms("reminder")) == 1
    feed.reading("trough-north", 50, at_min=70)
    feed.restart()
    feed.reading("trough-north", 50, at_min=73)
    assert len(feed.sms("resolved")) == 1
    assert feed.states() == ["pending", "firing", "reminder", "resolved"]


def test_other_rule_types(tmp_path: Path) -> None:
    rules: tuple[AlertRule, ...] = (
        SoilMoistureBelow(
            id="dry", type="soil_moisture_below", sensor="soil-20cm", threshold_pct=12, for_s=0
        ),
        RainDeficit(id="no-rain", type="rain_deficit", sensor="rain", min_mm=5, days=2, for_s=0),
        LevelFallingFaster(
            id="leak", type="level_falling_faster", sensor="tank-main", rate_pct_per_h=4, for_s=0
        ),
        DaysLeftBelow(
            id="days", type="days_left_below", sensor="tank-main", days=2, for_s=0, trend_window_h=2
        ),
        Silent(id="quiet", type="silent", agent="pi-1", after_s=1800),
    )
    feed = Feed(tmp_path, *rules)
    feed.reading("soil-20cm", 11.0, at_min=0, kind="soil_moisture")
    for i in range(0, 49 * 60, 60):  # two days of little rain
        feed.reading("rain", 0.1, at_min=i, kind="rain")
    for i in range(0, 121, 5):  # tank falls 6 %/h: a leak, and 2 h of trend → days left
        feed.reading("tank-main", 60 - 6 * i / 60, at_min=49 * 60 + i)
    events = feed.store.events(FARM)
    firing = {e["rule"]: e["value"] for e in events if e["to_state"] == "firing"}
    assert set(firing) == {"dry", "no-rain", "leak", "days"}
    assert firing["dry"] == 11.0
    assert abs(firing["no-rain"] - 4.8) < 1e-6  # 48 h × 0.1 mm < 5 mm
    assert abs(firing["leak"] - 6.0) < 1e-6
    assert abs(firing["days"] - 54 / 144) < 1e-6  # after 1 h of trend: 54 % at 144 %/day
    texts = [str(m["text"]) for m in feed.sms("firing")]
    assert any("baja 6.0%/h (umbral 4.0%/h), ¿fuga?" in t for t in texts)
    assert any("agua para 0.4 d (umbral 2.0 d)" in t for t in texts)
    # the agent's last will (offline): silent for after_s → fires
    feed.engine.ingest_status(AgentStatus(1, FARM, "pi-1", "offline"))
    feed.tick(at_min=49 * 60 + 120 + 29)
    assert "quiet" not in {e["rule"] for e in feed.store.events(FARM)}
    feed.tick(at_min=49 * 60 + 120 + 30)
    assert any("sin datos de pi-1 hace 0.5 h" in str(m["text"]) for m in feed.sms("firing"))


def test_old_samples_are_pruned(tmp_path: Path) -> None:
    feed = Feed(tmp_path, level_rule())
    for hour in range(0, 72, 6):
        feed.reading("trough-north", 60, at_min=hour * 60)
    feed.tick(at_min=72 * 60)
    kept = feed.store.samples(FARM, "trough-north", 0)
    # a level rule looks back one day (days left in its messages); one hour of margin
    assert [ts for ts, _, _ in kept] == [T0 + h * 3_600_000 for h in (48, 54, 60, 66)]
