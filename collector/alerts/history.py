"""Copies the alert event log and the sent-SMS log to InfluxDB (measurements ``alert_event`` and
``sms_sent``) so dashboards can show alert history. SQLite stays the record: rows are marked
exported only after the database accepted them, so an outage only delays the copy."""

from __future__ import annotations

from collector.alerts.store import AlertStore
from farmwatch_shared.influx import PermanentWriteError, PointWriter, RetryableWriteError
from farmwatch_shared.lineprotocol import generic_line
from farmwatch_shared.problems import ProblemLog


class HistoryExporter:
    """Writes not-yet-exported log rows with the collector's writer."""

    def __init__(self, store: AlertStore, writer: PointWriter, problems: ProblemLog) -> None:
        self._store = store
        self._writer = writer
        self._problems = problems
        self.exported = 0

    def export(self) -> int:
        """Write one batch; return how many rows were exported."""
        events, sms = self._store.unexported()
        if not events and not sms:
            return 0
        lines = []
        for e in events:
            fields: dict[str, float | int | bool | str] = {
                "from_state": e["from_state"],
                "incident": int(e["incident"] or 0),
                "rule_type": e["detail"] or "",
            }
            if e["value"] is not None:
                fields["value"] = float(e["value"])
            tags = {"farm": e["farm"], "rule": e["rule"], "state": e["to_state"]}
            lines.append(generic_line("alert_event", tags, fields, int(e["ts"])))
        lines += [
            generic_line(
                "sms_sent",
                {
                    "farm": s["farm"],
                    "channel": s["channel"] or "",
                    "kind": s["kind"],
                    "to": "…" + s["phone"][-4:],
                },
                {
                    "incident": int(s["incident"] or 0),
                    "attempts": int(s["attempts"]),
                    "chars": len(s["text"]),
                    "delay_s": (int(s["sent_ms"]) - int(s["created_ms"])) / 1000.0,
                },
                int(s["sent_ms"]),
            )
            for s in sms
        ]
        try:
            self._writer.write(lines)
        except RetryableWriteError as exc:
            self._problems.report("history_database_unavailable", str(exc))
            return 0
        except PermanentWriteError as exc:
            self._problems.report("history_refused", str(exc))
        self._store.mark_exported([e["id"] for e in events], [s["id"] for s in sms])
        self.exported += len(events) + len(sms)
        return len(events) + len(sms)
