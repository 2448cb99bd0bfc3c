"""The alert history copy to a real InfluxDB: a refused row is isolated by bisection, its
neighbours land (finding 12); phone numbers leave the alert store masked to their last four
digits, in InfluxDB and in log lines (finding 19)."""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

import pytest
from support.alerts import FakeGateway
from support.clocks import SteppingClock
from support.harness import farm_config
from support.servers import Influx

from collector.alerts.commands import CommandHandler
from collector.alerts.dispatch import Dispatcher
from collector.alerts.history import HistoryExporter
from collector.alerts.store import AlertStore
from farmwatch_shared.influx import InfluxV1Writer
from farmwatch_shared.problems import ProblemLog

T0 = 1_795_000_000_000
FARM = "oax-mixteca"
PRIMARY = "+529510000001"


def _setup(tmp_path: Path, influx: Influx) -> tuple[AlertStore, HistoryExporter, ProblemLog]:
    writer = InfluxV1Writer(influx.url, influx.database)
    writer.ensure_database()
    store = AlertStore(tmp_path / "alerts.sqlite3", SteppingClock(T0))
    problems = ProblemLog(logging.getLogger("test.alerts.history"))
    return store, HistoryExporter(store, writer, problems), problems


def test_a_refused_event_is_isolated_and_its_neighbours_are_exported(
    tmp_path: Path, influx: Influx
) -> None:
    store, exporter, problems = _setup(tmp_path, influx)
    # another writer made `value` an integer field of alert_event: a float value conflicts
    body = f"alert_event,farm={FARM},rule=other,state=firing value=1i {T0 - 1}".encode()
    request = urllib.request.Request(
        f"{influx.url}/write?db={influx.database}&precision=ms", data=body, method="POST"
    )
    urllib.request.urlopen(request, timeout=10).close()
    for i, value in enumerate([None, None, 19.0, None, None]):
        store.add_event(T0 + i, FARM, "trough-low", 1, "ok", f"s{i}", value, "level_below")
    refused_id = store.events(FARM)[2]["id"]
    assert exporter.export() == 5
    assert store.export_refused() == [("alert_events", refused_id)]
    assert store.unexported() == ([], [])
    rows = influx.query("SELECT * FROM \"alert_event\" WHERE rule = 'trough-low'")
    assert sorted(r["state"] for r in rows) == ["s0", "s1", "s3", "s4"]
    assert problems.count("history_refused") == 1
    assert exporter.export() == 0  # the refused row is not tried again
    store.close()


def test_phone_numbers_leave_the_store_masked(
    tmp_path: Path,
    influx: Influx,
    gateway: FakeGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store, exporter, problems = _setup(tmp_path, influx)
    clock = SteppingClock(T0)
    config = farm_config(FARM)
    incident = store.open_incident(FARM, "trough-north-low", T0)
    store.add_incoming(PRIMARY, f"OK {incident}", "26112912000000", T0)
    CommandHandler(store, {FARM: config}, clock, problems).handle_pending()  # acknowledges
    gateway.status = 400  # refuses the reply, quoting the number as Twilio does
    Dispatcher(store, [gateway.channel()], clock, problems).send_due()
    gateway.status = 201
    store.enqueue_sms("k2", FARM, PRIMARY, "ALERTA", "firing", incident, T0)
    Dispatcher(store, [gateway.channel()], clock, problems).send_due()
    exporter.export()
    rows = influx.query('SELECT * FROM "alert_event"') + influx.query('SELECT * FROM "sms_sent"')
    assert any(r.get("by") == "…0001" for r in rows)
    assert any(r.get("to") == "…0001" for r in rows)
    digits = PRIMARY.lstrip("+")
    assert not [r for r in rows if any(digits in str(v) for v in r.values())]
    logged = [r.getMessage() for r in caplog.records]
    assert any("…0001" in line for line in logged)
    assert not [line for line in logged if digits in line]
    store.close()
