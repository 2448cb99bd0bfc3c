"""The network servers' integration events, parsed.

The ChirpStack v4 events follow its integration API (``chirpstack_api`` crate,
``proto/chirpstack/integration/integration.proto``: ``UplinkEvent`` with ``deduplication_id``,
``time``, ``device_info``, ``f_cnt``, ``f_port``, ``data``, ``object``, ``rx_info``;
``StatusEvent`` with ``margin``, ``battery_level``…; ``gw/gw.proto``: ``UplinkRxInfo`` with
``gw_time``, ``ns_time``, ``rssi``, ``snr``) in the Protobuf JSON mapping ChirpStack's
``json = true`` MQTT integration writes (camelCase names, bytes as base64, default values left
out). The Things Stack v3 messages follow its "Data formats" reference (``end_device_ids``,
``received_at``, ``uplink_message`` with ``f_port``, ``f_cnt``, ``frm_payload``,
``decoded_payload``, ``rx_metadata``, ``settings``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge.lorawan.events import (
    Address,
    DeviceStatus,
    EventError,
    Join,
    Uplink,
    parse_chirpstack,
    parse_tts,
)
from farmwatch_emulators.lorawan import chirpstack_uplink, tts_join, tts_uplink

APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
DEV = "0101010101010101"
UP_TOPIC = f"application/{APP}/device/{DEV}/event/up"
T_MS = 1_794_995_200_775  # 2026-11-18T09:46:40.775Z


def chirpstack_up(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": "2026-11-18T09:46:40.775023242+00:00",
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": APP,
            "applicationName": "Test application",
            "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
            "deviceProfileName": "Test device-profile",
            "deviceName": "Test device",
            "devEui": DEV,
            "tags": {"key": "value"},
        },
        "devAddr": "00189440",
        "dr": 1,
        "fCnt": 10,
        "fPort": 2,
        "data": "C0ULBQABBQE=",
        "rxInfo": [
            {
                "gatewayId": "0016c001f153a14c",
                "uplinkId": 4217106255,
                "gwTime": "2026-11-18T09:46:40.7Z",
                "nsTime": "2026-11-18T09:46:40.8Z",
                "rssi": -36,
                "snr": 10.5,
                "context": "E3OWOQ==",
                "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
            },
            {"gatewayId": "0016c001f153a14d", "uplinkId": 1, "rssi": -101, "snr": -3.25},
        ],
        "txInfo": {
            "frequency": 867100000,
            "modulation": {
                "lora": {"bandwidth": 125000, "spreadingFactor": 11, "codeRate": "CR_4_5"}
            },
        },
    }
    event.update(changes)
    return event


def test_a_chirpstack_uplink_event() -> None:
    uplink = parse_chirpstack(UP_TOPIC, json.dumps(chirpstack_up()).encode())
    assert uplink == Uplink(
        address=Address("chirpstack", APP, DEV),
        fcnt=10,
        fport=2,
        data=bytes.fromhex("0B450B0500010501"),
        times=(T_MS, T_MS - 75, T_MS + 25),  # time, gwTime, nsTime (nanoseconds cut to ms)
        dedup_id="3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        rssi_dbm=-36.0,  # the best of the two gateways
        snr_db=10.5,
    )


def test_chirpstack_leaves_default_values_out() -> None:
    event = chirpstack_up()
    del event["fCnt"], event["time"], event["rxInfo"]
    uplink = parse_chirpstack(UP_TOPIC, json.dumps(event).encode())
    assert isinstance(uplink, Uplink)
    assert (uplink.fcnt, uplink.times, uplink.rssi_dbm) == (0, (), None)


def test_chirpstack_decoded_object_status_and_join() -> None:
    with_object = chirpstack_up(object={"distance": 2821, "battery": 2.885})
    uplink = parse_chirpstack(UP_TOPIC, json.dumps(with_object).encode())
    assert isinstance(uplink, Uplink)
    assert uplink.obj == {"distance": 2821, "battery": 2.885}
    info = chirpstack_up()["deviceInfo"]
    status = {"deduplicationId": "x", "time": "2026-11-18T09:46:40Z", "deviceInfo": info}
    status.update(margin=7, externalPowerSource=False, batteryLevel=75.5)
    topic = f"application/{APP}/device/{DEV}/event/status"
    assert parse_chirpstack(topic, json.dumps(status).encode()) == DeviceStatus(
        Address("chirpstack", APP, DEV), 75.5, 7
    )
    status["batteryLevelUnavailable"] = True
    unavailable = parse_chirpstack(topic, json.dumps(status).encode())
    assert isinstance(unavailable, DeviceStatus)
    assert unavailable.battery_pct is None
    join = {"deduplicationId": "y", "time": "2026-11-18T09:46:40Z", "deviceInfo": info}
    topic = f"application/{APP}/device/{DEV}/event/join"
    assert parse_chirpstack(topic, json.dumps(join).encode()) == Join(
        Address("chirpstack", APP, DEV), (T_MS - 775,)
    )


@pytest.mark.parametrize(
    ("topic", "payload", "cause"),
    [
        (UP_TOPIC, b"{not json", "bad_json"),
        (UP_TOPIC, b"[]", "bad_event"),
        (UP_TOPIC, json.dumps(chirpstack_up(data="%%%")).encode(), "bad_base64"),
        (UP_TOPIC, json.dumps(chirpstack_up(data="C0ULBQABBQE")).encode(), "bad_base64"),
        (UP_TOPIC, json.dumps(chirpstack_up(fCnt="ten")).encode(), "bad_event"),
        (UP_TOPIC, json.dumps(chirpstack_up(fPort=300)).encode(), "bad_event"),
        (UP_TOPIC, json.dumps(chirpstack_up(fCnt=-1)).encode(), "bad_event"),
        (UP_TOPIC, json.dumps(chirpstack_up(time="yesterday")).encode(), "bad_event"),
        (UP_TOPIC, json.dumps({"fCnt": 1}).encode(), "bad_event"),
        (UP_TOPIC, b"[" * 100_000, "oversized"),
        (UP_TOPIC, json.dumps(chirpstack_up()).encode()[:-40], "bad_json"),  # cut short
        (UP_TOPIC, b'{"object": {"a": ' + b"[" * 60_000, "bad_json"),
        (f"application/{APP}/device/0202020202020202/event/up", None, "topic_mismatch"),
        (f"application/{APP}/device/{DEV}/event/ack", None, "bad_topic"),
        (f"application/{APP}/device/{DEV}/up", None, "bad_topic"),
    ],
)
def test_chirpstack_garbage(topic: str, payload: bytes | None, cause: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_chirpstack(topic, payload or json.dumps(chirpstack_up()).encode())
    assert caught.value.cause == cause


def test_the_emulator_writes_what_the_parser_reads() -> None:
    payload = chirpstack_uplink(
        application=APP, dev_eui=DEV, fcnt=0, fport=2, data=b"\x01\x02", time_ms=T_MS
    )
    uplink = parse_chirpstack(UP_TOPIC, payload)
    assert isinstance(uplink, Uplink)
    assert (uplink.fcnt, uplink.fport, uplink.data, uplink.times[0]) == (0, 2, b"\x01\x02", T_MS)
    assert uplink.dedup_id


TTS_APP = "rancho-frailesca@ttn"
TTS_TOPIC = "v3/rancho-frailesca@ttn/devices/eui-a84041000181c0d1/up"


def tts_up(**message: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "end_device_ids": {
            "device_id": "eui-a84041000181c0d1",
            "application_ids": {"application_id": "rancho-frailesca"},
            "dev_eui": "A84041000181C0D1",
            "join_eui": "A840410000000101",
            "dev_addr": "260B1C2D",
        },
        "correlation_ids": ["as:up:01HXXXXXXXX"],
        "received_at": "2026-11-18T09:46:40.900Z",
        "uplink_message": {
            "session_key_id": "AYbWw3b0YxEuXd4g1w==",
            "f_port": 85,
            "f_cnt": 4711,
            "frm_payload": "AXVcA3cCAA==",
            "decoded_payload": {"battery": 92, "level": 2},
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": "rancho-gw", "eui": "B827EBFFFE6E0A2C"},
                    "time": "2026-11-18T09:46:40.700Z",
                    "rssi": -112,
                    "channel_rssi": -112,
                    "snr": -4.5,
                }
            ],
            "settings": {
                "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 10}},
                "frequency": "904300000",
                "time": "2026-11-18T09:46:40.700Z",
            },
            "received_at": "2026-11-18T09:46:40.775Z",
            "consumed_airtime": "0.370688s",
        },
    }
    event["uplink_message"].update(message)
    return event


def test_a_things_stack_uplink() -> None:
    uplink = parse_tts(TTS_TOPIC, json.dumps(tts_up()).encode())
    assert uplink == Uplink(
        address=Address("tts", TTS_APP, "eui-a84041000181c0d1"),
        fcnt=4711,
        fport=85,
        data=bytes.fromhex("01755C03770200"),  # [TTN-EM500SWL] of test_lorawan_codecs.py
        times=(T_MS, T_MS + 125, T_MS - 75, T_MS - 75),
        obj={"battery": 92, "level": 2},
        rssi_dbm=-112.0,
        snr_db=-4.5,
    )


def test_things_stack_simulated_uplinks_joins_and_defaults() -> None:
    simulated = {**tts_up(), "simulated": True}
    parsed = parse_tts(TTS_TOPIC, json.dumps(simulated).encode())
    assert isinstance(parsed, Uplink)
    assert parsed.simulated
    bare = tts_up()
    for key in ("f_cnt", "rx_metadata", "settings", "received_at"):
        del bare["uplink_message"][key]
    minimal = parse_tts(TTS_TOPIC, json.dumps(bare).encode())
    assert isinstance(minimal, Uplink)
    assert (minimal.fcnt, minimal.times) == (0, (T_MS + 125,))
    join = tts_join(
        application=TTS_APP, device_id="eui-a84041000181c0d1", dev_eui="a8", time_ms=T_MS
    )
    topic = "v3/rancho-frailesca@ttn/devices/eui-a84041000181c0d1/join"
    assert parse_tts(topic, join) == Join(
        Address("tts", TTS_APP, "eui-a84041000181c0d1"), (T_MS, T_MS + 30)
    )
    emulated = tts_uplink(
        application=TTS_APP,
        device_id="eui-a84041000181c0d1",
        dev_eui="a84041000181c0d1",
        fcnt=3,
        fport=85,
        data=b"\x01",
        time_ms=T_MS,
    )
    parsed = parse_tts(TTS_TOPIC, emulated)
    assert isinstance(parsed, Uplink)
    assert (parsed.fcnt, parsed.times[0], parsed.data) == (3, T_MS, b"\x01")


@pytest.mark.parametrize(
    ("topic", "payload", "cause"),
    [
        (TTS_TOPIC, b"\xff\xfe", "bad_json"),
        (TTS_TOPIC, json.dumps(tts_up(frm_payload="AXVcA3cCAA=")).encode(), "bad_base64"),
        (TTS_TOPIC, json.dumps({"uplink_message": {}}).encode(), "bad_event"),
        ("v3/rancho-frailesca@ttn/devices/other-device/up", None, "topic_mismatch"),
        ("v3/other-app@ttn/devices/eui-a84041000181c0d1/up", None, "topic_mismatch"),
        ("v3/rancho-frailesca/devices/eui-a84041000181c0d1/up", None, "bad_topic"),
        ("v3/rancho-frailesca@ttn/devices/eui-a84041000181c0d1/down/queued", None, "bad_topic"),
    ],
)
def test_things_stack_garbage(topic: str, payload: bytes | None, cause: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_tts(topic, payload or json.dumps(tts_up()).encode())
    assert caught.value.cause == cause
