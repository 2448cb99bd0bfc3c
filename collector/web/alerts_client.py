"""Client of the alerting service's HTTP API (``collector/alerts/api.py``, docs/alerts.md).

The alerting service is the one writer of incident state: the page reads a farm's open
incidents and water forecasts from it and sends acknowledgements to it, never to its
database. Several URLs may be configured (an active instance and a standby, or shards): they
are tried in order, and one that answers 503 (standby), 404 (a shard that does not own the
farm) or not at all hands over to the next; the one that answered is asked first next time.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import urllib3
from pydantic import SecretStr

log = logging.getLogger(__name__)


class Incident(msgspec.Struct, frozen=True):
    """An open incident (pending or firing, not resolved)."""

    id: int
    rule: str
    type: str
    severity: str
    state: str
    opened_ms: int
    sensor: str | None = None
    agent: str | None = None
    value: float | None = None
    acked_ms: int | None = None
    acked_by: str | None = None
    """The user name for a web acknowledgement, the masked phone for an SMS one."""
    acked_via: str | None = None
    """``web`` or ``sms``."""
    text_es: str = ""
    text_en: str = ""

    def text(self, language: str) -> str:
        """The alert text in ``language`` (Spanish when there is no English one)."""
        return self.text_en if language == "en" and self.text_en else self.text_es


class WaterForecast(msgspec.Struct, frozen=True):
    """The days of water left the alerts use (``water_forecast`` of the alerting service)."""

    days_left: float | None = None
    """None: the level is not falling."""
    use_per_day: float | None = None
    unit: str = ""
    basis: str = ""


class LastSms(msgspec.Struct, frozen=True):
    """The farm's most recent SMS."""

    ts_ms: int
    kind: str
    text: str
    state: str


class FarmAlerts(msgspec.Struct, frozen=True):
    """``GET /v1/farms/<farm>``."""

    farm: str
    generated_ms: int
    incidents: list[Incident] = []
    forecasts: dict[str, WaterForecast | None] = {}
    last_sms: LastSms | None = None


_farm_decoder = msgspec.json.Decoder(FarmAlerts)


def parse_farm_alerts(body: bytes) -> FarmAlerts:
    """Decode a farm answer; raise AlertsUnavailableError when it is not one."""
    try:
        return _farm_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise AlertsUnavailableError(f"malformed answer of the alerting API: {exc}") from None


class AlertsUnavailableError(Exception):
    """No configured alerting API answered (or none answered for this farm)."""


class AckOutcome(enum.Enum):
    """What an acknowledgement came to."""

    ACKNOWLEDGED = "acknowledged"
    """This acknowledgement was the first."""
    ALREADY = "already"
    """Someone (by SMS or on the page) had acknowledged it before."""
    NOT_FOUND = "not_found"
    """No such open incident on this farm."""
    RESOLVED = "resolved"
    """It resolved meanwhile."""
    UNAVAILABLE = "unavailable"
    """No alerting API answered."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


_HAND_OVER = {404, 502, 503, 504}
"""Statuses that send the request on to the next URL."""


class AlertsClient:
    """Talks to the first alerting API of ``urls`` that answers for the farm."""

    def __init__(
        self,
        urls: Sequence[str],
        token: SecretStr,
        http: urllib3.PoolManager,
    ) -> None:
        if not urls:
            raise ValueError("no alerting API URL")
        self._urls = [url.rstrip("/") for url in urls]
        self._headers = {
            "Authorization": f"Bearer {token.get_secret_value()}",
            "Accept": "application/json",
        }
        self._http = http
        self._lock = threading.Lock()
        self._preferred = 0

    def _order(self) -> list[int]:
        with self._lock:
            first = self._preferred
        return [first] + [i for i in range(len(self._urls)) if i != first]

    def _request(self, method: str, path: str, body: bytes | None) -> _Answer | None:
        """The first answer that is not a hand-over (or the last 404), None if none came."""
        last: _Answer | None = None
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        for index in self._order():
            url = self._urls[index] + path
            try:
                response = self._http.request(method, url, body=body, headers=headers)
            except urllib3.exceptions.HTTPError as exc:
                log.warning("API de alertas sin respuesta / alerting API unreachable: %s", exc)
                continue
            answer = _Answer(response.status, response.data)
            if response.status in _HAND_OVER:
                if response.status == 404:
                    last = answer
                continue
            with self._lock:
                self._preferred = index
            return answer
        return last

    def farm(self, farm_id: str) -> FarmAlerts:
        """The farm's open incidents, forecasts and last SMS."""
        answer = self._request("GET", f"/v1/farms/{farm_id}", None)
        if answer is None or answer.status != 200:
            status = "no answer" if answer is None else f"HTTP {answer.status}"
            raise AlertsUnavailableError(f"alerting API for {farm_id}: {status}")
        return parse_farm_alerts(answer.body)

    def acknowledge(self, farm_id: str, incident_id: int, by: str) -> AckOutcome:
        """Acknowledge an incident, as ``OK n`` by SMS does (first one wins)."""
        body = json.dumps({"farm": farm_id, "by": by, "via": "web"}).encode()
        answer = self._request("POST", f"/v1/incidents/{incident_id}/ack", body)
        if answer is None:
            return AckOutcome.UNAVAILABLE
        if answer.status == 404:
            return AckOutcome.NOT_FOUND
        if answer.status == 409:
            return AckOutcome.RESOLVED
        if answer.status != 200:
            log.warning("API de alertas / alerting API: ack HTTP %s", answer.status)
            return AckOutcome.UNAVAILABLE
        try:
            acknowledged = json.loads(answer.body).get("acknowledged")
        except (ValueError, AttributeError):
            return AckOutcome.UNAVAILABLE
        return AckOutcome.ACKNOWLEDGED if acknowledged is True else AckOutcome.ALREADY
