"""The alerting service's durable state in SQLite (WAL, synchronous=FULL): recent samples, rule
states, incidents, the alert event log, the SMS outbox/log, received SMS, quarantined input
(whole MQTT payloads and SMS PDUs that could not be handled) and the single-sender lease.

Every state transition is committed in the same transaction as the SMS it causes (see
``engine.py``), so a restart neither forgets an alert nor sends its message twice. Each thread
opens its own ``AlertStore`` on the same file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from farmwatch_shared.clock import Clock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    farm TEXT NOT NULL, sensor TEXT NOT NULL, ts INTEGER NOT NULL,
    value REAL NOT NULL, volume_l REAL,
    PRIMARY KEY (farm, sensor, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agents_seen (
    farm TEXT NOT NULL, agent TEXT NOT NULL, last_seen INTEGER NOT NULL, online INTEGER NOT NULL,
    PRIMARY KEY (farm, agent)
);
CREATE TABLE IF NOT EXISTS rule_state (
    farm TEXT NOT NULL, rule TEXT NOT NULL, state TEXT NOT NULL, since_ms INTEGER,
    incident INTEGER, notified_ms INTEGER, last_sent_ms INTEGER, reminders INTEGER NOT NULL,
    clearing_since_ms INTEGER, acked INTEGER NOT NULL, escalated INTEGER NOT NULL,
    last_fire_notice_ms INTEGER, value REAL,
    PRIMARY KEY (farm, rule)
);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, farm TEXT NOT NULL, rule TEXT NOT NULL,
    opened_ms INTEGER NOT NULL, resolved_ms INTEGER, acked_ms INTEGER, acked_by TEXT,
    acked_via TEXT
);
CREATE TABLE IF NOT EXISTS alert_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, farm TEXT NOT NULL,
    rule TEXT NOT NULL, incident INTEGER, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
    value REAL, detail TEXT NOT NULL DEFAULT '', exported INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sms (
    id INTEGER PRIMARY KEY AUTOINCREMENT, dedup_key TEXT NOT NULL UNIQUE, farm TEXT NOT NULL,
    phone TEXT NOT NULL, text TEXT NOT NULL, kind TEXT NOT NULL, incident INTEGER,
    created_ms INTEGER NOT NULL, next_attempt_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending',
    channel TEXT, reference TEXT, sent_ms INTEGER, last_error TEXT,
    exported INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sms_due ON sms (state, next_attempt_ms);
CREATE TABLE IF NOT EXISTS sms_parts (
    sms_id INTEGER NOT NULL, part INTEGER NOT NULL, channel TEXT NOT NULL, state TEXT NOT NULL,
    reference TEXT NOT NULL DEFAULT '', ts_ms INTEGER NOT NULL, PRIMARY KEY (sms_id, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, phone TEXT NOT NULL, text TEXT NOT NULL,
    stamp TEXT NOT NULL, received_ms INTEGER NOT NULL, handled INTEGER NOT NULL DEFAULT 0,
    outcome TEXT, UNIQUE (phone, stamp, text)
);
CREATE TABLE IF NOT EXISTS lease (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_ms INTEGER NOT NULL, source TEXT NOT NULL,
    origin TEXT NOT NULL, payload BLOB NOT NULL, cause TEXT NOT NULL, detail TEXT NOT NULL
);
"""
_MIGRATIONS = (
    # (table, column, definition, statement filling it on existing rows)
    (
        "incidents",
        "acked_via",
        "TEXT",
        # before the web acknowledgement, every acknowledgement came by SMS
        "UPDATE incidents SET acked_via='sms' WHERE acked_ms IS NOT NULL",
    ),
)
AckVia = Literal["sms", "web"]
"""How an incident was acknowledged: an ``OK n`` SMS, or the web page (through the API)."""


