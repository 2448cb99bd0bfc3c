"""The network servers' MQTT integration events, parsed (pure): ChirpStack v4 JSON and The Things
Stack v3 JSON → ``Uplink``, ``Join`` or ``DeviceStatus``; anything else raises ``EventError``
with a stable cause.

ChirpStack v4 (``integration.mqtt``, ``json = true``) publishes on
``application/<application id>/device/<devEUI>/event/<up|join|status>``; The Things Stack v3 on
``v3/<application id>@<tenant>/devices/<device id>/<up|join>``. The payload must name the
device (and application) of its topic. Fields at their protobuf default (``fCnt`` 0, ``fPort``
0) are left out of both servers' JSON: a missing one is that default.

The time of an uplink is the network's: ChirpStack's ``time`` (itself the first gateway's GPS or
clock time, else the server's receive time), then the gateways' ``gwTime``, then ``nsTime``; The
Things Stack's network-server ``uplink_message.received_at``, then ``received_at``, then the
radio ``settings.time`` and the gateways' ``time``. They are given in that order of preference
(``Uplink.times``): the source takes the first plausible one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec

MAX_EVENT_BYTES = 64 * 1024
"""Larger than any uplink event (a LoRaWAN frame carries at most 242 bytes)."""
Network = Literal["chirpstack", "tts"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
FCnt = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]
FPort = Annotated[int, msgspec.Meta(ge=0, le=255)]


class EventError(ValueError):
    """An event that cannot be used; ``cause`` is a stable key (``bad_json``, ``bad_base64``…)."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


@dataclass(frozen=True)
class Address:
    """Which device an event is about, as the network server names it: ChirpStack by
    application and devEUI, The Things Stack by ``application@tenant`` and device id."""

    network: Network
    application: str
    device: str
    """The lower-case devEUI (ChirpStack) or the device id (The Things Stack)."""


@dataclass(frozen=True)
class Uplink:
    """One uplink as the network server reports it."""

    address: Address
    fcnt: int
    fport: int
    data: bytes
    times: tuple[int, ...]
    """The network's times for it (ms since the Unix epoch), most preferred first."""
    obj: Mapping[str, Any] | None = None
    """The network server's own decoded payload, if it has a decoder."""
    dedup_id: str | None = None
    """ChirpStack's deduplication id: one per uplink, the same in a repeated event."""
    rssi_dbm: float | None = None
    snr_db: float | None = None
    simulated: bool = False
    """An uplink simulated from The Things Stack's console, not sent by the device."""


@dataclass(frozen=True)
class Join:
    """A device (re)joined: its frame counter starts again."""

    address: Address
    times: tuple[int, ...]


@dataclass(frozen=True)
class DeviceStatus:
    """ChirpStack's answer to its device-status request: battery and link margin."""

    address: Address
    battery_pct: float | None
    margin_db: int | None


Event = Uplink | Join | DeviceStatus


# --- ChirpStack v4 -----------------------------------------------------------------------


class _CsDeviceInfo(msgspec.Struct):
    dev_eui: str = msgspec.field(name="devEui")
    application_id: str = msgspec.field(default="", name="applicationId")


class _CsRxInfo(msgspec.Struct):
    rssi: float | None = None
    snr: float | None = None
    gw_time: datetime | None = msgspec.field(default=None, name="gwTime")
    ns_time: datetime | None = msgspec.field(default=None, name="nsTime")


class _CsUplink(msgspec.Struct):
    device_info: _CsDeviceInfo = msgspec.field(name="deviceInfo")
    deduplication_id: str = msgspec.field(default="", name="deduplicationId")
    time: datetime | None = None
    f_cnt: FCnt = msgspec.field(default=0, name="fCnt")
    f_port: FPort = msgspec.field(default=0, name="fPort")
    data: str = ""
    object: dict[str, Any] | None = None
    rx_info: list[_CsRxInfo] = msgspec.field(default_factory=list, name="rxInfo")


class _CsJoin(msgspec.Struct):
    device_info: _CsDeviceInfo = msgspec.field(name="deviceInfo")
    time: datetime | None = None


class _CsStatus(msgspec.Struct):
    device_info: _CsDeviceInfo = msgspec.field(name="deviceInfo")
    margin: int | None = None
    battery_level: float | None = msgspec.field(default=None, name="batteryLevel")
    battery_level_unavailable: bool = msgspec.field(default=False, name="batteryLevelUnavailable")
    external_power_source: bool = msgspec.field(default=False, name="externalPowerSource")


_CS_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "up": msgspec.json.Decoder(_CsUplink),
    "join": msgspec.json.Decoder(_CsJoin),
    "status": msgspec.json.Decoder(_CsStatus),
}


