"""SDI-12: the driver against an emulated adapter and sensors on a pty."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st
from support.harness import edge_committer

from edge.drivers.base import DriverError
from edge.drivers.poller import OutboxSink, build_pollers
from edge.drivers.sdi12 import DRIVER, Sdi12Driver
from edge.drivers.sdi12_protocol import (
    Sdi12Error,
    crc_chars,
    parse_ack,
    parse_address,
    parse_data,
    parse_identification,
    parse_measurement,
)
from edge.outbox import Outbox
from farmwatch_emulators.sdi12 import Sdi12Bus, Sdi12Sensor, sdi12_crc
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.farm.model import BusConfig, FarmConfig
from farmwatch_shared.problems import ProblemLog
from farmwatch_shared.serial_port import pyserial_factory

# a soil probe (VWC %, temperature °C, permittivity, EC) and a 9-value sensor needing two pages
PROBE_VALUES = [23.45, -3.2, 12.75, 0.31]
MANY_VALUES = [1.25, -2.5, 3.75, 100.0, -0.01, 55.55, 6.0, 7.125, 8.5]


def bus_config(path: str, retries: int = 2) -> BusConfig:
    return BusConfig.model_validate(
        {
            "id": "sdi12-1",
            "agent": "pi-1",
            "driver": "sdi12",
            "port": path,
            "baudrate": 9600,
            "timeout_s": 0.3,
            "retries": retries,
            "devices": [{"address": "0"}, {"address": "3", "options": {"crc": True}}],
        }
    )


@pytest.fixture
def sensors() -> Iterator[Sdi12Bus]:
    emulated = Sdi12Bus(
        [
            Sdi12Sensor("0", list(PROBE_VALUES), wait_s=1, ready_after_s=0.15),
            Sdi12Sensor("3", list(MANY_VALUES), decimals=3, wait_s=2, ready_after_s=0.2),
        ]
    ).start()
    yield emulated
    emulated.stop()


@pytest.fixture
def problems() -> ProblemLog:
    return ProblemLog(logging.getLogger("test.sdi12"))


def driver_for(sensors: Sdi12Bus, problems: ProblemLog, retries: int = 2) -> Sdi12Driver:
    config = bus_config(sensors.path, retries)
    return Sdi12Driver(config, pyserial_factory(config.port, 9600, 0.02), SystemClock(), problems)


def test_protocol_parsing_follows_the_standard() -> None:
    # the standard's own CRC example: 0D0! → 0+3.14OqZ
    assert crc_chars(b"0+3.14") == b"OqZ" == sdi12_crc(b"0+3.14")
    assert parse_data(b"0+3.14OqZ\r\n", "0", crc=True) == [3.14]
    with pytest.raises(Sdi12Error) as bad_crc:
        parse_data(b"0+3.15OqZ\r\n", "0", crc=True)
    assert bad_crc.value.cause == "sdi12_crc"
    assert parse_data(b"1+1.23-4.5+6-.25+7.\r\n", "1", crc=False) == [1.23, -4.5, 6.0, -0.25, 7.0]
    assert parse_data(b"1\r\n", "1", crc=False) == []
    for garbled, cause in [
        (b"1+1.2x3\r\n", "sdi12_garbled"),
        (b"1 1.23\r\n", "sdi12_garbled"),
        (b"2+1.23\r\n", "sdi12_address"),
        (b"1+1.23", "sdi12_garbled"),
        (b"1+12345678\r\n", "sdi12_garbled"),
    ]:
        with pytest.raises(Sdi12Error) as caught:
            parse_data(garbled, "1", crc=False)
        assert caught.value.cause == cause, garbled
    assert parse_measurement(b"00153\r\n", "0") == (15, 3)
    with pytest.raises(Sdi12Error):
        parse_measurement(b"0015\r\n", "0")
    ident = parse_identification(b"013FWEMUL  SOIL3 100SN0001\r\n", "0")
    assert (ident.sdi12_version, ident.vendor, ident.model, ident.sensor_version) == (
        "1.3",
        "FWEMUL",
        "SOIL3",
        "100",
    )


def test_address_query_identification_and_multi_page_values(
    sensors: Sdi12Bus, problems: ProblemLog
) -> None:
    driver = driver_for(sensors, problems)
    try:
        driver.acknowledge("0")
        ident = driver.identify("3")
        assert (ident.vendor, ident.model, ident.sdi12_version) == ("FWEMUL", "SOIL3", "1.4")
        assert driver.measure("0") == PROBE_VALUES
        # nine values at 3 decimals need two data pages (35 characters each at most)
        assert driver.measure("3", crc=True) == MANY_VALUES
    finally:
        driver.close()
    sent = [cmd for _, cmd in sensors.commands]
    assert sent == ["0!", "3I!", "0M!", "0D0!", "3MC!", "3D0!", "3D1!"]
    assert problems.total() == 0


def test_data_is_asked_for_only_after_the_service_request_or_the_announced_wait(
    sensors: Sdi12Bus, problems: ProblemLog
) -> None:
    driver = driver_for(sensors, problems)
    try:
        assert driver.measure("0") == PROBE_VALUES
        sensors.inject("0", "no_service_request")
        assert driver.measure("0") == PROBE_VALUES
    finally:
        driver.close()
    times: dict[str, list[float]] = {cmd: [] for _, cmd in sensors.commands}
    for at, cmd in sensors.commands:
        times[cmd].append(at)
    service_requests = [at for at, text in sensors.sent if text == "0"]
    (first_m, second_m), (first_d, second_d) = times["0M!"], times["0D0!"]
    assert len(service_requests) == 1  # the second measurement sent none
    assert first_m < service_requests[0] <= first_d < second_m
    # without a service request the driver waited the announced 1 s (001 in 00014)
    assert second_d - second_m >= 1.0
    assert problems.total() == 0


def test_a_sensor_that_aborts_when_asked_too_early_would_be_noticed(
    sensors: Sdi12Bus, problems: ProblemLog
) -> None:
    # guard for the test above: asking D0 before the service request gets no values
    driver = driver_for(sensors, problems)
    port = pyserial_factory(sensors.path, 9600, 0.5)()
    assert isinstance(port, serial.Serial)  # for read_until
    try:
        port.write(b"0M!")
        assert port.read_until(b"\r\n") == b"00014\r\n"
        port.write(b"0D0!")
        assert port.read_until(b"\r\n") == b"0\r\n"
    finally:
        port.close()
        driver.close()


def test_garbled_and_timed_out_answers_are_retried_and_reported(
    sensors: Sdi12Bus, problems: ProblemLog
) -> None:
    driver = driver_for(sensors, problems)
    try:
        sensors.inject("0", "garble")  # a value character replaced: not SDI-12 any more
        assert driver.measure("0") == PROBE_VALUES
        assert problems.count("sdi12_garbled") == 1
        sensors.inject("3", "garble")  # a digit changed: still numbers, only the CRC notices
        assert driver.measure("3", crc=True) == MANY_VALUES
        assert problems.count("sdi12_crc") == 1
        sensors.inject("0", "silent", 2)  # the first two commands go unanswered
        assert driver.measure("0") == PROBE_VALUES
        assert problems.count("sdi12_timeout") == 2
        sensors.inject("0", "silent", 20)
        with pytest.raises(DriverError) as caught:
            driver.measure("0")
        assert caught.value.cause == "sdi12_timeout"
    finally:
        driver.close()
    assert sensors.counts == {"garble": 2, "silent": 11}


def test_poller_commits_sdi12_values_through_calibration(
    sensors: Sdi12Bus, problems: ProblemLog, tmp_path: Path
) -> None:
    farm = FarmConfig.model_validate(
        {
            "farm": {"id": "chis-test", "name": "Prueba"},
            "agents": [{"id": "pi-1"}],
            "buses": [bus_config(sensors.path).model_dump(mode="json")],
            "sensors": [
                {
                    "id": "soil-sdi",
                    "agent": "pi-1",
                    "channel": "D1",
                    "kind": "soil_moisture",
                    "coefficients": [1.0, 2.0],
                    "source": {"bus": "sdi12-1", "address": "0", "point": "1"},
                },
                {
                    "id": "soil-sdi-deep",
                    "agent": "pi-1",
                    "channel": "D2",
                    "kind": "soil_moisture",
                    "coefficients": [0.0, 1.0],
                    "source": {"bus": "sdi12-1", "address": "3", "point": "4"},
                },
            ],
        }
    )
    clock = SystemClock()
    outbox = Outbox(tmp_path / "outbox.db", 100)
    sink = OutboxSink(farm.sensors, edge_committer(outbox, clock, problems))
    (poller,) = build_pollers(farm, "pi-1", sink, clock, problems)
    try:
        poller.poll_due()
    finally:
        poller.close()
    first, second = outbox.after(-1, 10)
    assert (first.sensor, first.raw) == ("soil-sdi", 23.45)
    assert first.value == pytest.approx(47.9)
    assert (second.sensor, second.raw, second.value) == ("soil-sdi-deep", 100.0, 100.0)
    outbox.close()


def test_farm_file_checks_sdi12_addresses_and_value_indices() -> None:
    config = bus_config("/dev/null")
    DRIVER.check(config, {"0": ["1", "4"]})
    with pytest.raises(ValueError, match="value index"):
        DRIVER.check(config, {"0": ["temperature"]})
    bad = BusConfig.model_validate({**config.model_dump(), "devices": [{"address": "#"}]})
    with pytest.raises(ValueError, match="address"):
        DRIVER.check(bad, {})


def test_address_query_on_a_bus_with_one_sensor(problems: ProblemLog) -> None:
    lone = Sdi12Bus([Sdi12Sensor("7", [1.0])]).start()
    driver = driver_for(lone, problems)
    try:
        assert driver.query_address() == "7"
        assert driver.measure("7") == [1.0]
    finally:
        driver.close()
        lone.stop()
    assert [cmd for _, cmd in lone.commands] == ["?!", "7M!", "7D0!"]


@settings(max_examples=300, deadline=None)
@given(line=st.binary(max_size=80), crc=st.booleans())
def test_any_bytes_give_values_or_an_sdi12_error_never_a_crash(line: bytes, crc: bool) -> None:
    for parse in (
        lambda: parse_data(line, "0", crc=crc),
        lambda: parse_measurement(line, "0"),
        lambda: parse_identification(line, "0"),
        lambda: parse_ack(line, "0"),
        lambda: parse_address(line),
    ):
        with contextlib.suppress(Sdi12Error):
            parse()


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.decimals(min_value=-9999, max_value=9999, places=2, allow_nan=False), max_size=9
    )
)
def test_values_formatted_as_a_sensor_does_parse_back(values: list[Decimal]) -> None:
    body = "".join(f"{v:+.2f}" for v in values)
    line = ("0" + body).encode("ascii")
    assert parse_data(line + b"\r\n", "0", crc=False) == [float(v) for v in values]
    assert parse_data(line + sdi12_crc(line) + b"\r\n", "0", crc=True) == [float(v) for v in values]
