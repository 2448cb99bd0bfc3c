"""Outputs: write line-protocol batches to InfluxDB, classifying every failure.

``RetryableWriteError``: the database could not take the batch now (down, 5xx, 429, auth or
missing database that an operator can fix): retry with backoff, never drop.
``PermanentWriteError``: the database refused the points themselves (400): isolate and
dead-letter them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlencode

import urllib3
from pydantic import SecretStr

log = logging.getLogger(__name__)


class RetryableWriteError(Exception):
    """Try the same batch again later."""


class PermanentWriteError(Exception):
    """The database will never accept (some of) these points."""


class PointWriter(Protocol):
    """Writes a batch of line-protocol lines (millisecond timestamps)."""

    def write(self, lines: Sequence[str]) -> None:
        """Write all ``lines`` or raise RetryableWriteError / PermanentWriteError."""


def raise_for_status(status: int, body: str) -> None:
    """Map an HTTP status of a write to success, retryable or permanent."""
    if 200 <= status < 300:
        return
    if status in (400, 422):
        raise PermanentWriteError(f"HTTP {status}: {body[:500]}")
    if status == 413:
        raise PermanentWriteError(f"HTTP 413 (batch too large): {body[:200]}")
    raise RetryableWriteError(f"HTTP {status}: {body[:500]}")


class InfluxV1Writer:
    """InfluxDB 1.x HTTP API: ``POST /write?db=…&rp=…&precision=ms`` (Debian's 1.6 speaks this)."""

    def __init__(
        self,
        url: str,
        database: str,
        retention_policy: str = "",
        username: str | None = None,
        password: SecretStr | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._url = url.rstrip("/")
        self._database = database
        params = {"db": database, "precision": "ms"}
        if retention_policy:
            params["rp"] = retention_policy
        self._write_url = f"{self._url}/write?{urlencode(params)}"
        self._headers: dict[str, str] = {}
        if username is not None:
            secret = password.get_secret_value() if password else ""
            self._headers.update(urllib3.make_headers(basic_auth=f"{username}:{secret}"))
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=timeout_s), retries=False
        )

    def write(self, lines: Sequence[str]) -> None:
        """Write one batch."""
        body = "\n".join(lines).encode("utf-8")
        try:
            response = self._http.request("POST", self._write_url, body=body, headers=self._headers)
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableWriteError(f"InfluxDB unreachable: {exc}") from None
        raise_for_status(response.status, response.data.decode("utf-8", "replace"))

    def query(self, influxql: str, method: str = "GET") -> dict[str, object]:
        """Run an InfluxQL statement and return the JSON answer (for set-up and checks).
        GET for reads; POST for statements that change something (InfluxDB 1.x requires it)."""
        params = urlencode({"db": self._database, "q": influxql, "epoch": "ms"})
        try:
            if method == "GET":
                response = self._http.request(
                    "GET", f"{self._url}/query?{params}", headers=self._headers
                )
            else:
                response = self._http.request(
                    method,
                    f"{self._url}/query",
                    body=params.encode("utf-8"),
                    headers={**self._headers, "Content-Type": "application/x-www-form-urlencoded"},
                )
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableWriteError(f"InfluxDB unreachable: {exc}") from None
        raise_for_status(response.status, response.data.decode("utf-8", "replace"))
        result: dict[str, object] = response.json()
        return result

    def ensure_database(self) -> None:
        """Create the database if it does not exist (idempotent in InfluxDB 1.x)."""
        self.query(f'CREATE DATABASE "{self._database}"', method="POST")


class InfluxQueryError(Exception):
    """InfluxDB answered a query with an error (a bad statement, a missing measurement...)."""


def query_rows(answer: dict[str, object]) -> list[dict[str, Any]]:
    """The rows of an InfluxQL answer (``InfluxV1Writer.query``) as dicts: each series' columns
    plus its GROUP BY tags, all statements and series in order. A missing database reads as no
    rows (nothing written yet); any other error raises :class:`InfluxQueryError`."""
    rows: list[dict[str, Any]] = []
    results = answer.get("results", [])
    for result in results if isinstance(results, list) else []:
        error = result.get("error")
        if error:
            if str(error).startswith("database not found"):
                continue
            raise InfluxQueryError(str(error))
        for series in result.get("series", []):
            tags = series.get("tags") or {}
            columns = series["columns"]
            for values in series.get("values", []):
                row = dict(zip(columns, values, strict=True))
                row.update(tags)
                rows.append(row)
    return rows


class InfluxV2Writer:
    """InfluxDB 2.x/3.x/1.8+ API (``/api/v2/write``) through ``influxdb-client``, synchronous.

    The client's batching WriteApi keeps its buffer in memory only, so it is not used: each
    batch is written synchronously and acknowledged upstream only once the server accepted it.
    """

    def __init__(
        self, url: str, token: SecretStr, org: str, bucket: str, timeout_s: float = 30.0
    ) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._client = InfluxDBClient(
            url=url,
            token=token.get_secret_value(),
            org=org,
            timeout=int(timeout_s * 1000),
            retries=False,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)
        self._org = org
        self._bucket = bucket

    def write(self, lines: Sequence[str]) -> None:
        """Write one batch."""
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(
                bucket=self._bucket,
                org=self._org,
                record=list(lines),
                # the library annotates the enum but defines its members as plain str
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            raise_for_status(int(exc.status or 0), str(exc.body or exc.reason))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryableWriteError(f"InfluxDB unreachable: {exc}") from None

    def close(self) -> None:
        """Release the client's connections."""
        self._client.close()  # type: ignore[no-untyped-call]
