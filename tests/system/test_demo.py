"""`make demo` as a user runs it: three farms update from InfluxDB (the LoRaWAN sensors too,
through the emulated network server), the real alerting service texts through the emulated GSM
modem (a trough alert, the farmer's OK, the resolution after the refill, all within the first
two minutes), the printed URL and account open the farm page in a real headless Chromium while
the demo runs, and it stops cleanly.

One run of the demo for the whole module: the browser test comes first and works while the demo
runs; the others read its whole output once it has stopped.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from support.browser import PHONE, chromium
from support.paths import FARM_FILES, FARMS, REPO
from support.waiting import wait_for

from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import SoilMoistureSensor, WaterLevelSensor

DEMO_S = 125
FIRST_MINUTES_S = 120
STOP_S = 60
"""Generous: the demo stops its servers and processes after ``DEMO_S``."""
ALERT_FARM = "oax-mixteca"
LORAWAN_FARM = "chis-frailesca"
PAGE_LINE = re.compile(
    r"Página de la finca / farm page: (http://127\.0\.0\.1:\d+)/  usuario / user: (\S+)  "
    r"contraseña / password: (\S+)$",
    re.MULTILINE,
)
LEVEL = re.compile(r"^\d+\.\d %$")
LITRES = re.compile(r"^\d[\d,]* L$")


class RunningDemo:
    """``python -m farmwatch_local.demo`` as a new user starts it, its output read as it
    comes (stderr to a file)."""

    def __init__(self, data_dir: Path) -> None:
        self._stderr_path = data_dir.parent / "demo.stderr"
        with self._stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "farmwatch_local.demo",
                    "--duration",
                    str(DEMO_S),
                    "--no-clear",
                    "--data-dir",
                    str(data_dir),
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.started = time.monotonic()
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self._chunks.append(line)

    def output(self) -> str:
        """Everything printed so far."""
        with self._lock:
            return "".join(self._chunks)

    def wait_for(self, pattern: str | re.Pattern[str], timeout_s: float) -> re.Match[str]:
        """The first match of ``pattern`` in the output, waiting for it while the demo runs."""
        regex = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern

        def found() -> re.Match[str] | None:
            match = regex.search(self.output())
            if match is None:
                assert self.process.poll() is None, f"the demo stopped: {self.output()[-3000:]}"
            return match

        match: re.Match[str] = wait_for(found, timeout_s, 0.2, f"{regex.pattern!r} in the demo")
        return match

    def finish(self) -> subprocess.CompletedProcess[str]:
        """Wait for the demo to stop by itself (``--duration``); its whole output."""
        remaining = DEMO_S + STOP_S + 120 - (time.monotonic() - self.started)
        self.process.wait(max(remaining, 1.0))
        self._reader.join(10)
        (self._stderr_path.parent / "demo.stdout").write_text(self.output())
        return subprocess.CompletedProcess(
            self.process.args, self.process.returncode, self.output(), self.stderr()
        )

    def stderr(self) -> str:
        """What the demo wrote to stderr."""
        return self._stderr_path.read_text(errors="replace")

    def interrupt(self) -> None:
        """Ctrl-C, if it still runs (a test failed early)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def running_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    """One run of the demo for the module."""
    demo = RunningDemo(tmp_path_factory.mktemp("demo") / "demo")
    try:
        yield demo
    finally:
        demo.interrupt()


@pytest.fixture(scope="module")
def demo(running_demo: RunningDemo) -> subprocess.CompletedProcess[str]:
    """The demo's run, once it has stopped by itself."""
    return running_demo.finish()


# ---- while it runs: the printed URL and account open the farm page -----------------------------


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def log_in(driver: WebDriver, url: str, user: str, password: str) -> None:
    driver.get(f"{url}/")
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()
    wait_for(
        lambda: (
            "/login" not in driver.current_url
            and driver.execute_script("return document.readyState") == "complete"
        ),
        what="the page after the login",
    )


