"""The demo's alerting part: the real alerting service (``farmwatch-alerts``, its own process)
texting through the emulated GSM modem on a pty, with its HTTP API on; the farm files' alert
rules at demo speed; and emulated farmers' phones that answer each alert SMS with ``OK n``.

The alerting service runs on real time (the readings carry real time stamps) while the scenario
runs ``speedup`` times faster, so the demo gives it the farm files with every duration of the
rules divided by the speed-up (``for_s`` 600 s becomes 3 s: ten simulated minutes), use per day
multiplied by it, and trend windows of a few simulated hours; see :func:`demo_rule`. Its
forecasts are then in real days: the view multiplies them back into simulated days. Days-left
*thresholds* are set out of reach, because their SMS would count real days ("0.0 d").
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from farmwatch_emulators.gsm_modem import GsmModemEmulator, SentSms
from farmwatch_shared.farm.alert_rules import (
    AlertRule,
    DaysLeftBelow,
    LevelFallingFaster,
    RainDeficit,
    Silent,
)
from farmwatch_shared.farm.model import FarmConfig, WaterLevelSensor

TREND_WINDOW_SIM_H = 6.0
"""Trend window of every days-left forecast in the demo, in simulated hours."""
OUT_OF_REACH_DAYS = 1e-6
"""A days-left threshold no forecast goes below while there is water."""
_DURATIONS = (
    "for_s",
    "resolve_for_s",
    "reminder_interval_s",
    "cooldown_s",
    "escalate_after_s",
    "after_s",
)
_ALERT = re.compile(r"^(?:ALERTA|ALERT) (\d+) ")


def demo_rule(rule: AlertRule, speedup: float) -> dict[str, Any]:
    """A rule's settings at demo speed (every key written out, defaults included)."""
    values = rule.model_dump(exclude_none=True)
    for key in _DURATIONS:
        if key in values:
            values[key] = math.ceil(values[key] / speedup)
    if isinstance(rule, Silent):
        values["after_s"] = max(values["after_s"], 60)  # the model's minimum
    if isinstance(rule, DaysLeftBelow):
        values["days"] = OUT_OF_REACH_DAYS
        values["trend_window_h"] = TREND_WINDOW_SIM_H / speedup
        values.pop("recover_above_days", None)
        if rule.litres_per_animal_day is not None:
            values["litres_per_animal_day"] = rule.litres_per_animal_day * speedup
    if isinstance(rule, LevelFallingFaster):
        values["rate_pct_per_h"] = rule.rate_pct_per_h * speedup
        values["window_min"] = rule.window_min / speedup
    if isinstance(rule, RainDeficit):
        values["days"] = max(1, round(rule.days / speedup))  # whole days: never judged
    return values


def forecast_rule(sensor: str, speedup: float) -> dict[str, Any]:
    """A days-left rule for a tank or trough that has none, so the alerting service forecasts
    it at demo speed too (its threshold out of reach)."""
    return {
        "id": f"demo-days-{sensor}",
        "type": "days_left_below",
        "sensor": sensor,
        "days": OUT_OF_REACH_DAYS,
        "trend_window_h": TREND_WINDOW_SIM_H / speedup,
        "for_s": math.ceil(600 / speedup),
    }


def demo_rules(config: FarmConfig, speedup: float) -> list[dict[str, Any]]:
    """Every rule of a farm at demo speed, plus a forecast rule per water sensor without one."""
    rules = [demo_rule(rule, speedup) for rule in config.alerts]
    forecast = {r.sensor for r in config.alerts if isinstance(r, DaysLeftBelow)}
    rules += [
        forecast_rule(s.id, speedup)
        for s in config.sensors
        if isinstance(s, WaterLevelSensor) and s.id not in forecast
    ]
    return rules


