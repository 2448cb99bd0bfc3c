"""The collector's durable quarantine: every message it refuses, whole, in a local SQLite file.

A refused message is acknowledged to the broker (so it does not block the stream) and confirmed
to its agent (``Committed``) only once it is here: the insert is committed with
``synchronous=FULL`` (fsynced) before the caller goes on. ``farmwatch-collector
--replay-quarantine`` runs the messages through the normal path again (after the collector's
clock or the farm directory was fixed) and removes those that now pass.

The same message refused again for the same cause (a redelivery, a retained status delivered
at every subscribe) is one row, whose ``seen`` count grows. The store is bounded by bytes of
payload (``quarantine_max_mb``): when full, ``add`` stores nothing and says so, and the caller
does not confirm the message's readings, so their agent keeps them and sends them again later.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    digest BLOB NOT NULL,
    cause TEXT NOT NULL,
    detail TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    seen INTEGER NOT NULL DEFAULT 1,
    UNIQUE (topic, digest, cause)
);
"""


class QuarantineError(Exception):
    """The quarantine file cannot be used (unreadable, not a quarantine, wrong version)."""


@dataclass(frozen=True)
class QuarantinedMessage:
    """One refused message as it arrived, with why it was refused."""

    id: int
    topic: str
    payload: bytes
    cause: str
    detail: str
    first_ms: int
    last_ms: int
    seen: int


class QuarantineStore:
    """The SQLite quarantine file; safe to share between the collector's threads."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            # autocommit: every write below is its own explicit, fsynced transaction
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise QuarantineError(f"{path}: quarantine schema version {version} is unknown")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._bytes = self._stored_bytes()
        except sqlite3.Error as exc:
            raise QuarantineError(f"{path}: {exc}") from None

    @property
    def path(self) -> Path:
        """Where the store is."""
        return self._path

    @property
    def synchronous(self) -> int:
        """SQLite's ``synchronous`` level of the connection: 2 (FULL), an fsync per commit."""
        with self._lock:
            level: int = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return level

    def add(self, topic: str, payload: bytes, cause: str, detail: str, now_ms: int) -> bool:
        """Store a refused message durably; False (nothing stored) when the store is full.

        Raises ``sqlite3.Error`` when the disk fails: the caller's worker then dies, and the
        service with it (the message stays unacknowledged and comes back after the restart).
        """
        digest = hashlib.sha256(payload).digest()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT id FROM quarantine WHERE topic = ? AND digest = ? AND cause = ?",
                    (topic, digest, cause),
                ).fetchone()
                if row is not None:
                    self._db.execute(
                        "UPDATE quarantine SET seen = seen + 1, last_ms = ? WHERE id = ?",
                        (now_ms, row[0]),
                    )
                else:
                    if self._bytes + len(payload) > self._max_bytes:
                        self._bytes = self._stored_bytes()  # a replay may have made room
                    if self._bytes + len(payload) > self._max_bytes:
                        self._db.execute("ROLLBACK")
                        return False
                    self._db.execute(
                        "INSERT INTO quarantine"
                        " (topic, payload, digest, cause, detail, first_ms, last_ms)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (topic, payload, digest, cause, detail, now_ms, now_ms),
                    )
                    self._bytes += len(payload)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return True

    def messages(self, cause: str | None = None) -> Iterator[QuarantinedMessage]:
        """The quarantined messages (of one cause), oldest first."""
        query = "SELECT id, topic, payload, cause, detail, first_ms, last_ms, seen FROM quarantine"
        args: tuple[str, ...] = ()
        if cause is not None:
            query += " WHERE cause = ?"
            args = (cause,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        for row in rows:
            yield QuarantinedMessage(
                id=row[0],
                topic=row[1],
                payload=bytes(row[2]),
                cause=row[3],
                detail=row[4],
                first_ms=row[5],
                last_ms=row[6],
                seen=row[7],
            )

    def remove(self, message_id: int) -> None:
        """Delete a message that has since been stored in the database."""
        with self._lock:
            self._db.execute("DELETE FROM quarantine WHERE id = ?", (message_id,))
            self._bytes = self._stored_bytes()

    def counts(self) -> dict[str, int]:
        """Quarantined messages by cause."""
        with self._lock:
            rows = self._db.execute(
                "SELECT cause, COUNT(*) FROM quarantine GROUP BY cause ORDER BY cause"
            ).fetchall()
        return {cause: count for cause, count in rows}

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def _stored_bytes(self) -> int:
        total: int = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM quarantine"
        ).fetchone()[0]
        return total


def check_quarantine_path(path: Path) -> str:
    """What ``--check-config`` says about the quarantine file, without creating anything;
    raise QuarantineError if start-up could not use it."""
    if path.exists():
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=5.0)
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise QuarantineError(f"{path}: quarantine schema version {version} is unknown")
                tables = db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                ).fetchall()
                if tables and ("quarantine",) not in tables:
                    raise QuarantineError(f"{path}: not a farmwatch quarantine file")
                count = db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] if tables else 0
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise QuarantineError(f"{path}: {exc}") from None
        return f"{count} quarantined messages"
    parent = path.parent
    if not parent.is_dir():
        raise QuarantineError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise QuarantineError(f"{path}: directory {parent} is not writable")
    return "empty (created at start)"
