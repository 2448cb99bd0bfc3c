"""The modem's pure parsers: registration lines (+CREG, +CGREG, +CEREG, answers and unsolicited
codes), signal quality (+CSQ, +CESQ) in physical units, the profile table, and the
``modem_health`` point.

Vectors: 3GPP TS 27.007 (7.2 +CREG, 10.1.20 +CGREG, 10.1.22 +CEREG: syntax and ``<stat>``;
8.5 +CSQ and 8.69 +CESQ: the value tables, e.g. ``<rsrp>`` "0 rsrp < -140 dBm, 1 -140 dBm ≤
rsrp < -139 dBm ... 97 -44 dBm ≤ rsrp", ``<rsrq>`` "0 rsrq < -19.5 dB ... 34 -3 dB ≤ rsrq");
Telit ME910G1 AT Commands Reference Guide (80617ST10991A, AT+CESQ: "LTE Networks +CESQ:
99,99,255,255,<rsrq>,<rsrp>"); Nordic nRF91 AT Commands (AT+CESQ example
"+CESQ: 99,99,255,255,31,62"); the module identities as SIMCom's and Quectel's manuals give
them (SIM7500_SIM7600 Series AT Command Manual: ATI "Model: SIMCOM_SIM7600G-H"; Quectel
EC2x&EG9x&EG2x-G&EM05 AT Commands Manual V2.0: ATI "Quectel / EG25 / Revision: ...")."""

from __future__ import annotations

import pytest

from collector.alerts.modem import parse_cmti
from collector.alerts.modem_health import health_line
from collector.alerts.modem_profiles import (
    AUTO,
    CLASSIC_2G,
    GENERIC_3GPP,
    PROFILES,
    QUECTEL_LTE,
    SIMCOM_LTE,
    ModemProfile,
    detect_profile,
    profile_choice,
)
from collector.alerts.modem_status import (
    ModemStatus,
    Registration,
    SignalReport,
    parse_cesq,
    parse_csq,
    parse_registration,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # read answers: <n>,<stat>[,<lac>,<ci>[,<AcT>]]
        ("+CREG: 0,1", Registration("CREG", 1, False, 0)),
        ("+CREG: 0,5", Registration("CREG", 5, False, 0)),
        ("+CREG: 0,0", Registration("CREG", 0, False, 0)),
        ("+CREG: 0,4", Registration("CREG", 4, False, 0)),
        ("+CREG: 0,6", Registration("CREG", 6, False, 0)),  # "SMS only", E-UTRAN
        ("+CGREG: 0,2", Registration("CGREG", 2, False, 0)),
        ("+CEREG: 0,1", Registration("CEREG", 1, False, 0)),
        ("+CEREG: 2,2", Registration("CEREG", 2, False, 2)),
        (
            '+CEREG: 2,1,"1A2B","01A2D001",7',
            Registration("CEREG", 1, False, 2, "1A2B", "01A2D001", 7),
        ),
        (
            '+CREG: 2,5,"00C3","0000A1B2",0',
            Registration("CREG", 5, False, 2, "00C3", "0000A1B2", 0),
        ),
        (  # <rac> after <AcT>
            '+CGREG: 2,1,"1A2B","0000A1B2",2,"01"',
            Registration("CGREG", 1, False, 2, "1A2B", "0000A1B2", 2),
        ),
        (  # n=4: cause type, reject cause, PSM timers after <AcT>
            '+CEREG: 4,1,"1A2B","01A2D001",7,,,"00100100","01000111"',
            Registration("CEREG", 1, False, 4, "1A2B", "01A2D001", 7),
        ),
        ("+CEREG: 3,3,,,,0,15", Registration("CEREG", 3, False, 3)),  # denied, cause 15
        ("+CEREG:   0 , 1 ", Registration("CEREG", 1, False, 0)),
        # unsolicited: <stat>[,<lac>,<ci>[,<AcT>]]
        ("+CEREG: 1", Registration("CEREG", 1, True)),
        ("+CREG: 2", Registration("CREG", 2, True)),
        (
            '+CEREG: 5,"1A2B","01A2D001",7',
            Registration("CEREG", 5, True, None, "1A2B", "01A2D001", 7),
        ),
        ('+CGREG: 1,"1A2B","0000A1B2"', Registration("CGREG", 1, True, None, "1A2B", "0000A1B2")),
        ("+CEREG: 3,,,,0,15", Registration("CEREG", 3, True)),  # denied, no location
    ],
)
def test_registration_lines(line: str, expected: Registration) -> None:
    assert parse_registration(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "+CREG: ",
        "+CREG:",
        "+CREG: x,1",
        "+CREG: 0,12",  # no such <stat>
        "+CEREG: 9,1",  # no such <n>
        "+CREG: 0,x",
        '+COPS: 0,0,"TELCEL",7',
        "CREG: 0,1",
        "+CREG 0,1",
        "+CREG: 0,1" + "9" * 5000,
        "+CREG: ²,1",
    ],
)
def test_malformed_registration_lines_are_none(line: str) -> None:
    assert parse_registration(line) is None


