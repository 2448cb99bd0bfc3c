"""Durable, bounded outbox of readings on disk (SQLite, WAL, synchronous=FULL).

A reading is committed here, with its sequence number, before anything is published; when the
broker acknowledged the message that carried it as delivered it is marked ``sent``, and it is
deleted only when the collector confirms it stored it (``commit``). When the bound is reached
the oldest readings are dropped and counted. The state kept between inputs (each sensor's
``SensorState``, the microcontroller stream's ``McuPosition``) is written in the same transaction
as the reading or quarantined input it goes with. Thread-safe (one connection behind a lock).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from farmwatch_shared.calibration.calibrate import SensorState
from farmwatch_shared.calibration.rain import CounterSample
from farmwatch_shared.contract import Reading, ReadingFlag, SensorKind, SeqRange

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
    boot_id TEXT,
    sent INTEGER NOT NULL DEFAULT 0
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


@dataclass(frozen=True)
class McuPosition:
    """Where the microcontroller's stream stands: its boot and the last sample ``seq`` committed
    (-1: none of this boot yet; ``boot`` None: no stream seen yet)."""

    boot: int | None = None
    seq: int = -1


@dataclass(frozen=True)
class Held:
    """A reading taken while the wall clock was not trusted: the agent's monotonic time when it
    was taken (ms) and the kernel boot that monotonic clock belongs to, to re-time it later."""

    mono_ms: int
    boot_id: str


@dataclass(frozen=True)
class StateUpdate:
    """State to keep, written in the same transaction as a reading or a quarantined input:
    the new state of some sensors (replacing what was kept for them) and the stream position."""

    sensors: Mapping[str, SensorState] = field(default_factory=dict)
    mcu: McuPosition | None = None
    source: Mapping[str, float] = field(default_factory=dict)
    """A source's own kept values by key (``"<owner>.<name>"``; an owner is not a sensor id:
    it contains a ``/``, e.g. ``"lorawan/trough-far.fcnt"``), written as given."""


# The sensor_state table keeps the key/value rows of earlier releases, so the outboxes on the
# farms keep their state across an upgrade (and a downgrade): these keys are used here only.
_MCU = "mcu"
_MCU_BOOT, _MCU_SEQ = f"{_MCU}.boot", f"{_MCU}.seq"


@functools.cache
def _sensor_keys(sensor_id: str) -> tuple[str, str, str, str]:
    """(last_ts, counter, counter_ts, counter_boot) keys of a sensor."""
    return (
        f"{sensor_id}.last_ts",
        f"{sensor_id}.counter",
        f"{sensor_id}.counter_ts",
        f"{sensor_id}.counter_boot",
    )


def _state_rows(update: StateUpdate) -> tuple[list[tuple[str, float]], list[str]]:
    """(key, value) rows to write and keys to delete for ``update``."""
    rows: list[tuple[str, float]] = []
    gone: list[str] = []

    def put(key: str, value: int | None) -> None:
        if value is None:
            gone.append(key)
        else:
            rows.append((key, float(value)))

    for sensor_id, state in update.sensors.items():
        last_ts, counter, counter_ts, counter_boot = _sensor_keys(sensor_id)
        put(last_ts, state.last_ts)
        sample = state.counter
        if sample is not None:  # only rain gauges keep a counter: nothing to clear for others
            put(counter, sample.counter)
            put(counter_ts, sample.ts_ms)
            put(counter_boot, sample.boot)
    if update.mcu is not None:
        put(_MCU_BOOT, update.mcu.boot)
        put(_MCU_SEQ, update.mcu.seq)
    for key, value in update.source.items():
        if "/" not in key.split(".", 1)[0]:
            raise ValueError(f"source state key {key!r} is not '<owner with a />.<name>'")
        rows.append((key, float(value)))
    return rows, gone


class Outbox:
    """The agent's on-disk queue of readings not yet confirmed stored by the collector."""

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
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(readings)")}
        if "sent" not in columns:  # an outbox of an earlier release: nothing of it was confirmed
            self._db.execute("ALTER TABLE readings ADD COLUMN sent INTEGER NOT NULL DEFAULT 0")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', 0), ('dropped', 0)")
        (self._count,) = self._db.execute("SELECT COUNT(*) FROM readings").fetchone()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def add(
        self, reading: Reading, state: StateUpdate | None = None, held: Held | None = None
    ) -> Reading:
        """Commit ``reading`` under the next sequence number, with ``state``, atomically; return
        it with that number. ``held``: the reading waits for the clock (``correct_clock``)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            (seq,) = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
            self._db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (seq + 1,))
            self._db.execute(
                f"INSERT INTO readings ({_COLUMNS}, mono_ms, boot_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    seq,
                    reading.sensor,
                    reading.kind.value,
                    reading.ts,
                    reading.value,
                    reading.unit,
                    reading.raw,
                    reading.volume_l,
                    reading.flags,
                    None if held is None else held.mono_ms,
                    None if held is None else held.boot_id,
                ),
            )
            self._count += 1
            self._write_state(state)
            self._enforce_bound()
        return msgspec.structs.replace(reading, seq=seq)

    def _write_state(self, state: StateUpdate | None) -> None:
        if state is None:
            return
        rows, gone = _state_rows(state)
        if rows:
            self._db.executemany("INSERT OR REPLACE INTO sensor_state VALUES (?, ?)", rows)
        if gone:
            self._db.execute(
                f"DELETE FROM sensor_state WHERE key IN ({','.join('?' * len(gone))})", gone
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

    def unsent_after(self, seq: int, limit: int) -> list[Reading]:
        """Like ``after``, without the readings already sent (waiting for confirmation)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE seq > ? AND (flags & ?) = 0 AND sent = 0 "
                "ORDER BY seq LIMIT ?",
                (seq, ReadingFlag.CLOCK_UNSYNCED, limit),
            ).fetchall()
        return [_reading(row) for row in rows]

    def in_ranges(self, ranges: Sequence[SeqRange], limit: int) -> list[Reading]:
        """Up to ``limit`` readings still held within the inclusive seq ``ranges``, oldest
        first (except those held until the clock is trusted)."""
        found: list[Reading] = []
        with self._lock:
            for first, last in sorted(ranges):
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM readings WHERE seq BETWEEN ? AND ? "
                    "AND (flags & ?) = 0 ORDER BY seq LIMIT ?",
                    (first, last, ReadingFlag.CLOCK_UNSYNCED, limit - len(found)),
                ).fetchall()
                found += [_reading(row) for row in rows]
                if len(found) >= limit:
                    break
        return found

    def count_in(self, ranges: Sequence[SeqRange]) -> int:
        """How many readings are still held within the inclusive seq ``ranges``."""
        with self._lock:
            return sum(
                int(
                    self._db.execute(
                        "SELECT COUNT(*) FROM readings WHERE seq BETWEEN ? AND ?", (first, last)
                    ).fetchone()[0]
                )
                for first, last in ranges
            )

    def mark_sent(self, seqs: Iterable[int]) -> None:
        """The broker delivered these readings: they wait for the collector's confirmation."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE readings SET sent = 1 WHERE seq = ?", [(s,) for s in seqs])

    def mark_unsent_all(self) -> int:
        """Every sent reading is to be sent again (the broker lost them); return how many."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return int(self._db.execute("UPDATE readings SET sent = 0 WHERE sent = 1").rowcount)

    def sent_ranges(self) -> list[SeqRange]:
        """Inclusive seq ranges of the readings sent and not yet confirmed."""
        ranges: list[SeqRange] = []
        with self._lock:
            for (seq,) in self._db.execute("SELECT seq FROM readings WHERE sent = 1 ORDER BY seq"):
                if ranges and ranges[-1][1] == seq - 1:
                    ranges[-1] = (ranges[-1][0], seq)
                else:
                    ranges.append((seq, seq))
        return ranges

    def commit(self, ranges: Iterable[SeqRange]) -> int:
        """Forget the readings the collector confirmed stored (inclusive seq ``ranges``, sent
        or not); return how many were still held."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            deleted = 0
            for first, last in ranges:
                deleted += self._db.execute(
                    "DELETE FROM readings WHERE seq BETWEEN ? AND ?", (first, last)
                ).rowcount
            self._count -= deleted
        return deleted

    def backlog(self) -> int:
        """Readings held (not yet confirmed stored by the collector)."""
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

    def sensor_state(self, sensor_id: str) -> SensorState:
        """What is kept for ``sensor_id`` between readings (empty before its first one)."""
        stored = self._kept(sensor_id)
        last_ts, counter, counter_ts, counter_boot = (
            stored.get(k) for k in _sensor_keys(sensor_id)
        )
        sample = None
        if counter is not None and counter_ts is not None:
            boot = None if counter_boot is None else int(counter_boot)
            sample = CounterSample(int(counter_ts), int(counter), boot)
        return SensorState(None if last_ts is None else int(last_ts), sample)

    def mcu_position(self) -> McuPosition:
        """The microcontroller stream's position as last committed."""
        stored = self._kept(_MCU)
        boot, seq = stored.get(_MCU_BOOT), stored.get(_MCU_SEQ)
        return McuPosition(None if boot is None else int(boot), -1 if seq is None else int(seq))

    def _kept(self, owner: str) -> dict[str, float]:
        """The sensor_state rows of ``owner`` (keys "<owner>.…"), in one index range scan."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM sensor_state WHERE key > ? AND key < ?",
                (f"{owner}.", f"{owner}/"),  # "/" is the byte after "."
            ).fetchall()
        return dict(rows)

    def source_state(self, owner: str) -> dict[str, float]:
        """What a source keeps under ``owner`` (``StateUpdate.source``), by name."""
        return {key.removeprefix(f"{owner}."): value for key, value in self._kept(owner).items()}

    def set_state(self, state: StateUpdate) -> None:
        """Keep ``state`` without a reading (a source's event that changes only its state)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._write_state(state)

    def set_mcu_position(self, position: McuPosition) -> None:
        """Move the stream position without a reading (a new boot, samples it overwrote)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._write_state(StateUpdate(mcu=position))

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

    def quarantine(
        self, at_ms: int, cause: str, detail: str, state: StateUpdate | None = None
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