@dataclass(frozen=True)
class RuleState:
    """Where one rule of one farm is in ok → pending → firing → resolved."""

    state: str = "ok"
    since_ms: int | None = None
    """When the current state began (pending: condition first seen; firing: fired)."""
    incident: int | None = None
    notified_ms: int | None = None
    """When the firing SMS of this incident went to the outbox (None: not yet, cooldown)."""
    last_sent_ms: int | None = None
    reminders: int = 0
    clearing_since_ms: int | None = None
    acked: bool = False
    escalated: bool = False
    last_fire_notice_ms: int | None = None
    """Last firing SMS of this rule, any incident: the cooldown counts from it."""
    value: float | None = None


@dataclass(frozen=True)
class OutgoingSms:
    """A row of the SMS outbox."""

    id: int
    farm: str
    phone: str
    text: str
    kind: str
    incident: int | None
    attempts: int
    created_ms: int


@dataclass(frozen=True)
class Incident:
    """One firing of one rule, with the number operators use to acknowledge it."""

    id: int
    farm: str
    rule: str
    opened_ms: int
    resolved_ms: int | None
    acked_ms: int | None
    acked_by: str | None = None
    """The acknowledging phone (whole: mask it before it leaves the store) or user name."""
    acked_via: AckVia | None = None


_INCIDENT_COLUMNS = ", ".join(f.name for f in fields(Incident))