def test_registered_means_home_roaming_sms_only_or_csfb_not_preferred() -> None:
    registered = {stat for stat in range(12) if Registration("CEREG", stat, False).registered}
    assert registered == {1, 5, 6, 7, 9, 10}
    assert {stat for stat in range(12) if Registration("CEREG", stat, False).roaming} == {
        5,
        7,
        10,
    }


@pytest.mark.parametrize(
    ("line", "rssi_dbm", "ber"),
    [
        ("+CSQ: 0,0", -113, 0),  # "-113 dBm or less"
        ("+CSQ: 1,99", -111, None),
        ("+CSQ: 2,3", -109, 3),
        ("+CSQ: 21,99", -71, None),
        ("+CSQ: 30,7", -53, 7),
        ("+CSQ: 31,99", -51, None),  # "-51 dBm or greater"
        ("+CSQ: 99,99", None, None),  # not known or not detectable
    ],
)
def test_csq_in_dbm(line: str, rssi_dbm: int | None, ber: int | None) -> None:
    assert parse_csq(line) == SignalReport(rssi_dbm, ber)


@pytest.mark.parametrize(
    ("line", "rsrq_db", "rsrp_dbm"),
    [
        ("+CESQ: 99,99,255,255,20,50", -10.0, -91),
        ("+CESQ: 99,99,255,255,31,62", -4.5, -79),  # Nordic's example
        ("+CESQ: 99,99,255,255,0,0", -20.0, -141),  # "< -19.5 dB", "< -140 dBm"
        ("+CESQ: 99,99,255,255,1,1", -19.5, -140),  # "-19.5 ≤ rsrq < -19", "-140 ≤ rsrp < -139"
        ("+CESQ: 99,99,255,255,33,96", -3.5, -45),
        ("+CESQ: 99,99,255,255,34,97", -3.0, -44),  # "-3 dB ≤ rsrq", "-44 dBm ≤ rsrp"
        ("+CESQ: 99,99,255,255,255,255", None, None),  # not E-UTRAN / not known
        ("+CESQ: 99,99,255,255,35,98", None, None),  # out of the tables: not known
    ],
)
def test_cesq_lte_rsrq_and_rsrp(line: str, rsrq_db: float | None, rsrp_dbm: int | None) -> None:
    report = parse_cesq(line)
    assert (report.rsrq_db, report.rsrp_dbm) == (rsrq_db, rsrp_dbm)
    assert (report.rxlev_dbm, report.rscp_dbm, report.ecno_db) == (None, None, None)


def test_cesq_gsm_and_umts_fields_and_the_merge_with_csq() -> None:
    gsm = parse_cesq("+CESQ: 63,0,255,255,255,255")
    assert (gsm.rxlev_dbm, gsm.ber) == (-48, 0)  # "-48 dBm ≤ rssi"
    assert parse_cesq("+CESQ: 0,99,255,255,255,255").rxlev_dbm == -111  # "rssi < -110 dBm"
    assert parse_cesq("+CESQ: 1,99,255,255,255,255").rxlev_dbm == -110
    umts = parse_cesq("+CESQ: 99,99,96,49,255,255")
    assert (umts.rscp_dbm, umts.ecno_db) == (-25, 0.0)  # "-25 dBm ≤ rscp", "0 dB ≤ Ec/Io"
    umts = parse_cesq("+CESQ: 99,99,1,1,255,255")
    assert (umts.rscp_dbm, umts.ecno_db) == (-120, -24.0)
    merged = parse_cesq("+CESQ: 99,99,255,255,20,50", parse_csq("+CSQ: 21,99"))
    assert merged == SignalReport(-71, None, -91, -10.0)
    assert merged.describe() == "RSSI -71 dBm, RSRP -91 dBm, RSRQ -10.0 dB"