def parse_chirpstack(topic: str, payload: bytes) -> Event:
    """Parse a ChirpStack v4 JSON integration event."""
    parts = topic.split("/")
    if (
        len(parts) != 6
        or (parts[0], parts[2], parts[4]) != ("application", "device", "event")
        or parts[5] not in _CS_DECODERS
    ):
        raise EventError("bad_topic", topic[:200])
    address = Address("chirpstack", parts[1], parts[3].lower())
    event = _decode(_CS_DECODERS[parts[5]], payload)
    info = event.device_info
    if info.dev_eui.lower() != address.device or info.application_id not in ("", parts[1]):
        raise EventError(
            "topic_mismatch",
            f"topic {parts[1]}/{parts[3]}, payload {info.application_id}/{info.dev_eui}",
        )
    if isinstance(event, _CsUplink):
        rx = event.rx_info
        times = [event.time, *(r.gw_time for r in rx), *(r.ns_time for r in rx)]
        return Uplink(
            address=address,
            fcnt=event.f_cnt,
            fport=event.f_port,
            data=_base64(event.data),
            times=_millis(times),
            obj=event.object,
            dedup_id=event.deduplication_id or None,
            rssi_dbm=_best(r.rssi for r in rx),
            snr_db=_best(r.snr for r in rx),
        )
    if isinstance(event, _CsJoin):
        return Join(address, _millis([event.time]))
    unknown = event.battery_level_unavailable or event.external_power_source
    return DeviceStatus(address, None if unknown else event.battery_level, event.margin)


# --- The Things Stack v3 -----------------------------------------------------------------


class _TtsApplicationIds(msgspec.Struct):
    application_id: str


class _TtsDeviceIds(msgspec.Struct):
    device_id: str
    application_ids: _TtsApplicationIds
    dev_eui: str | None = None


class _TtsRxMetadata(msgspec.Struct):
    rssi: float | None = None
    snr: float | None = None
    time: datetime | None = None


class _TtsSettings(msgspec.Struct):
    time: datetime | None = None


class _TtsUplinkMessage(msgspec.Struct):
    f_port: FPort = 0
    f_cnt: FCnt = 0
    frm_payload: str = ""
    decoded_payload: dict[str, Any] | None = None
    rx_metadata: list[_TtsRxMetadata] = msgspec.field(default_factory=list)
    settings: _TtsSettings | None = None
    received_at: datetime | None = None


class _TtsUp(msgspec.Struct):
    end_device_ids: _TtsDeviceIds
    uplink_message: _TtsUplinkMessage
    received_at: datetime | None = None
    simulated: bool = False


class _TtsJoinAccept(msgspec.Struct):
    received_at: datetime | None = None


class _TtsJoin(msgspec.Struct):
    end_device_ids: _TtsDeviceIds
    join_accept: _TtsJoinAccept | None = None
    received_at: datetime | None = None


_TTS_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "up": msgspec.json.Decoder(_TtsUp),
    "join": msgspec.json.Decoder(_TtsJoin),
}


def parse_tts(topic: str, payload: bytes) -> Event:
    """Parse a The Things Stack v3 MQTT event."""
    parts = topic.split("/")
    if (
        len(parts) != 5
        or (parts[0], parts[2]) != ("v3", "devices")
        or "@" not in parts[1]
        or parts[4] not in _TTS_DECODERS
    ):
        raise EventError("bad_topic", topic[:200])
    address = Address("tts", parts[1], parts[3])
    event = _decode(_TTS_DECODERS[parts[4]], payload)
    ids = event.end_device_ids
    application = parts[1].split("@", 1)[0]
    if ids.device_id != address.device or ids.application_ids.application_id != application:
        raise EventError(
            "topic_mismatch",
            f"topic {parts[1]}/{parts[3]}, payload "
            f"{ids.application_ids.application_id}/{ids.device_id}",
        )
    if isinstance(event, _TtsJoin):
        accepted = event.join_accept.received_at if event.join_accept else None
        return Join(address, _millis([accepted, event.received_at]))
    up = event.uplink_message
    rx = up.rx_metadata
    settings_time = up.settings.time if up.settings else None
    times = [up.received_at, event.received_at, settings_time, *(r.time for r in rx)]
    return Uplink(
        address=address,
        fcnt=up.f_cnt,
        fport=up.f_port,
        data=_base64(up.frm_payload),
        times=_millis(times),
        obj=up.decoded_payload,
        rssi_dbm=_best(r.rssi for r in rx),
        snr_db=_best(r.snr for r in rx),
        simulated=event.simulated,
    )


Parser = Callable[[str, bytes], Event]


def parser_for(network: Network) -> Parser:
    """The parser of ``network``'s events."""
    return parse_chirpstack if network == "chirpstack" else parse_tts


# --- shared ------------------------------------------------------------------------------


def _decode(decoder: msgspec.json.Decoder[Any], payload: bytes) -> Any:
    if len(payload) > MAX_EVENT_BYTES:
        raise EventError("oversized", f"{len(payload)} bytes")
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise EventError("bad_event", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise EventError("bad_json", str(exc)) from None
    except RecursionError:
        raise EventError("bad_json", "nested too deeply") from None


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EventError("bad_base64", f"{text[:60]!r}: {exc}") from None


def _millis(times: list[datetime | None]) -> tuple[int, ...]:
    found = []
    for moment in times:
        if moment is None:
            continue
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        found.append((aware - _EPOCH) // _MS)
    return tuple(found)


def _best(values: Any) -> float | None:
    present = [float(v) for v in values if v is not None]
    return max(present) if present else None