def toml_table(name: str, values: Mapping[str, Any]) -> str:
    """One ``[[name]]`` table of scalar values."""
    lines = [f"[[{name}]]"]
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            text = json.dumps(str(value), ensure_ascii=False)  # a TOML basic string
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def alert_farm_text(text: str, config: FarmConfig, speedup: float) -> str:
    """The farm file ``text`` with its ``[[alerts]]`` replaced by :func:`demo_rules`."""
    kept: list[str] = []
    in_alerts = False
    for line in text.splitlines():
        header = line.strip()
        if header.startswith("["):
            in_alerts = header == "[[alerts]]"
        if not in_alerts:
            kept.append(line)
    tables = [toml_table("alerts", rule) for rule in demo_rules(config, speedup)]
    note = f"# demo: the alert rules at {speedup:g}× speed (farmwatch_local/demo_alerts.py)\n"
    return "\n".join(kept) + "\n\n" + note + "\n".join(tables)


@dataclass(frozen=True)
class SmsLine:
    """One SMS through the emulated modem, as the demo shows it."""

    at_s: float
    """Real seconds since the demo started."""
    outgoing: bool
    """Sent by the alerting service (else: received from a phone)."""
    phone: str
    text: str
    """Outgoing: the text the modem emulator decoded from the PDUs it was given."""
    detail: str


def describe_pdu(sms: SentSms) -> str:
    """Encoding, parts and the start of the first PDU of a message the modem sent."""
    parts = len(sms.parts)
    return f"{sms.encoding}, {parts} parte(s) / part(s), PDU {sms.parts[0].pdu[:26]}…"


class FarmerPhones:
    """The farms' phones on the other side of the emulated modem: every SMS the modem sent is
    logged as a phone shows it; an alert (``ALERTA n`` / ``ALERT n``) to a primary contact is
    answered ``OK n`` after ``reply_delay_s``, as an SMS arriving at the modem."""

    def __init__(
        self,
        modem: GsmModemEmulator,
        primaries: Collection[str],
        started: float,
        reply_delay_s: float,
    ) -> None:
        self._modem = modem
        self._primaries = set(primaries)
        self._started = started
        self._delay = reply_delay_s
        self._lines: list[SmsLine] = []
        self._due: list[tuple[float, str, str]] = []
        self._seen = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="farmer-phones", daemon=True)

    def start(self) -> None:
        """Watch the modem in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join(2.0)

    def lines(self) -> list[SmsLine]:
        """Every SMS so far, oldest first."""
        with self._lock:
            return list(self._lines)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            sent = self._modem.sent[self._seen :]
            self._seen += len(sent)
            for sms in sent:
                self._log(SmsLine(now - self._started, True, sms.to, sms.text, describe_pdu(sms)))
                match = _ALERT.match(sms.text)
                if match is not None and sms.to in self._primaries:
                    self._due.append((now + self._delay, sms.to, f"OK {match.group(1)}"))
            for due in [d for d in self._due if d[0] <= now]:
                self._due.remove(due)
                _, phone, text = due
                self._modem.receive_sms(phone, text)
                self._log(SmsLine(now - self._started, False, phone, text, "SMS-DELIVER"))

    def _log(self, line: SmsLine) -> None:
        with self._lock:
            self._lines.append(line)


@dataclass(frozen=True)
class AlertsApi:
    """The alerting service's API as the demo reads it."""

    url: str
    token: str

    def farm(self, farm_id: str) -> dict[str, Any] | None:
        """``GET /v1/farms/<farm>``; None while it does not answer 200."""
        request = urllib.request.Request(f"{self.url}/v1/farms/{farm_id}")
        request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except (OSError, ValueError):  # not up yet, standby (503), an answer cut short
            return None

    def wait_ready(self, farm_id: str, timeout_s: float, alive: Callable[[], bool]) -> bool:
        """Until the service answers for ``farm_id`` (it holds the lease) or ``alive()`` is
        false or the time is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and alive():
            if self.farm(farm_id) is not None:
                return True
            time.sleep(0.1)
        return False
