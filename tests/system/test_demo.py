"""`make demo` as a user runs it: three farms update from InfluxDB, the real alerting service
texts through the emulated GSM modem (a trough alert, the farmer's OK, the resolution after the
refill, all within the first two minutes), and it stops cleanly."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from support.paths import FARMS, REPO

DEMO_S = 125
FIRST_MINUTES_S = 120


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """One run of the demo, as a new user starts it (``python -m farmwatch_local.demo``)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "farmwatch_local.demo",
            "--duration",
            str(DEMO_S),
            "--no-clear",
            "--data-dir",
            str(tmp_path_factory.mktemp("demo") / "demo"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DEMO_S + 180,
        check=False,  # the tests read the return code
    )


def test_demo_shows_three_farms_updating_and_stops_everything(
    demo: subprocess.CompletedProcess[str],
) -> None:
    result = demo
    assert result.returncode == 0, result.stderr[-3000:]
    views = result.stdout.split("farmwatch demo — ")
    assert len(views) >= 5, result.stdout[-3000:]
    first, last = views[1], views[-1]
    for farm in FARMS:
        assert re.search(rf"\({farm}\) — agente en línea / online", last), last
    # every sensor shows a value read back from InfluxDB
    assert "—\n" not in last.split("InfluxDB:")[0], last
    assert "InfluxDB: http://127.0.0.1:" in last
    assert "database: farmwatch" in last
    # the farms are updating: simulated time and values move between the first and last view
    assert first.split("InfluxDB:")[0] != last.split("InfluxDB:")[0]
    assert "Listo / done" in result.stdout
    assert "a process exited" not in result.stdout


def _sms(out: str, arrow: str, text: str) -> tuple[float, str]:
    """(real seconds, text) of the first SMS line through the modem matching ``text``."""
    match = re.search(rf"^ +(\d+) s  módem {arrow} …0001  ({text})$", out, re.MULTILINE)
    assert match is not None, f"no SMS {arrow} {text!r} in:\n{out[-4000:]}"
    return float(match.group(1)), match.group(2)


def test_a_trough_alert_is_texted_acknowledged_and_resolved_in_the_first_minutes(
    demo: subprocess.CompletedProcess[str],
) -> None:
    out = demo.stdout
    assert demo.returncode == 0, demo.stderr[-3000:]
    # the alert as the modem emulator decoded it from the PDU it was given
    fired_s, alert = _sms(
        out,
        "→",
        r"ALERTA (\d+) Rancho modelo La Mixteca: Bebedero potrero norte \d+% \(umbral 25%\)"
        r"[^\n]*\. Responda OK \d+",
    )
    number = re.match(r"ALERTA (\d+) ", alert).group(1)  # type: ignore[union-attr]
    assert alert.endswith(f"Responda OK {number}")
    ok_s, _ = _sms(out, "←", f"OK {number}")  # the farmer's phone answers through the modem
    reply_s, _ = _sms(out, "→", rf"Alerta {number} recibida, gracias\. No se escalará\.")
    resolved_s, _ = _sms(
        out,
        "→",
        rf"RESUELTO {number} Rancho modelo La Mixteca: Bebedero potrero norte \d+% "
        r"\(umbral 25%\)[^\n]*\. Normal de nuevo\.",
    )
    assert fired_s < ok_s <= reply_s < resolved_s <= FIRST_MINUTES_S, (
        fired_s,
        ok_s,
        reply_s,
        resolved_s,
    )
    assert re.search(r"\((gsm7|ucs2), 1 parte\(s\) / part\(s\), PDU 0011000C9125590100001000", out)
    # the alerting API's view of it: open, then acknowledged by the (masked) phone
    assert f"ALERTA #{number} Bebedero potrero norte" in out
    assert re.search(
        rf"ALERTA #{number} Bebedero potrero norte \d+% \(umbral 25%\): recibida por / acked by "
        r"…0001 \(sms\)",
        out,
    )
    assert "+529510000001" not in out
    # days of water left (simulated days, from the API's forecasts) and the last SMS per farm
    views = out.split("farmwatch demo — ")
    early = [v for v in views[1:] if int(v.split(" — ")[1].split(" s ")[0]) <= FIRST_MINUTES_S]
    shown = early[-1]
    assert re.search(r"tank-main .* L +\d+\.\d d de agua / water", shown), shown
    assert re.search(r"trough-north .* L +\d+\.\d d de agua / water", shown), shown
    assert re.search(r"último SMS / last SMS \(…0001, sent\): RESUELTO \d+ ", shown), shown
    assert "API de alertas / alerts API: http://127.0.0.1:" in out