@pytest.mark.parametrize(
    "line",
    ["+CSQ: x,99", "+CSQ: 21", "+CSQ:", "+CESQ: 1,2", "+CESQ: 99,99,255,255,20,-5", "+CREG: 0,1"],
)
def test_malformed_signal_lines_raise_value_error(line: str) -> None:
    parse = parse_cesq if line.startswith("+CESQ") else parse_csq
    with pytest.raises(ValueError, match=r"CSQ|CESQ"):
        parse(line)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('+CMTI: "ME",3', ("ME", 3)),
        ('+CMTI: "SM",0', ("SM", 0)),
        ('+CMTI: "SM",1', ("SM", 1)),
        ("+CMTI: 7", (None, 7)),
        ('+CMTI: "SM",', None),
        ('+CMTI: "SM",x', None),
    ],
)
def test_new_message_indications(line: str, expected: tuple[str | None, int] | None) -> None:
    assert parse_cmti(line) == expected


@pytest.mark.parametrize(
    ("model", "profile"),
    [
        ("SIMCOM_SIM800", CLASSIC_2G),
        ("SIMCOM_SIM800L", CLASSIC_2G),
        ("SIMCOM_SIM900R", CLASSIC_2G),
        ("M95", CLASSIC_2G),
        ("SIMCOM_SIM7600G-H", SIMCOM_LTE),
        ("SIMCOM_SIM7600E-H", SIMCOM_LTE),
        ("SIM7080", SIMCOM_LTE),
        ("SIMCOM_SIM7000G", SIMCOM_LTE),
        ("EG25", QUECTEL_LTE),
        ("EC25", QUECTEL_LTE),
        ("EG91", QUECTEL_LTE),
        ("BG95-M3", QUECTEL_LTE),
        ("BG96", QUECTEL_LTE),
        ("u-blox SARA-R410M-02B", GENERIC_3GPP),
        ("", GENERIC_3GPP),
    ],
)
def test_profiles_are_detected_from_the_model(model: str, profile: ModemProfile) -> None:
    assert detect_profile(model) is profile


def test_profile_choice_names_the_valid_profiles() -> None:
    assert profile_choice("auto") == AUTO
    assert profile_choice("quectel-lte") is QUECTEL_LTE
    with pytest.raises(ValueError, match="auto, classic-2g, simcom-lte, quectel-lte"):
        profile_choice("sim800")


def test_the_lte_profiles_name_their_storage_and_ask_every_registration() -> None:
    assert SIMCOM_LTE.sms_setup == ("AT+CMGF=0", 'AT+CPMS="ME","ME","ME"')
    assert QUECTEL_LTE.sms_setup == ("AT+CMGF=0", 'AT+CPMS="SM","SM","SM"')
    for profile in PROFILES.values():
        assert profile.sms_setup[0] == "AT+CMGF=0"
        if profile is not CLASSIC_2G:
            assert profile.registration == ("CREG", "CGREG", "CEREG")
            assert profile.first_index == 0
    assert CLASSIC_2G.registration == ("CREG", "CGREG")


def test_modem_status_via_and_the_health_point() -> None:
    lte_only = ModemStatus(
        "quectel-lte",
        "EG25",
        (
            Registration("CREG", 0, False, 0),
            Registration("CGREG", 0, False, 0),
            Registration("CEREG", 1, False, 2, "1A2B", "01A2D001", 7),
        ),
        SignalReport(-71, None, -91, -10.0),
        1_795_000_000_000,
    )
    assert lte_only.via == "CEREG"
    assert health_line(lte_only, 1_795_000_000_000, "pi-1") == (
        "modem_health,holder=pi-1,profile=quectel-lte,via=CEREG act=7i,cereg=1i,cgreg=0i,"
        'creg=0i,model="EG25",registered=true,roaming=false,rsrp_dbm=-91,rsrq_db=-10,'
        "rssi_dbm=-71 1795000000000"
    )
    nowhere = ModemStatus("classic-2g", None, (Registration("CREG", 2, False, 0),))
    assert nowhere.via is None
    assert health_line(nowhere, 1, "a") == (
        "modem_health,holder=a,profile=classic-2g,via=none creg=2i,registered=false 1"
    )
    both = nowhere.with_registration(Registration("CEREG", 5, True)).with_registration(
        Registration("CREG", 1, False, 0)
    )
    assert [r.source for r in both.registrations] == ["CREG", "CEREG"]
    assert both.via == "CREG"
    assert both.describe().startswith("classic-2g: vía / via +CREG; +CREG 1 (")