class AlertStore:
    """One SQLite connection to the alert database; ``clock`` paces the retries while another
    connection is creating the same file."""

    def __init__(self, path: Path, clock: Clock) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        self._depth = 0
        # Switching a new file to WAL needs an exclusive lock that SQLite does not wait for:
        # retry while another connection is creating the same database.
        for attempt in range(200):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
                self._migrate()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 199:
                    raise
                clock.sleep(0.05)
        # FULL: a commit is on disk when it returns. An incoming SMS is deleted from the SIM
        # right after its row commits, and an SMS marked sent is not sent again.
        self._db.execute("PRAGMA synchronous=FULL")

    def _migrate(self) -> None:
        """Add the columns a database made by an older version lacks (in one transaction, so
        two connections opening it at once do not both add them)."""
        with self.transaction():
            for table, column, definition, fill in _MIGRATIONS:
                columns = {str(r[1]) for r in self._all(f"PRAGMA table_info({table})")}
                if column not in columns:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                    self._db.execute(fill)

    def durability(self) -> tuple[str, str]:
        """(journal mode, synchronous level) of this connection, e.g. ``("wal", "full")``."""
        mode = str(self._all("PRAGMA journal_mode")[0][0]).lower()
        level = int(self._all("PRAGMA synchronous")[0][0])
        return mode, {0: "off", 1: "normal", 2: "full", 3: "extra"}[level]

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together (nesting joins the outer transaction)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    # -- samples and liveness ---------------------------------------------------------------

    def add_samples(self, farm: str, rows: Sequence[tuple[str, int, float, float | None]]) -> None:
        """Store (sensor, ts, value, volume_l) rows; the same reading twice is stored once."""
        self._db.executemany(
            "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?)",
            [(farm, sensor, ts, value, vol) for sensor, ts, value, vol in rows],
        )

    def samples(
        self, farm: str, sensor: str, since_ms: int
    ) -> list[tuple[int, float, float | None]]:
        """(ts, value, volume_l) of a sensor since ``since_ms``, oldest first."""
        rows = self._all(
            "SELECT ts, value, volume_l FROM samples WHERE farm=? AND sensor=? AND ts>=? "
            "ORDER BY ts",
            (farm, sensor, since_ms),
        )
        return [(int(r[0]), float(r[1]), r[2]) for r in rows]

    def latest(self, farm: str, sensor: str) -> tuple[int, float, float | None] | None:
        """The newest sample of a sensor."""
        rows = self._all(
            "SELECT ts, value, volume_l FROM samples WHERE farm=? AND sensor=? "
            "ORDER BY ts DESC LIMIT 1",
            (farm, sensor),
        )
        return (int(rows[0][0]), float(rows[0][1]), rows[0][2]) if rows else None

    def first_sample_ms(self, farm: str, sensor: str) -> int | None:
        """Time of the oldest stored sample of a sensor."""
        rows = self._all("SELECT MIN(ts) FROM samples WHERE farm=? AND sensor=?", (farm, sensor))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def prune(self, farm: str, sensor: str, before_ms: int) -> None:
        """Forget samples older than any rule looks back, except the newest one of the sensor
        (a ``silent`` rule measures from it however long ago it was)."""
        self._db.execute(
            "DELETE FROM samples WHERE farm=? AND sensor=? AND ts<? AND ts<(SELECT MAX(ts) "
            "FROM samples WHERE farm=? AND sensor=?)",
            (farm, sensor, before_ms, farm, sensor),
        )

    def agent_seen(self, farm: str, agent: str, ts_ms: int, online: bool) -> None:
        """Record a sign of life (``online``) or the agent's offline status / last will."""
        if online:
            self._db.execute(
                "INSERT INTO agents_seen VALUES (?, ?, ?, 1) ON CONFLICT (farm, agent) DO UPDATE "
                "SET last_seen=MAX(last_seen, excluded.last_seen), online=1",
                (farm, agent, ts_ms),
            )
        else:
            self._db.execute(
                "INSERT INTO agents_seen VALUES (?, ?, ?, 0) ON CONFLICT (farm, agent) DO UPDATE "
                "SET online=0",
                (farm, agent, ts_ms),
            )

    def agent_last_seen(self, farm: str, agent: str) -> tuple[int, bool] | None:
        """(last sign of life, online) of an agent."""
        rows = self._all(
            "SELECT last_seen, online FROM agents_seen WHERE farm=? AND agent=?", (farm, agent)
        )
        return (int(rows[0][0]), bool(rows[0][1])) if rows else None

    # -- rule states, incidents, events -----------------------------------------------------

    def rule_state(self, farm: str, rule: str) -> RuleState:
        """The stored state of a rule (``ok`` if never seen)."""
        names = [f.name for f in fields(RuleState)]
        rows = self._all(
            f"SELECT {', '.join(names)} FROM rule_state WHERE farm=? AND rule=?", (farm, rule)
        )
        if not rows:
            return RuleState()
        values = dict(zip(names, rows[0], strict=True))
        values["acked"] = bool(values["acked"])
        values["escalated"] = bool(values["escalated"])
        return RuleState(**values)

    def put_rule_state(self, farm: str, rule: str, state: RuleState) -> None:
        """Store a rule's state."""
        values = asdict(state)
        names = list(values)
        self._db.execute(
            f"INSERT OR REPLACE INTO rule_state (farm, rule, {', '.join(names)}) "
            f"VALUES (?, ?, {', '.join('?' * len(names))})",
            (farm, rule, *[values[n] for n in names]),
        )

    def rule_states(self) -> dict[tuple[str, str], RuleState]:
        """Every stored rule state."""
        keys = self._all("SELECT farm, rule FROM rule_state")
        return {(f, r): self.rule_state(f, r) for f, r in keys}

    def open_incident(self, farm: str, rule: str, now_ms: int) -> int:
        """A new incident number."""
        cursor = self._db.execute(
            "INSERT INTO incidents (farm, rule, opened_ms) VALUES (?, ?, ?)", (farm, rule, now_ms)
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def resolve_incident(self, incident: int, now_ms: int) -> None:
        """Mark an incident resolved."""
        self._db.execute("UPDATE incidents SET resolved_ms=? WHERE id=?", (now_ms, incident))

    def incident(self, incident: int) -> Incident | None:
        """An incident by number."""
        rows = self._all(f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id=?", (incident,))
        return Incident(*rows[0]) if rows else None

    def open_incidents(self, farm: str) -> list[Incident]:
        """A farm's incidents not resolved yet, newest first."""
        rows = self._all(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE farm=? AND resolved_ms IS NULL "
            "ORDER BY id DESC",
            (farm,),
        )
        return [Incident(*row) for row in rows]

    def acknowledge(self, incident: int, by: str, now_ms: int, via: AckVia) -> bool:
        """Record an acknowledgement by ``by`` (a phone number for ``sms``, a user name for
        ``web``); stops reminders and escalation. The first acknowledgement wins, whichever
        way it came: False if the incident was acknowledged already."""
        with self.transaction():
            cursor = self._db.execute(
                "UPDATE incidents SET acked_ms=?, acked_by=?, acked_via=? "
                "WHERE id=? AND acked_ms IS NULL",
                (now_ms, by, via, incident),
            )
            if cursor.rowcount == 0:
                return False
            self._db.execute("UPDATE rule_state SET acked=1 WHERE incident=?", (incident,))
            row = self._all("SELECT farm, rule FROM incidents WHERE id=?", (incident,))[0]
            self.add_event(
                now_ms, row[0], row[1], incident, "firing", "acknowledged", None, f"{via}:{by}"
            )
        return True

    def add_event(
        self,
        ts_ms: int,
        farm: str,
        rule: str,
        incident: int | None,
        from_state: str,
        to_state: str,
        value: float | None,
        detail: str = "",
    ) -> None:
        """Append to the alert event log."""
        self._db.execute(
            "INSERT INTO alert_events (ts, farm, rule, incident, from_state, to_state, value, "
            "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ts_ms, farm, rule, incident, from_state, to_state, value, detail),
        )

    def events(self, farm: str | None = None) -> list[dict[str, Any]]:
        """The alert event log, oldest first (optionally one farm's)."""
        sql = (
            "SELECT id, ts, farm, rule, incident, from_state, to_state, value, detail "
            "FROM alert_events"
        )
        params: tuple[Any, ...] = ()
        if farm is not None:
            sql += " WHERE farm=?"
            params = (farm,)
        cursor = self._db.execute(sql + " ORDER BY id", params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- SMS outbox and log -----------------------------------------------------------------

    def enqueue_sms(
        self,
        dedup_key: str,
        farm: str,
        phone: str,
        text: str,
        kind: str,
        incident: int | None,
        now_ms: int,
    ) -> bool:
        """Queue a message; a second message with the same key is ignored (False)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO sms (dedup_key, farm, phone, text, kind, incident, "
            "created_ms, next_attempt_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (dedup_key, farm, phone, text, kind, incident, now_ms, now_ms),
        )
        return cursor.rowcount == 1

    def due_sms(
        self, now_ms: int, limit: int = 20, horizon_ms: int | None = None
    ) -> list[OutgoingSms]:
        """Pending messages whose next attempt is due, oldest first. With ``horizon_ms`` (the
        longest retry delay) a next attempt further ahead than that is due too: the wall clock
        was stepped back since it was scheduled."""
        far = now_ms + horizon_ms if horizon_ms is not None else None
        rows = self._all(
            "SELECT id, farm, phone, text, kind, incident, attempts, created_ms FROM sms "
            "WHERE state='pending' AND (next_attempt_ms<=? OR next_attempt_ms>?) "
            "ORDER BY id LIMIT ?",
            (now_ms, far if far is not None else 2**62, limit),
        )
        return [OutgoingSms(*row) for row in rows]

    def sms_sent(self, sms_id: int, channel: str, reference: str, now_ms: int) -> None:
        """A channel accepted the message."""
        self._db.execute(
            "UPDATE sms SET state='sent', channel=?, reference=?, sent_ms=?, "
            "attempts=attempts+1 WHERE id=?",
            (channel, reference, now_ms, sms_id),
        )

    def sms_retry(self, sms_id: int, next_attempt_ms: int, error: str, failed: bool) -> None:
        """Every channel failed this time; try again later (or give up when ``failed``)."""
        self._db.execute(
            "UPDATE sms SET attempts=attempts+1, next_attempt_ms=?, last_error=?, "
            "state=CASE WHEN ? THEN 'failed' ELSE state END WHERE id=?",
            (next_attempt_ms, error[:500], failed, sms_id),
        )

    def sms_part_sent(
        self, sms_id: int, part: int, channel: str, reference: str, now_ms: int
    ) -> None:
        """A channel confirmed one part of a message (committed before the next part goes)."""
        self._db.execute(
            "INSERT OR REPLACE INTO sms_parts VALUES (?, ?, ?, 'sent', ?, ?)",
            (sms_id, part, channel, reference, now_ms),
        )

    def sms_part_uncertain(self, sms_id: int, part: int, channel: str, now_ms: int) -> None:
        """A channel may or may not have sent this part: the message stays on that channel."""
        self._db.execute(
            "INSERT INTO sms_parts VALUES (?, ?, ?, 'uncertain', '', ?) "
            "ON CONFLICT (sms_id, part) DO UPDATE SET state='uncertain', ts_ms=excluded.ts_ms "
            "WHERE state != 'sent'",
            (sms_id, part, channel, now_ms),
        )

    def sms_progress(self, sms_id: int) -> tuple[str | None, set[int]]:
        """(channel the message is bound to, parts confirmed sent): a message with any part
        sent or uncertain on a channel may only go on through that channel."""
        rows = self._all("SELECT part, channel, state FROM sms_parts WHERE sms_id=?", (sms_id,))
        channel = str(rows[0][1]) if rows else None
        return channel, {int(r[0]) for r in rows if r[2] == "sent"}

    def sms_parts(self, sms_id: int) -> list[tuple[int, str, str]]:
        """(part, channel, state) of a message's recorded parts."""
        rows = self._all(
            "SELECT part, channel, state FROM sms_parts WHERE sms_id=? ORDER BY part", (sms_id,)
        )
        return [(int(p), str(c), str(st)) for p, c, st in rows]

    def sms_log(self, farm: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """Messages (queued, sent, failed), oldest first."""
        sql = (
            "SELECT id, farm, phone, text, kind, incident, created_ms, attempts, state, channel,"
            " reference, sent_ms, last_error FROM sms WHERE 1=1"
        )
        params: list[Any] = []
        if farm is not None:
            sql += " AND farm=?"
            params.append(farm)
        if state is not None:
            sql += " AND state=?"
            params.append(state)
        cursor = self._db.execute(sql + " ORDER BY id", params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def last_sms(self, farm: str) -> dict[str, Any] | None:
        """The farm's newest message (queued, sent or failed), or None."""
        cursor = self._db.execute(
            "SELECT id, phone, text, kind, incident, created_ms, state, sent_ms FROM sms "
            "WHERE farm=? ORDER BY id DESC LIMIT 1",
            (farm,),
        )
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
        return dict(zip(names, row, strict=True)) if row is not None else None

    # -- received SMS -----------------------------------------------------------------------

    def add_incoming(
        self, phone: str, text: str, stamp: str, now_ms: int, outcome: str | None = None
    ) -> int | None:
        """Store a received message; None if this exact message was stored before. With an
        ``outcome`` it is stored as already handled (kept for the record, never answered)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO inbox (phone, text, stamp, received_ms, handled, outcome) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (phone, text, stamp, now_ms, int(outcome is not None), outcome),
        )
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def unhandled_incoming(self) -> list[tuple[int, str, str]]:
        """(id, phone, text) of received messages not yet answered."""
        rows = self._all("SELECT id, phone, text FROM inbox WHERE handled=0 ORDER BY id")
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def incoming_handled(self, inbox_id: int, outcome: str) -> None:
        """Mark a received message handled."""
        self._db.execute("UPDATE inbox SET handled=1, outcome=? WHERE id=?", (outcome, inbox_id))

    def inbox(self) -> list[dict[str, Any]]:
        """Every received message with what was done about it."""
        cursor = self._db.execute(
            "SELECT id, phone, text, received_ms, handled, outcome FROM inbox ORDER BY id"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- quarantine -------------------------------------------------------------------------

    def quarantine(
        self, source: str, origin: str, payload: bytes, cause: str, detail: str, now_ms: int
    ) -> int:
        """Keep input that could not be handled, whole: ``source`` ``mqtt`` (origin: the
        topic) or ``sms`` (origin: where on the modem; payload: the PDU as received)."""
        cursor = self._db.execute(
            "INSERT INTO quarantine (received_ms, source, origin, payload, cause, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (now_ms, source, origin, payload, cause, detail[:2000]),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def quarantined(self, source: str | None = None) -> list[dict[str, Any]]:
        """Quarantined input, oldest first (optionally of one source)."""
        sql = "SELECT id, received_ms, source, origin, payload, cause, detail FROM quarantine"
        params: tuple[Any, ...] = ()
        if source is not None:
            sql += " WHERE source=?"
            params = (source,)
        cursor = self._db.execute(sql + " ORDER BY id", params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- export to InfluxDB -----------------------------------------------------------------

    def unexported(self, limit: int = 500) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(alert events, sent SMS) not yet written to InfluxDB."""
        events = self._db.execute(
            "SELECT id, ts, farm, rule, incident, from_state, to_state, value, detail "
            "FROM alert_events WHERE exported=0 ORDER BY id LIMIT ?",
            (limit,),
        )
        event_names = [d[0] for d in events.description]
        event_rows = [dict(zip(event_names, r, strict=True)) for r in events.fetchall()]
        sms = self._db.execute(
            "SELECT id, farm, phone, text, kind, incident, channel, attempts, sent_ms, created_ms "
            "FROM sms WHERE exported=0 AND state='sent' ORDER BY id LIMIT ?",
            (limit,),
        )
        sms_names = [d[0] for d in sms.description]
        sms_rows = [dict(zip(sms_names, r, strict=True)) for r in sms.fetchall()]
        return event_rows, sms_rows

    def mark_exported(self, event_ids: Sequence[int], sms_ids: Sequence[int]) -> None:
        """Remember what InfluxDB has."""
        with self.transaction():
            self._db.executemany(
                "UPDATE alert_events SET exported=1 WHERE id=?", [(i,) for i in event_ids]
            )
            self._db.executemany("UPDATE sms SET exported=1 WHERE id=?", [(i,) for i in sms_ids])

    def mark_export_refused(self, table: str, row_id: int, error: str) -> None:
        """InfluxDB refuses this row for good (HTTP 400): ``exported=2``, with the error in the
        ``export_refused`` metadata, never tried again."""
        if table not in ("alert_events", "sms"):
            raise ValueError(f"not an exported table: {table}")
        with self.transaction():
            self._db.execute(f"UPDATE {table} SET exported=2 WHERE id=?", (row_id,))
            self.set_meta(f"export_refused/{table}/{row_id}", error[:500])

    def export_refused(self) -> list[tuple[str, int]]:
        """(table, id) of the rows InfluxDB refused."""
        rows = self._all(
            "SELECT 'alert_events', id FROM alert_events WHERE exported=2 UNION ALL "
            "SELECT 'sms', id FROM sms WHERE exported=2 ORDER BY 1, 2"
        )
        return [(str(t), int(i)) for t, i in rows]

    # -- lease and metadata -----------------------------------------------------------------

    def try_lease(self, name: str, holder: str, now_ms: int, ttl_ms: int) -> bool:
        """Take or renew the lease ``name`` for ``holder``; False while another holds it."""
        with self.transaction():
            rows = self._all("SELECT holder, expires_ms FROM lease WHERE name=?", (name,))
            if rows and rows[0][0] != holder and int(rows[0][1]) > now_ms:
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO lease VALUES (?, ?, ?)", (name, holder, now_ms + ttl_ms)
            )
        return True

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (clean shutdown) so a standby can take over at once."""
        self._db.execute("DELETE FROM lease WHERE name=? AND holder=?", (name, holder))

    def meta(self, key: str) -> str | None:
        """A stored setting."""
        rows = self._all("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting (replacing it)."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def set_meta_once(self, key: str, value: str) -> str:
        """Store ``value`` unless the key exists; return the stored value."""
        self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
        stored = self.meta(key)
        assert stored is not None
        return stored
