"""Copies the alert event log and the sent-SMS log to InfluxDB (measurements ``alert_event`` and
``sms_sent``) so dashboards can show alert history. SQLite stays the record: rows are marked
exported only after the database accepted them, so an outage only delays the copy. A batch the
database refuses (HTTP 400) is bisected, as the collector does, down to the rows it refuses:
the others are written, each refused row is marked refused (kept in SQLite, reported once per
cause) instead of the whole batch being marked exported. Phone numbers leave masked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collector.alerts.privacy import mask_phone, redact
from collector.alerts.store import AlertStore
from farmwatch_shared.influx import PermanentWriteError, PointWriter, RetryableWriteError
from farmwatch_shared.lineprotocol import generic_line
from farmwatch_shared.problems import ProblemLog

Row = tuple[str, int, str]
"""(table ``alert_events`` or ``sms``, row id, line)."""


def event_line(e: dict[str, Any]) -> str:
    """The ``alert_event`` point of an event row (an acknowledgement names who, a phone
    masked, and how: ``via`` ``sms`` or ``web``)."""
    fields: dict[str, float | int | bool | str] = {
        "from_state": e["from_state"],
        "incident": int(e["incident"] or 0),
    }
    detail = str(e["detail"] or "")
    if e["to_state"] == "acknowledged":
        via, sep, by = detail.partition(":")
        if not sep or via not in ("sms", "web"):  # older rows: the phone number alone
            via, by = "sms", detail
        fields["by"] = by if via == "web" else mask_phone(by)  # web: a user name
        fields["via"] = via
    else:
        fields["rule_type"] = redact(detail)
    if e["value"] is not None:
        fields["value"] = float(e["value"])
    tags = {"farm": e["farm"], "rule": e["rule"], "state": e["to_state"]}
    return generic_line("alert_event", tags, fields, int(e["ts"]))


def sms_line(s: dict[str, Any]) -> str:
    """The ``sms_sent`` point of a sent SMS row (the recipient masked)."""
    return generic_line(
        "sms_sent",
        {
            "farm": s["farm"],
            "channel": s["channel"] or "",
            "kind": s["kind"],
            "to": mask_phone(s["phone"]),
        },
        {
            "incident": int(s["incident"] or 0),
            "attempts": int(s["attempts"]),
            "chars": len(s["text"]),
            "delay_s": (int(s["sent_ms"]) - int(s["created_ms"])) / 1000.0,
        },
        int(s["sent_ms"]),
    )


class HistoryExporter:
    """Writes not-yet-exported log rows with the collector's writer."""

    def __init__(self, store: AlertStore, writer: PointWriter, problems: ProblemLog) -> None:
        self._store = store
        self._writer = writer
        self._problems = problems
        self.exported = 0
        self.refused = 0

    def export(self) -> int:
        """Write one batch; return how many rows were exported (written or refused)."""
        events, sms = self._store.unexported()
        rows: list[Row] = [("alert_events", int(e["id"]), event_line(e)) for e in events]
        rows += [("sms", int(s["id"]), sms_line(s)) for s in sms]
        if not rows:
            return 0
        try:
            self._write(rows)
        except RetryableWriteError as exc:
            self._problems.report("history_database_unavailable", str(exc))
            return 0
        self.exported += len(rows)
        return len(rows)

    def _write(self, rows: Sequence[Row]) -> None:
        """Write ``rows``; bisect a refused batch to the refused rows. Each accepted part is
        marked exported at once, so a retry after an outage never rewrites much."""
        try:
            self._writer.write([line for _, _, line in rows])
        except PermanentWriteError as exc:
            if len(rows) > 1:
                half = len(rows) // 2
                self._write(rows[:half])
                self._write(rows[half:])
                return
            table, row_id, line = rows[0]
            self.refused += 1
            self._problems.report("history_refused", f"{table} #{row_id}: {exc} :: {line[:200]}")
            self._store.mark_export_refused(table, row_id, str(exc))
            return
        self._store.mark_exported(
            [i for t, i, _ in rows if t == "alert_events"], [i for t, i, _ in rows if t == "sms"]
        )