def check_farm_page(driver: WebDriver, url: str, farm: str) -> None:
    """Every tank and trough of the farm with its level and litres, every soil probe with its
    moisture, the agent online."""
    driver.get(f"{url}/farms/{farm}")
    config = load_farm_dir(FARM_FILES)[farm]
    assert text_of(driver, "h1") == config.farm.name
    for sensor in config.sensors:
        if isinstance(sensor, WaterLevelSensor):
            assert LEVEL.match(text_of(driver, f"#vessel-{sensor.id} .level")), sensor.id
            assert LITRES.match(text_of(driver, f"#vessel-{sensor.id} .litres")), sensor.id
        elif isinstance(sensor, SoilMoistureSensor):
            assert LEVEL.match(text_of(driver, f"#soil-{sensor.id} .value")), sensor.id
    for agent in config.agents:
        assert text_of(driver, f"#agent-{agent.id} .state") == "En línea"


def test_the_printed_url_and_account_open_the_farm_pages_with_the_alert(
    running_demo: RunningDemo,
) -> None:
    page = running_demo.wait_for(PAGE_LINE, 90)
    url, user, password = page.groups()
    alert = running_demo.wait_for(
        r"^ +\d+ s  módem → …0001  ALERTA (\d+) Rancho modelo La Mixteca: Bebedero potrero norte",
        FIRST_MINUTES_S,
    )
    number = alert.group(1)
    # the farmer's OK reached the alerting service (the terminal reads its API)
    running_demo.wait_for(
        rf"ALERTA #{number} Bebedero potrero norte [^\n]*: recibida por / acked by …0001 \(sms\)",
        60,
    )
    with chromium(PHONE) as driver:
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        log_in(driver, url, user, password)
        # an operator of the three farms gets the farm list
        for farm in FARMS:
            assert driver.find_elements(By.CSS_SELECTOR, f'a[href="/farms/{farm}"]'), farm
        for farm in FARMS:
            check_farm_page(driver, url, farm)
        # the LoRaWAN trough and probe have values on the page too
        driver.get(f"{url}/farms/{LORAWAN_FARM}")
        assert LEVEL.match(text_of(driver, "#vessel-trough-hill .level"))
        assert LEVEL.match(text_of(driver, "#soil-soil-far .value"))
        # the open alert, acknowledged by the farmer's SMS: the one incident state
        driver.get(f"{url}/farms/{ALERT_FARM}")
        incident = f"#incident-{number}"
        assert "Bebedero potrero norte" in text_of(driver, f"{incident} .text")
        assert text_of(driver, f"{incident} .acked").startswith("Reconocida por …0001 (sms)")
        assert not driver.find_elements(By.CSS_SELECTOR, f"{incident} button.ack")
        # after the refill the page has no alert and shows the resolution SMS
        running_demo.wait_for(rf"^ +\d+ s  módem → …0001  RESUELTO {number} ", FIRST_MINUTES_S)
        driver.get(f"{url}/farms/{ALERT_FARM}")
        assert driver.find_elements(By.ID, "no-alerts")
        assert not driver.find_elements(By.CSS_SELECTOR, incident)
        assert f"RESUELTO {number} " in text_of(driver, "#last-sms")
        driver.find_element(By.ID, "logout").click()
        wait_for(lambda: "/login" in driver.current_url, what="the login page after logout")
    # the printed password is the one kept for the user, mode 600
    kept = re.search(r"the password also in (\S+)\)$", running_demo.output(), re.MULTILINE)
    assert kept is not None
    path = Path(kept.group(1))
    assert path.read_text().strip() == password
    assert path.stat().st_mode & 0o777 == 0o600


# ---- once it has stopped: the terminal's story -----------------------------------------------


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
    # the LoRaWAN trough (litres) and soil probe, uplinked through the emulated network server
    assert re.search(r"^  trough-hill .*\(LoRaWAN\).* \d+\.\d %  +[\d,]+ L", last, re.M), last
    assert re.search(r"^  soil-far .* \d+\.\d % VWC$", last, re.MULTILINE), last
    assert "LoRaWAN: 2 sensores por el servidor de red emulado" in last
    # … all along: its silent rule (no reading for two simulated hours) never fires
    assert "sin datos de Bebedero de la loma" not in result.stdout
    assert "InfluxDB: http://127.0.0.1:" in last
    assert "database: farmwatch" in last
    assert PAGE_LINE.search(last), last
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
