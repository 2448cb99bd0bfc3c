"""The farm page in a real headless Chromium (Debian's, JavaScript switched off) on data from an
emulated farm through the whole pipeline: the microcontroller emulator on a pty → the real edge
agent → Mosquitto → the collector → InfluxDB, and the alerting service (its own process, the GSM
modem emulator, its API) on the same broker. Log in, see exactly the values InfluxDB holds,
acknowledge the alert (and no reminder comes after), see it resolve after the refill, log out;
an operator of one farm is refused another; screenshots at 360×740 and 1280×800."""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from support.alerts import AlertsProcess, alerts_process
from support.browser import DESKTOP, PHONE, chromium, set_viewport
from support.harness import RunningAgent, collector_settings, start_agent, start_collector
from support.paths import FARM_FILES, REPO
from support.servers import Broker, Influx
from support.waiting import wait_for
from support.web import PASSWORDS, WebClient, WebServer, start_web, web_env

from collector.influx_setup import RetentionPlan, apply, backfill
from collector.web import i18n
from collector.web.balance import farm_balance
from collector.web.balance_csv import balance_csv
from collector.web.balance_query import load_series
from farmwatch_emulators.gsm_modem import GsmModemEmulator
from farmwatch_emulators.scenario import HOUR, DroughtScenario, Storm, raw_for
from farmwatch_local.services import free_port
from farmwatch_shared.farm.model import FarmConfig, load_farm_config
from farmwatch_shared.influx import InfluxV1Writer

FARM = "oax-mixteca"
OTHER = "oax-istmo"
SCREENSHOTS = REPO / "var" / "screenshots"
HISTORY_S = 3 * 24 * HOUR
STEP_S = 1800.0
REMINDER_S = 6
TROUGH_LOW_PCT = 15.0
SCENARIO = DroughtScenario(storms=(Storm(1.4 * 24 * HOUR, 3 * HOUR, 18.0),))
# the farm file's rules for this test: the trough alert at once (reminding every few seconds,
# resolving one second after the refill) and the tank's days of water
RULES = f"""
[[alerts]]
id = "trough-north-low"
type = "level_below"
sensor = "trough-north"
threshold_pct = 25
recover_above_pct = 35
for_s = 0
severity = "critical"
resolve_for_s = 1
reminder_interval_s = {REMINDER_S}
escalate_after_s = 86400

[[alerts]]
id = "tank-days-left"
type = "days_left_below"
sensor = "tank-main"
days = 2
herd_size = 24
litres_per_animal_day = 60

"""


class ReplayClock:
    """Wall clock ``behind_ms`` behind real time, which the test only ever lowers (history
    replayed day by day, then live at 0); monotonic time moves forward with it."""

    def __init__(self, behind_ms: int) -> None:
        self.behind_ms = behind_ms
        self._start = behind_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 - self.behind_ms

    def monotonic(self) -> float:
        return time.monotonic() + (self._start - self.behind_ms) / 1000

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def farm_dir(tmp_path: Path) -> Path:
    """La Mixteca with the test's rules, and Istmo as shipped."""
    farms = tmp_path / "farms"
    farms.mkdir()
    text = (FARM_FILES / f"{FARM}.toml").read_text()
    head = text[: text.index("[[alerts]]")]
    contacts = text[text.index("[[contacts]]") :]
    (farms / f"{FARM}.toml").write_text(head + RULES + contacts)
    shutil.copy(FARM_FILES / f"{OTHER}.toml", farms / f"{OTHER}.toml")
    return farms


def sample(agent: RunningAgent, config: FarmConfig, t: float, **physical: float) -> None:
    """Every sensor sampled at scenario time ``t`` (``physical`` overrides a sensor's value);
    returns once the agent has committed them all."""
    for sensor in config.sensors:
        value = physical.get(sensor.id.replace("-", "_"), SCENARIO.state_pct(sensor, t))
        agent.mcu.sample(sensor.channel, raw_for(sensor, value))
    wait_for(lambda: agent.mcu.unacknowledged == 0, what="the agent committed the samples")


@dataclass
class Farm:
    """The running pipeline of the test."""

    influx: Influx
    agent: RunningAgent
    config: FarmConfig
    alerts: AlertsProcess
    modem: GsmModemEmulator
    web: WebServer
    scenario_end_s: float


