"""The collector's durable quarantine (issue 11, finding 5): whole payloads, fsynced, one row per
message and cause however often it comes back, bounded by bytes, and checked by
``--check-config`` without being created."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from collector.quarantine import QuarantineError, QuarantineStore, check_quarantine_path

TOPIC = "farmwatch/v1/oax-mixteca/pi-1/readings"


def test_a_refused_payload_is_kept_whole_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    payload = os.urandom(200_000)  # far beyond what a dead letter shows (1 KiB)
    store = QuarantineStore(path, 1 << 30)
    assert store.add(TOPIC, payload, "impossible_value", "seq 1 rain: implausible_time", 5)
    store.close()
    reopened = QuarantineStore(path, 1 << 30)
    (message,) = reopened.messages()
    assert (message.topic, message.payload, message.cause) == (TOPIC, payload, "impossible_value")
    assert message.detail == "seq 1 rain: implausible_time"
    assert reopened.counts() == {"impossible_value": 1}
    reopened.close()


def test_the_store_is_fsynced_on_every_insert(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q.sqlite3", 1 << 30)
    assert store.synchronous == 2  # FULL
    store.close()


def test_the_same_message_refused_again_is_one_row_seen_twice(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q.sqlite3", 1 << 30)
    for now in (10, 20):
        assert store.add(TOPIC, b"junk", "malformed", "detail", now)
    assert store.add(TOPIC, b"junk", "database_refused", "other cause", 30)
    malformed, refused = store.messages()
    assert (malformed.seen, malformed.first_ms, malformed.last_ms) == (2, 10, 20)
    assert (refused.cause, refused.seen) == ("database_refused", 1)
    assert [m.cause for m in store.messages("malformed")] == ["malformed"]
    store.close()


def test_a_full_store_takes_nothing_more_until_a_message_is_removed(tmp_path: Path) -> None:
    store = QuarantineStore(tmp_path / "q.sqlite3", 100)
    assert store.add(TOPIC, b"a" * 60, "malformed", "", 1)
    assert not store.add(TOPIC, b"b" * 60, "malformed", "", 2)
    assert store.add(TOPIC, b"a" * 60, "malformed", "", 3)  # already there: counted, no bytes
    (first,) = store.messages()
    store.remove(first.id)
    assert store.add(TOPIC, b"b" * 60, "malformed", "", 4)
    assert [m.payload for m in store.messages()] == [b"b" * 60]
    store.close()


def test_check_config_creates_nothing_and_refuses_what_start_up_could_not_use(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.sqlite3"
    assert "created at start" in check_quarantine_path(path)
    assert not path.exists()
    with pytest.raises(QuarantineError, match="does not exist"):
        check_quarantine_path(tmp_path / "missing-dir" / "q.sqlite3")
    store = QuarantineStore(path, 1 << 30)
    store.add(TOPIC, b"x", "malformed", "", 1)
    store.close()
    assert check_quarantine_path(path) == "1 quarantined messages"
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(QuarantineError, match="garbage"):
        check_quarantine_path(garbage)
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE readings (x)").connection.close()
    with pytest.raises(QuarantineError, match="not a farmwatch quarantine"):
        check_quarantine_path(other)
