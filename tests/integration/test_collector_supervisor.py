"""No collector thread dies alone (issue 11, finding 1 and the supervisor rule): a worker that
dies anyway, here because the quarantine's disk fails under it, stops the whole process with
exit code 70 and one clear log line, so systemd restarts it; the message it was handling was
not acknowledged, so the restarted collector gets it again and nothing is lost."""

from __future__ import annotations

import shutil
from pathlib import Path

from support.harness import collector_process
from support.servers import Broker, Influx
from support.waiting import wait_for

from farmwatch_shared.contract import readings_topic
from farmwatch_shared.supervisor import EX_SOFTWARE


def test_a_dying_worker_stops_the_collector_process_with_exit_70_and_loses_nothing(
    broker: Broker, influx: Influx, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    collector = collector_process(broker, influx.url, influx.database, tmp_path)
    collector.env["FARMWATCH_COLLECTOR_QUARANTINE_PATH"] = str(state / "quarantine.sqlite3")
    collector.start()
    farm = broker.client("oax-mixteca", "test-farm")
    try:
        wait_for(lambda: "Suscrito / subscribed" in collector.log(), what="collector subscribed")
        shutil.rmtree(state)  # the disk under the quarantine goes away
        info = farm.publish(readings_topic("oax-mixteca", "pi-1"), b"{not json", qos=1)
        info.wait_for_publish(10)
        assert collector.process is not None
        assert collector.process.wait(15) == EX_SOFTWARE
        log = collector.log()
        assert "Hilo ingest-convert terminó / thread ingest-convert died" in log
        assert "Colector detenido / collector stopped: ingest-convert" in log

        state.mkdir()  # what systemd's restart finds after the disk is back
        collector.start()
        quarantine = state / "quarantine.sqlite3"
        wait_for(lambda: quarantine.exists() and quarantine.stat().st_size > 0, what="kept")
        wait_for(lambda: b"{not json" in quarantine.read_bytes(), what="the same message kept")
    finally:
        farm.disconnect()
        farm.loop_stop()
        collector.stop()