@pytest.fixture
def farm(
    broker: Broker, influx: Influx, tmp_path: Path, modem_emulator: GsmModemEmulator
) -> Iterator[Farm]:
    farms = farm_dir(tmp_path)
    writer = InfluxV1Writer(influx.url, influx.database)
    plan = RetentionPlan(database=influx.database)
    apply(lambda statement: writer.query(statement, method="POST"), plan)
    collector = start_collector(collector_settings(broker, influx, farm_dir=farms))
    alerts = alerts_process(
        broker,
        tmp_path,
        farms,
        modem_emulator.link.path,
        state_db=tmp_path / "alerts.sqlite3",
        api_port=free_port(),
    )
    alerts.wait_subscribed()
    clock = ReplayClock(int(HISTORY_S * 1000))
    agent = start_agent(broker, tmp_path, FARM, clock=clock)
    config = load_farm_config(farms / f"{FARM}.toml")
    web: WebServer | None = None
    try:
        steps = int(HISTORY_S / STEP_S)
        for step in range(steps):  # three days, a sample of every sensor each half hour
            clock.behind_ms = int((HISTORY_S - step * STEP_S) * 1000)
            sample(agent, config, step * STEP_S)
        clock.behind_ms = 0  # now: the trough is low
        sample(agent, config, HISTORY_S, trough_north=TROUGH_LOW_PCT)
        now = clock.now_ms()
        wait_for(
            lambda: influx.query(
                f"SELECT count(value) FROM water_level WHERE time >= {now - 60_000}ms"
            ),
            what="the last readings in InfluxDB",
        )
        backfill(
            lambda statement: writer.query(statement, method="POST"),
            plan,
            now - int(HISTORY_S * 1000) - 86_400_000,
            now + 60_000,
        )
        web = start_web(
            # the first API URL does not answer: the client goes on to the next
            web_env(
                tmp_path,
                influx.url,
                influx.database,
                api_urls=f"http://127.0.0.1:{free_port()},{alerts.api.url}",
                farm_dir=farms,
            ),
            tmp_path,
        )
        yield Farm(influx, agent, config, alerts, modem_emulator, web, HISTORY_S)
    finally:
        if web is not None:
            web.stop()
        agent.stop()
        alerts.stop()
        collector.stop()


# ---- what InfluxDB holds, asked independently of the page ------------------------------------


def latest(influx: Influx, measurement: str) -> dict[str, dict[str, Any]]:
    rows = influx.query(
        f"SELECT last(value) AS value, last(volume_l) AS volume_l FROM {measurement} "
        f"WHERE farm = '{FARM}' GROUP BY sensor"
    )
    return {row["sensor"]: row for row in rows}


def local_midnight_ms(days_ago: int) -> int:
    zone = ZoneInfo("America/Mexico_City")
    today = datetime.now(zone).date()
    day = datetime(today.year, today.month, today.day, tzinfo=zone)
    return int(day.timestamp() * 1000) - days_ago * 86_400_000


def rain_since(influx: Influx, start_ms: int) -> float:
    rows = influx.query(
        f"SELECT sum(value) AS mm FROM rain WHERE farm = '{FARM}' AND time >= {start_ms}ms"
    )
    return float(rows[0]["mm"]) if rows else 0.0


