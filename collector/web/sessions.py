"""Server-side login sessions in SQLite. The browser holds a random token; the database holds
only its SHA-256 (a copy of the file opens no session), the user, and when the session was
made and last used. Logout deletes the row; an idle or too old session is gone at the next
look-up. The same file keeps the key that signs the CSRF tokens, so they survive a restart."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from farmwatch_shared.clock import Clock

TOUCH_EVERY_MS = 60_000
"""``last_used_ms`` is written at most this often per session (reads stay reads)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL,
    language TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (username);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


@dataclass(frozen=True)
class Session:
    """A valid session."""

    token: str
    username: str
    created_ms: int
    language: str | None
    """Chosen on the page (``?lang=``); None: the account's language."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Sessions of one web application (thread-safe)."""

    def __init__(self, path: Path, clock: Clock, *, idle_s: int, max_s: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # a power cut may lose the last "used at" or a login made just before it: harmless
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        path.chmod(0o600)
        self._lock = threading.Lock()
        self._clock = clock
        self._idle_ms = idle_s * 1000
        self._max_ms = max_s * 1000

    def signing_key(self) -> bytes:
        """The CSRF key: made once, kept in the file."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = 'csrf_key'").fetchone()
            if row is not None:
                return bytes(row[0])
            key = secrets.token_bytes(32)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('csrf_key', ?)", (key,)
            )
            row = self._db.execute("SELECT value FROM meta WHERE name = 'csrf_key'").fetchone()
            return bytes(row[0])

    def create(self, username: str, language: str | None = None) -> Session:
        """A new session for ``username`` (always a new token: no session fixation)."""
        token = secrets.token_urlsafe(32)
        now = self._clock.now_ms()
        with self._lock:
            self._db.execute(
                "INSERT INTO sessions (token_sha256, username, created_ms, last_used_ms, "
                "language) VALUES (?, ?, ?, ?, ?)",
                (_digest(token), username, now, now, language),
            )
        return Session(token, username, now, language)

    def get(self, token: str | None) -> Session | None:
        """The session of ``token`` if it is still valid (and marks it used)."""
        if not token or len(token) > 128:
            return None
        now = self._clock.now_ms()
        digest = _digest(token)
        with self._lock:
            row = self._db.execute(
                "SELECT username, created_ms, last_used_ms, language FROM sessions "
                "WHERE token_sha256 = ?",
                (digest,),
            ).fetchone()
            if row is None:
                return None
            username, created_ms, last_used_ms, language = row
            if now - last_used_ms > self._idle_ms or now - created_ms > self._max_ms:
                self._db.execute("DELETE FROM sessions WHERE token_sha256 = ?", (digest,))
                return None
            if now - last_used_ms >= TOUCH_EVERY_MS:
                self._db.execute(
                    "UPDATE sessions SET last_used_ms = ? WHERE token_sha256 = ?", (now, digest)
                )
        return Session(token, username, created_ms, language)

    def set_language(self, token: str, language: str) -> None:
        """Remember the language chosen on the page for this session."""
        with self._lock:
            self._db.execute(
                "UPDATE sessions SET language = ? WHERE token_sha256 = ?",
                (language, _digest(token)),
            )

    def delete(self, token: str) -> None:
        """Log out: the session is gone."""
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_digest(token),))

    def delete_user(self, username: str) -> int:
        """End every session of ``username``; returns how many."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM sessions WHERE username = ?", (username,))
            return cursor.rowcount

    def purge(self) -> int:
        """Delete expired sessions; returns how many."""
        now = self._clock.now_ms()
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM sessions WHERE last_used_ms < ? OR created_ms < ?",
                (now - self._idle_ms, now - self._max_ms),
            )
            return cursor.rowcount

    def count(self) -> int:
        """Sessions stored (valid or not yet purged)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
