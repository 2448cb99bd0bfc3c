"""Durable, bounded outbox of readings on disk (SQLite, WAL, synchronous=FULL).

A reading is committed here, with its sequence number, before anything is published; it is
deleted only when the broker acknowledged the message that carried it. When the bound is reached
the oldest readings are dropped and counted. Thread-safe (one connection behind a lock).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from farmwatch_shared.contract import Reading, ReadingFlag, SensorKind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL,
    raw REAL NOT NULL,
    volume_l REAL,
    flags INTEGER NOT NULL DEFAULT 0,
    mono_ms INTEGER,
    boot_id TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sensor_state (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    cause TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""
_COLUMNS = "seq, sensor, kind, ts, value, unit, raw, volume_l, flags"
QUARANTINE_KEEP = 10_000


class Outbox:
    """The agent's on-disk queue of readings not yet acknowledged by the broker."""

    def __init__(self, path: Path, max_readings: int) -> None:
        if max_readings < 1:
            raise ValueError("max_readings must be at least 1")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._max = max_readings
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', 0), ('dropped', 0)")
        (self._count,) = self._db.execute("SELECT COUNT(*) FROM readings").fetchone()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def add(
        self,
        *,
        sensor: str,
        kind: SensorKind,
        ts: int,
        value: float,
        unit: str,
        raw: float,
        volume_l: float | None = None,
        flags: int = 0,
        state: Mapping[str, float] | None = None,
        mono_ms: int | None = None,
        boot_id: str | None = None,
    ) -> Reading:
        """Commit one reading with the next sequence number (and sensor state) atomically."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            (seq,) = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
            self._db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (seq + 1,))
            self._db.execute(
                f"INSERT INTO readings ({_COLUMNS}, mono_ms, boot_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (seq, sensor, kind.value, ts, value, unit, raw, volume_l, flags, mono_ms, boot_id),
            )
            self._count += 1
            self._write_state(state)
            self._enforce_bound()
        return Reading(
            seq=seq,
            sensor=sensor,
            kind=kind,
            ts=ts,
            value=value,
            unit=unit,
            raw=raw,
            volume_l=volume_l,
            flags=flags,
        )

    def _write_state(self, state: Mapping[str, float] | None) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO sensor_state VALUES (?, ?)", list((state or {}).items())
        )

    def _enforce_bound(self) -> None:
        excess = self._count - self._max
        if excess > 0:
            dropped = self._db.execute(
                "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)",
                (excess,),
            ).rowcount
            self._count -= dropped
            self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped'", (dropped,))

    def after(self, seq: int, limit: int) -> list[Reading]:
        """Up to ``limit`` readings with a sequence number above ``seq``, oldest first, except
        those held until the clock is trusted."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE seq > ? AND (flags & ?) = 0 "
                "ORDER BY seq LIMIT ?",
                (seq, ReadingFlag.CLOCK_UNSYNCED, limit),
            ).fetchall()
        return [_reading(row) for row in rows]

    def by_seq(self, seqs: Iterable[int]) -> list[Reading]:
        """The readings still held among ``seqs``, oldest first."""
        wanted = list(seqs)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE seq IN "
                f"({','.join('?' * len(wanted))}) ORDER BY seq",
                wanted,
            ).fetchall()
        return [_reading(row) for row in rows]

    def delete(self, seqs: Iterable[int]) -> None:
        """Forget readings the broker acknowledged."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            deleted = self._db.executemany(
                "DELETE FROM readings WHERE seq=?", [(s,) for s in seqs]
            ).rowcount
            self._count -= deleted

    def backlog(self) -> int:
        """Readings held (not yet acknowledged)."""
        with self._lock:
            return int(self._count)

    def last_seq(self) -> int:
        """The highest sequence number ever given out, -1 before the first."""
        with self._lock:
            (seq,) = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        return int(seq) - 1

    def dropped_total(self) -> int:
        """Readings dropped because the outbox was full, since it was created."""
        with self._lock:
            (dropped,) = self._db.execute("SELECT value FROM meta WHERE key='dropped'").fetchone()
        return int(dropped)

    def sensor_state(self, key: str) -> float | None:
        """A value kept for a sensor between readings (e.g. a rain gauge's last counter)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM sensor_state WHERE key=?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def correct_clock(self, now_ms: int, mono_now_ms: int, boot_id: str) -> tuple[int, int]:
        """Re-time readings held while the clock was untrusted; return (corrected, quarantined).

        Readings of this boot get ``now − (mono_now − mono_then)``; readings of another boot
        cannot be re-timed and are quarantined with their data."""
        unsynced = int(ReadingFlag.CLOCK_UNSYNCED)
        corrected = int(ReadingFlag.CLOCK_CORRECTED)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            fixed = self._db.execute(
                "UPDATE readings SET ts = ? - (? - mono_ms), flags = (flags & ~?) | ? "
                "WHERE (flags & ?) != 0 AND boot_id = ? AND mono_ms IS NOT NULL",
                (now_ms, mono_now_ms, unsynced, corrected, unsynced, boot_id),
            ).rowcount
            stale = self._db.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE (flags & ?) != 0", (unsynced,)
            ).fetchall()
            for row in stale:
                self._db.execute(
                    "INSERT INTO quarantine (at_ms, cause, detail) VALUES (?, ?, ?)",
                    (now_ms, "clock_uncorrectable", repr(row)[:500]),
                )
            self._db.execute("DELETE FROM readings WHERE (flags & ?) != 0", (unsynced,))
            self._count -= len(stale)
        return fixed, len(stale)

    def held(self) -> int:
        """Readings held until the clock is trusted."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM readings WHERE (flags & ?) != 0",
                (int(ReadingFlag.CLOCK_UNSYNCED),),
            ).fetchone()
        return int(count)

    def set_state(self, state: Mapping[str, float]) -> None:
        """Keep values between readings (e.g. a rain gauge's counter) without a reading."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._write_state(state)

    def quarantine(
        self, at_ms: int, cause: str, detail: str, state: Mapping[str, float] | None = None
    ) -> None:
        """Keep a refused input for inspection (the newest QUARANTINE_KEEP are kept), and
        update sensor state in the same transaction."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._write_state(state)
            self._db.execute(
                "INSERT INTO quarantine (at_ms, cause, detail) VALUES (?, ?, ?)",
                (at_ms, cause, detail[:500]),
            )
            self._db.execute(
                "DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM quarantine) - ?",
                (QUARANTINE_KEEP,),
            )

    def quarantined(self) -> list[tuple[str, str]]:
        """(cause, detail) of quarantined inputs, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT cause, detail FROM quarantine ORDER BY id").fetchall()
        return [(str(c), str(d)) for c, d in rows]


def _reading(row: Any) -> Reading:
    seq, sensor, kind, ts, value, unit, raw, volume_l, flags = row
    return Reading(
        seq=seq,
        sensor=sensor,
        kind=SensorKind(kind),
        ts=ts,
        value=value,
        unit=unit,
        raw=raw,
        volume_l=volume_l,
        flags=flags,
    )