def text_of(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def login(driver: WebDriver, url: str, name: str) -> None:
    driver.get(url)
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    click_to(driver, driver.find_element(By.ID, "login"), lambda u: "/login" not in u)


def click_to(driver: WebDriver, element: Any, arrived: Callable[[str], bool]) -> None:
    """Click and wait until the browser's URL satisfies ``arrived`` and the page has loaded (a
    click returns before the navigation it starts has finished)."""
    element.click()
    wait_for(
        lambda: (
            arrived(driver.current_url)
            and driver.execute_script("return document.readyState") == "complete"
        ),
        what="the next page",
    )


def screenshot(driver: WebDriver, name: str, window: tuple[int, int]) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    set_viewport(driver, window)
    driver.refresh()
    path = SCREENSHOTS / f"{name}-{window[0]}x{window[1]}.png"
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 5000
    # and the whole page, as long as it is
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    full = SCREENSHOTS / f"{name}-{window[0]}-full.png"
    full.write_bytes(base64.b64decode(shot["data"]))
    return path


def texts(modem: GsmModemEmulator, head: str) -> list[str]:
    return [m.text for m in modem.sent if m.text.startswith(head)]


# ---- the test -------------------------------------------------------------------------------


def check_values(driver: WebDriver, farm: Farm) -> None:
    """Every figure on the page is the one in InfluxDB (and the alerting service's)."""
    levels = latest(farm.influx, "water_level")
    forecasts = farm.alerts.api.farm(FARM)["forecasts"]
    for sensor in ("tank-main", "trough-north"):
        row = levels[sensor]
        card = f"#vessel-{sensor}"
        assert text_of(driver, f"{card} .level") == f"{i18n.number(row['value'])} %"
        assert text_of(driver, f"{card} .litres") == f"{i18n.number(row['volume_l'], 0)} L"
        age = driver.find_element(By.CSS_SELECTOR, f"{card} .age")
        assert age.text.startswith("lectura hace")
        assert "stale" not in str(age.get_attribute("class"))
    tank = forecasts["tank-main"]
    assert tank is not None
    assert tank["days_left"] is not None
    assert text_of(driver, "#vessel-tank-main .days") == (
        f"Quedan {i18n.days(tank['days_left'], 'es')} de agua"
    )
    assert text_of(driver, "#vessel-tank-main .trend")  # six hours of readings: a trend
    soil = latest(farm.influx, "soil_moisture")["soil-20cm"]
    assert text_of(driver, "#soil-soil-20cm .value") == f"{i18n.number(soil['value'])} %"
    assert text_of(driver, "#soil-soil-20cm .bounds") == "Marchitez 12 % · capacidad de campo 30 %"
    today = rain_since(farm.influx, local_midnight_ms(0))
    week = rain_since(farm.influx, local_midnight_ms(6))
    month = rain_since(farm.influx, local_midnight_ms(29))
    assert month > 0  # the storm is in the three days
    assert text_of(driver, "#rain h2") == "Lluvia (mm)"
    assert text_of(driver, "#rain .today") == i18n.number(today)
    assert text_of(driver, "#rain .week") == i18n.number(week)
    assert text_of(driver, "#rain .month") == i18n.number(month)
    assert text_of(driver, "#agent-pi-1 .state") == "En línea"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#vessel-tank-main svg.spark path")) >= 1


def local_month_start_ms() -> int:
    zone = ZoneInfo("America/Mexico_City")
    today = datetime.now(zone).date()
    return int(datetime(today.year, today.month, 1, tzinfo=zone).timestamp() * 1000)


def check_balance(driver: WebDriver, farm: Farm) -> None:
    """The balance section and the CSV show the water balance's own figures
    (``farm_balance`` on the same InfluxDB data)."""
    reader = InfluxV1Writer(farm.influx.url, farm.influx.database)
    now = int(time.time() * 1000)
    month_start = local_month_start_ms()
    start = min(local_midnight_ms(6), month_start)
    volumes, rain = load_series(reader, farm.config, start, now)
    month = farm_balance(farm.config, volumes, rain, month_start, now, "month").periods[-1]
    totals = month.totals
    assert text_of(driver, "#balance .harvested") == f"{i18n.number(totals.harvested_l, 0)} L"
    assert text_of(driver, "#balance .used") == f"{i18n.number(totals.used_l, 0)} L"
    week_start = local_midnight_ms(6)
    days = farm_balance(farm.config, volumes, rain, week_start, now, "day").periods
    rows = driver.find_elements(By.CSS_SELECTOR, "#balance table.daily tbody tr")
    shown = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert shown == [
        [
            f"{p.label[8:10]}/{p.label[5:7]}",
            f"{i18n.number(p.totals.harvested_l + p.totals.delivered_l, 0)} L",
            f"{i18n.number(p.totals.used_l, 0)} L",
        ]
        for p in reversed(days)
    ]
    assert any(p.totals.harvested_l > 1000 for p in days)  # the storm filled the rain tank
    assert text_of(driver, "#balance-tank-main").startswith("Tanque de captación:")
    ana = WebClient(farm.web.url)
    assert ana.login("ana").status == 303
    csv = ana.get(f"/farms/{FARM}/balance.csv")
    assert csv.status == 200
    assert csv.headers["Content-Type"] == "text/csv; charset=utf-8"
    days_start = local_midnight_ms(30)
    volumes, rain = load_series(reader, farm.config, days_start, now)
    expected = balance_csv(
        farm_balance(farm.config, volumes, rain, days_start, now, "day"), farm.config, "es"
    )
    assert csv.data.decode() == expected


def test_log_in_see_the_stored_values_acknowledge_log_out(farm: Farm) -> None:
    (alert,) = wait_for(lambda: texts(farm.modem, "ALERTA"), timeout_s=60, what="the alert SMS")
    number = int(alert.split()[1])
    url = farm.web.url
    with chromium(PHONE) as driver:
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        login(driver, f"{url}/farms/{FARM}", "ana")
        assert driver.current_url == f"{url}/farms/{FARM}"
        assert "<script" not in driver.page_source
        check_values(driver, farm)
        check_balance(driver, farm)
        incident = f"#incident-{number}"
        assert f"Bebedero potrero norte {TROUGH_LOW_PCT:.0f}%" in text_of(
            driver, f"{incident} .text"
        )
        assert "low" in str(
            driver.find_element(By.ID, "vessel-trough-north").get_attribute("class")
        )
        phone = screenshot(driver, "farm-page", PHONE)
        # nothing wider than the phone: no sideways scrolling
        wide = driver.execute_script(
            "return [...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth)"
            ".map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)"
        )
        assert driver.execute_script("return document.documentElement.scrollWidth") <= PHONE[0], (
            wide
        )
        screenshot(driver, "farm-page", DESKTOP)
        set_viewport(driver, PHONE)
        driver.refresh()

        # the alerting service reminds until someone acknowledges
        wait_for(
            lambda: any(t.startswith(f"RECORDATORIO {number} ") for t in texts(farm.modem, "R")),
            timeout_s=60,
            what="a reminder of the trough alert",
        )
        click_to(
            driver,
            driver.find_element(By.CSS_SELECTOR, f"{incident} button.ack"),
            lambda u: "?ack=" in u,
        )
        acked_at = time.monotonic()
        assert driver.current_url.startswith(f"{url}/farms/{FARM}?ack={number}&r=acknowledged")
        assert text_of(driver, "#notice") == f"Alerta #{number} reconocida."
        assert text_of(driver, f"{incident} .acked").startswith("Reconocida por ana (web)")
        assert not driver.find_elements(By.CSS_SELECTOR, f"{incident} button.ack")
        state = [i for i in farm.alerts.api.farm(FARM)["incidents"] if i["id"] == number]
        assert (state[0]["acked_by"], state[0]["acked_via"]) == ("ana", "web")
        reminders = [t for t in texts(farm.modem, "RECORDATORIO") if f" {number} " in t]
        time.sleep(max(0.0, 3 * REMINDER_S - (time.monotonic() - acked_at)))
        assert [t for t in texts(farm.modem, "RECORDATORIO") if f" {number} " in t] == reminders

        # the float valve refills the trough: the alert resolves
        sample(farm.agent, farm.config, farm.scenario_end_s, trough_north=80.0)
        wait_for(lambda: texts(farm.modem, "RESUELTO"), timeout_s=60, what="the resolution SMS")
        driver.get(f"{url}/farms/{FARM}")
        assert driver.find_elements(By.ID, "no-alerts")
        assert text_of(driver, "#vessel-trough-north .level") == "80.0 %"

        # another farm's page is not found, as a farm that does not exist
        driver.get(f"{url}/farms/{OTHER}")
        assert "No encontrado" in text_of(driver, "main")
        assert "Istmo" not in driver.page_source

        click_to(driver, driver.find_element(By.ID, "logout"), lambda u: "/login" in u)
        driver.get(f"{url}/farms/{FARM}")
        assert "/login" in driver.current_url
    assert phone.exists()


def test_the_agronomist_sees_every_farm_read_only_in_english(farm: Farm) -> None:
    (alert,) = wait_for(lambda: texts(farm.modem, "ALERTA"), timeout_s=60, what="the alert SMS")
    number = int(alert.split()[1])
    with chromium(DESKTOP) as driver:
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        login(driver, f"{farm.web.url}/overview", "bea")
        assert driver.current_url == f"{farm.web.url}/overview"
        screenshot(driver, "overview", DESKTOP)
        row = f"#farm-{FARM}"
        assert text_of(driver, f"{row} .alerts") == "1"
        assert text_of(driver, f"{row} .agents") == "Online (1/1)"
        assert text_of(driver, f"#farm-{OTHER} .agents") == "Offline (0/1)"
        click_to(driver, driver.find_element(By.CSS_SELECTOR, f"{row} a"), lambda u: FARM in u)
        assert text_of(driver, f"#incident-{number} .text").startswith("north paddock trough")
        assert "Read only" in text_of(driver, f"#incident-{number}")
        assert not driver.find_elements(By.CSS_SELECTOR, "button.ack")
        assert text_of(driver, "#water h2") == "Water"
        click_to(driver, driver.find_element(By.LINK_TEXT, "Español"), lambda u: "lang=es" in u)
        assert text_of(driver, "#water h2") == "Agua"
