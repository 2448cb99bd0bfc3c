"""Two-way SMS: operators reply ``OK <n>`` to acknowledge alert n (stops reminders and
escalation) or text ``NIVEL``/``LEVEL`` for their farm's water levels and days left. Only phone
numbers registered as contacts are answered (compared as normalised E.164 numbers; a message
from an alphanumeric sender ID never gets here as a command, see ``service.py``); anything else
is logged and ignored. A message whose handling fails is marked handled with outcome ``error``
(logged once per cause): it is never retried in a loop, and the messages behind it are
answered."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Mapping

from collector.alerts.evaluate import water_forecast
from collector.alerts.messages import Language, finish, label_for
from collector.alerts.privacy import mask_phone, redact
from collector.alerts.store import AlertStore
from farmwatch_shared.clock import Clock
from farmwatch_shared.farm.alert_rules import Contact, DaysLeftBelow
from farmwatch_shared.farm.model import FarmConfig, WaterLevelSensor
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)

_ACK = re.compile(r"^\s*OK\s*#?\s*(\d{1,9})\s*[.!]?\s*$", re.IGNORECASE)
_LEVEL = {"NIVEL": "es", "NIVELES": "es", "LEVEL": "en", "LEVELS": "en"}
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s().-]")


def normalize_number(phone: str) -> str | None:
    """``phone`` as an E.164 number (``+`` and digits, separators dropped), None if it is not
    one: such a sender matches no contact."""
    number = _SEPARATORS.sub("", phone)
    return number if _E164.match(number) else None


class CommandHandler:
    """Answers received messages; replies go through the SMS outbox."""

    def __init__(
        self,
        store: AlertStore,
        farms: Mapping[str, FarmConfig],
        clock: Clock,
        problems: ProblemLog,
    ) -> None:
        self._store = store
        self._farms = dict(farms)
        self._clock = clock
        self._problems = problems

    def _contacts(self, phone: str) -> list[tuple[FarmConfig, Contact]]:
        number = normalize_number(phone)
        if number is None:
            return []
        return [
            (farm, contact)
            for farm in self._farms.values()
            for contact in farm.contacts
            if normalize_number(contact.phone) == number
        ]

    def handle_pending(self) -> int:
        """Answer every stored message not handled yet; return how many were handled."""
        handled = 0
        for inbox_id, phone, text in self._store.unhandled_incoming():
            try:
                with self._store.transaction():
                    outcome = self._handle(inbox_id, phone, text)
                    self._store.incoming_handled(inbox_id, outcome)
            except sqlite3.OperationalError:
                raise  # the store failed, not this message: stop, answer it after the restart
            except Exception as exc:  # noqa: BLE001 - one message's failure stays with it
                self._problems.report(
                    f"command_failed_{type(exc).__name__}",
                    f"SMS de {mask_phone(phone)} no atendido / not handled: {redact(str(exc))}",
                )
                self._store.incoming_handled(inbox_id, "error")
            handled += 1
        return handled

    def _handle(self, inbox_id: int, phone: str, text: str) -> str:
        registered = self._contacts(phone)
        if not registered:
            self._problems.report(
                "sms_from_unknown_number",
                f"SMS de número desconocido ignorado / from unknown number {mask_phone(phone)}",
            )
            return "ignored_unknown_number"
        farm, contact = registered[0]
        now = self._clock.now_ms()
        words = text.strip().upper()
        if (m := _ACK.match(text)) is not None:
            number = int(m.group(1))
            incident = self._store.incident(number)
            farms_of_phone = {f.farm.id for f, _ in registered}
            es = contact.language == "es"
            if incident is None or incident.farm not in farms_of_phone:
                reply = f"No hay alerta {number}." if es else f"No alert {number}."
                outcome = "ack_unknown_incident"
            elif self._store.acknowledge(number, phone, now, via="sms"):
                log.info("Alerta %d reconocida / acknowledged by %s", number, mask_phone(phone))
                reply = (
                    f"Alerta {number} recibida, gracias. No se escalará."
                    if es
                    else f"Alert {number} acknowledged, thanks. No escalation."
                )
                outcome = "acknowledged"
            else:
                reply = (
                    f"Alerta {number} ya estaba recibida."
                    if es
                    else f"Alert {number} was already acknowledged."
                )
                outcome = "already_acknowledged"
        elif words in _LEVEL:
            language: Language = "es" if _LEVEL[words] == "es" else "en"
            reply = " | ".join(self.levels_report(f, language) for f, _ in registered)
            outcome = "levels"
        else:
            reply = (
                "Comandos: OK <numero> para recibir una alerta, NIVEL para los niveles de agua."
                if contact.language == "es"
                else "Commands: OK <number> to acknowledge an alert, LEVEL for water levels."
            )
            outcome = "help"
        self._store.enqueue_sms(
            f"reply/{inbox_id}",
            farm.farm.id,
            phone,
            finish(reply, contact.ascii_only),
            "reply",
            None,
            now,
        )
        return outcome

    def levels_report(self, farm: FarmConfig, language: Language) -> str:
        """Current level of every tank and trough of a farm, with days left where known."""
        now = self._clock.now_ms()
        parts = []
        for sensor in farm.sensors:
            if not isinstance(sensor, WaterLevelSensor):
                continue
            name = label_for(sensor.label, sensor.id, language)
            latest = self._store.latest(farm.farm.id, sensor.id)
            if latest is None:
                parts.append(f"{name} " + ("sin datos" if language == "es" else "no data"))
                continue
            rule = next(
                (r for r in farm.alerts if isinstance(r, DaysLeftBelow) and r.sensor == sensor.id),
                None,
            )
            forecast = water_forecast(self._store, farm.farm.id, sensor.id, now, rule)
            text = f"{name} {latest[1]:.0f}%"
            if forecast is not None and forecast.days_left is not None:
                text += f" ({forecast.days_left:.1f} d)"
            parts.append(text)
        head = "NIVEL" if language == "es" else "LEVEL"
        return f"{head} {farm.farm.name}: " + "; ".join(parts)
