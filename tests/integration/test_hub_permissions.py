"""Per-farm rights on the hub (issue 15, acceptance 2): a farm's user may publish only its own
farm's subjects. A publish to another farm's is refused by the server (not stored, and the
client is told), and an agent whose user does not match its farm sees the refusal: it keeps
every reading in its outbox and reports it, and delivers them all once it has the right user.
"""

from __future__ import annotations

import concurrent.futures
import json
import sqlite3
import time
from pathlib import Path

import nats.errors
import pytest
from support.faults import FAULT_FARM_FILE, Rig, assert_exactly_once
from support.hub import Hub, hub_agent, hub_collector, running_hub
from support.servers import Influx
from support.waiting import wait_for

from farmwatch_emulators.mcu import McuEmulator
from farmwatch_emulators.pty_link import PtyLink
from farmwatch_shared.hub.layout import (
    MSG_ID_HEADER,
    STREAM,
    presence_subject,
    readings_subject,
)
from farmwatch_shared.hub.link import NatsLink

OWN, OTHER = "oax-mixteca", "oax-istmo"


def _subject_count(hub: Hub, subject: str) -> int:
    """Messages the stream holds on ``subject``."""

    async def count() -> int:
        body = json.dumps({"subjects_filter": subject}).encode()
        reply = await hub.admin.client.request(f"$JS.API.STREAM.INFO.{STREAM}", body)
        subjects = json.loads(reply.data)["state"].get("subjects") or {}
        return int(sum(subjects.values()))

    return hub.admin.submit(count()).result(10)


def test_a_farm_user_cannot_publish_another_farms_subjects(tmp_path: Path) -> None:
    with running_hub(tmp_path, [OWN, OTHER], size=1, tls=False) as hub:
        refused: list[str] = []
        link = NatsLink(hub.endpoint(OWN, "test-own"), on_refused=refused.append)
        link.start()
        try:
            assert link.wait_connected(10)

            async def publish(subject: str) -> object:
                js = link.client.jetstream()
                return await js.publish(subject, b"{}", timeout=2, headers={MSG_ID_HEADER: "x"})

            own = link.submit(publish(readings_subject(OWN, "pi-1"))).result(10)
            assert own is not None
            for subject in (readings_subject(OTHER, "pi-1"), presence_subject(OTHER, "pi-1")):
                with pytest.raises((nats.errors.TimeoutError, concurrent.futures.TimeoutError)):
                    link.submit(publish(subject)).result(10)
                assert subject.lower() in refused, f"no refusal reported for {subject}"
            assert _subject_count(hub, readings_subject(OWN, "pi-1")) == 1
            assert _subject_count(hub, readings_subject(OTHER, "pi-1")) == 0
            assert link.refusals == 2
        finally:
            link.stop()


def test_an_agent_with_another_farms_user_keeps_its_readings_and_reports_the_refusal(
    tmp_path: Path, influx: Influx
) -> None:
    farm_dir = tmp_path / "farms"
    farm_dir.mkdir()
    farm_file = farm_dir / f"{OTHER}.toml"
    farm_file.write_text(FAULT_FARM_FILE.replace(f'id = "{OWN}"', f'id = "{OTHER}"'))
    with running_hub(tmp_path, [OWN, OTHER], size=1, tls=False) as hub:
        collector = hub_collector(hub, influx, farm_dir, tmp_path, "a")
        link = PtyLink(tmp_path / "ttyFARM")
        mcu = McuEmulator(link, interval_s=1, resend_after_s=2.0)
        wrong = hub_agent(hub, farm_file, link.path, tmp_path, OWN)  # the other farm's user
        right = hub_agent(hub, farm_file, link.path, tmp_path, OTHER)
        try:
            collector.start()
            mcu.start()
            wrong.start()
            wait_for(lambda: mcu.syncs_received > 0, what="agent opened the port")
            rig = Rig(mcu, link, wrong, collector)
            rig.produce(60, 30.0, lambda: None, noise=False)
            wait_for(lambda: "problem publish_refused" in wrong.log(), what="refusal reported")
            log = wrong.log()
            assert readings_subject(OTHER, "pi-1") in log
            outbox = tmp_path / "edge-outbox.sqlite3"
            wait_for(lambda: _outbox_rows(outbox) == 60, what="all 60 readings kept")
            time.sleep(1.0)
            assert _subject_count(hub, readings_subject(OTHER, "pi-1")) == 0
            assert influx.count("soil_moisture") == 0
            wrong.stop()
            assert "refusals=" in wrong.log()
            assert "backlog=60" in wrong.log()
            right.start()  # the same outbox, now with the farm's own user
            assert_exactly_once(influx, rig.produced)
            wait_for(lambda: _outbox_rows(outbox) == 0, what="outbox emptied")
        finally:
            for process in (right, wrong, collector):
                process.stop()
            mcu.stop()
            link.close()


def _outbox_rows(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
    finally:
        db.close()
