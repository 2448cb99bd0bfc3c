"""The modem's health, checked periodically by the delivery worker (which owns the modem): which
registration carries it (``+CREG``/``+CGREG``/``+CEREG``), the signal (RSSI, RSRP, RSRQ),
logged when the registration changes and written to InfluxDB as ``modem_health`` points when
the history database is configured. A sample, not a record: one lost while InfluxDB is down is
not written later."""

from __future__ import annotations

import logging

from collector.alerts.channels import ChannelError
from collector.alerts.modem import GsmModem
from collector.alerts.modem_status import REGISTRATION_COMMANDS, ModemStatus
from farmwatch_shared.influx import PermanentWriteError, PointWriter, RetryableWriteError
from farmwatch_shared.lineprotocol import generic_line
from farmwatch_shared.problems import ProblemLog

log = logging.getLogger(__name__)


def health_line(status: ModemStatus, ts_ms: int, holder: str) -> str:
    """The ``modem_health`` point of ``status``: tags ``profile``, ``via`` (``CREG``,
    ``CGREG``, ``CEREG`` or ``none``), ``holder`` (the alerter); fields ``registered``,
    ``roaming``, the ``creg``/``cgreg``/``cereg`` stats and ``act`` known, ``rssi_dbm``,
    ``rsrp_dbm``, ``rsrq_db`` when known, ``model`` when detected."""
    via = status.via
    fields: dict[str, float | int | bool | str] = {"registered": via is not None}
    for source in REGISTRATION_COMMANDS:
        reg = status.registration(source)
        if reg is not None:
            fields[source.lower()] = reg.stat
    carrier = status.registration(via) if via is not None else None
    if carrier is not None:
        fields["roaming"] = carrier.roaming
        if carrier.act is not None:
            fields["act"] = carrier.act
    signal = status.signal
    if signal is not None:
        for key, value in (
            ("rssi_dbm", signal.rssi_dbm),
            ("rsrp_dbm", signal.rsrp_dbm),
            ("rsrq_db", signal.rsrq_db),
        ):
            if value is not None:
                fields[key] = float(value)
    if status.model:
        fields["model"] = status.model
    tags = {"profile": status.profile, "via": via or "none", "holder": holder}
    return generic_line("modem_health", tags, fields, ts_ms)


class ModemHealth:
    """Checks the modem (``refresh_status``) and reports what it found."""

    def __init__(
        self,
        modem: GsmModem,
        writer: PointWriter | None,
        problems: ProblemLog,
        holder: str,
    ) -> None:
        self._modem = modem
        self._writer = writer
        self._problems = problems
        self._holder = holder
        self._last_via: str | None = None
        self.checks = 0
        self.written = 0

    def check(self) -> ModemStatus | None:
        """One check; None if the modem did not answer (reported as ``modem_health_<cause>``)."""
        try:
            status = self._modem.refresh_status()
        except ChannelError as exc:
            self._problems.report(f"modem_health_{exc.cause}", str(exc))
            return None
        self.checks += 1
        if self.checks == 1 or status.via != self._last_via:
            log.info("Estado del módem / modem health: %s", status.describe())
        self._last_via = status.via
        if self._writer is not None and status.checked_ms is not None:
            try:
                self._writer.write([health_line(status, status.checked_ms, self._holder)])
            except (RetryableWriteError, PermanentWriteError) as exc:
                self._problems.report("modem_health_unwritten", str(exc))
            else:
                self.written += 1
        return status
