"""An emulated LoRaWAN network server: the MQTT integration events ChirpStack v4 and The Things
Stack v3 publish, with correctly encoded vendor payloads, frame counters and rejoins.

Three layers, each usable alone:

- payload encoders written from the vendors' documents (Dragino LDDS75 / DDS75-LB, LSE01,
  Milesight EM500-SWL), independent of the agent's decoders so that each checks the other;
- event builders: the JSON of an uplink, a join and a device status, as each server writes it;
- ``NetworkServerEmulator``: devices with frame counters publishing those events through any
  ``publish(topic, payload, qos)``, and ``FarmLorawan``, which drives a farm file's LoRaWAN
  devices from a drought scenario (for the demo).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from farmwatch_emulators.scenario import DroughtScenario, raw_for
from farmwatch_shared.farm.model import FarmConfig, LorawanDevice, LorawanSource, SensorConfig
from farmwatch_shared.mqtt import MQTT_V5, MQTT_V311, MqttEndpoint, MqttSession

Network = Literal["chirpstack", "tts"]
Publish = Callable[[str, bytes, int], None]
"""Publishes (topic, payload, QoS) and returns once the broker has it."""

# --- vendor payloads ---------------------------------------------------------------------


def ldds75_payload(
    distance_mm: int,
    *,
    battery_mv: int = 3300,
    temperature_c: float = 25.0,
    interrupt: int = 0,
    sensor_flag: int = 1,
) -> bytes:
    """A Dragino LDDS75 / DDS75-LB uplink (fPort 2): BAT mV, distance mm, interrupt flag,
    DS18B20 °C × 10, sensor flag; 0 means "no sensor", 20 "invalid reading"."""
    return (
        battery_mv.to_bytes(2, "big")
        + distance_mm.to_bytes(2, "big")
        + bytes([interrupt])
        + round(temperature_c * 10).to_bytes(2, "big", signed=True)
        + bytes([sensor_flag])
    )


def lse01_payload(
    moisture_pct: float,
    *,
    soil_temperature_c: float = 22.0,
    conductivity_us_cm: int = 350,
    battery_mv: int = 3300,
    temperature_c: float = 25.0,
) -> bytes:
    """A Dragino LSE01 uplink (fPort 2): BAT, DS18B20 × 10, VWC % × 100, soil °C × 100, EC
    µS/cm, flags (bit 4: probe present; bit 7 clear: calibrated values)."""
    return (
        battery_mv.to_bytes(2, "big")
        + round(temperature_c * 10).to_bytes(2, "big", signed=True)
        + round(moisture_pct * 100).to_bytes(2, "big")
        + round(soil_temperature_c * 100).to_bytes(2, "big", signed=True)
        + conductivity_us_cm.to_bytes(2, "big")
        + bytes([0x10])
    )


def em500_swl_payload(depth_cm: int | None, *, battery_pct: int = 90) -> bytes:
    """A Milesight EM500-SWL uplink (fPort 85): ``01 75`` battery %, ``03 77`` level in cm,
    little-endian (None: the sensor's "collection failed", 0xFFFF)."""
    level = 0xFFFF if depth_cm is None else depth_cm
    return bytes([0x01, 0x75, battery_pct, 0x03, 0x77]) + level.to_bytes(2, "little")


FPORTS = {"dragino_ldds75": 2, "dragino_dds75_lb": 2, "dragino_lse01": 2, "milesight_em500_swl": 85}


def encode_points(codec: str, points: Mapping[str, float]) -> tuple[int, bytes]:
    """(fPort, bytes) a device with ``codec`` sends for these raw point values."""
    if codec in ("dragino_ldds75", "dragino_dds75_lb"):
        return FPORTS[codec], ldds75_payload(round(points.get("distance_mm", 1000.0)))
    if codec == "dragino_lse01":
        return FPORTS[codec], lse01_payload(points.get("moisture_pct", 20.0))
    if codec == "milesight_em500_swl":
        return FPORTS[codec], em500_swl_payload(round(points.get("depth_mm", 0.0) / 10))
    raise ValueError(f"no emulated payload for codec {codec!r}")


# --- network server events ---------------------------------------------------------------


def _iso(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _chirpstack_device(application: str, dev_eui: str, name: str) -> dict[str, Any]:
    return {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "ChirpStack",
        "applicationId": application,
        "applicationName": "farmwatch",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "Dragino / Milesight",
        "deviceName": name or dev_eui,
        "devEui": dev_eui,
        "tags": {},
    }


def chirpstack_uplink(
    *,
    application: str,
    dev_eui: str,
    fcnt: int,
    fport: int,
    data: bytes,
    time_ms: int,
    rssi: int = -97,
    snr: float = 7.5,
    dedup_id: str | None = None,
    device_name: str = "",
) -> bytes:
    """A ChirpStack v4 ``event/up`` (JSON integration); ``fCnt``/``fPort`` left out at 0, as
    ChirpStack's protobuf JSON leaves out default values."""
    event: dict[str, Any] = {
        "deduplicationId": dedup_id or str(uuid.uuid4()),
        "time": _iso(time_ms),
        "deviceInfo": _chirpstack_device(application, dev_eui, device_name),
        "devAddr": "0118f2a3",
        "adr": True,
        "dr": 3,
        "data": base64.b64encode(data).decode(),
        "rxInfo": [
            {
                "gatewayId": "0016c001f153a14c",
                "uplinkId": 4217,
                "nsTime": _iso(time_ms + 45),
                "rssi": rssi,
                "snr": snr,
                "channel": 2,
                "location": {},
                "context": "E3OWOQ==",
                "metadata": {"region_config_id": "us915_1", "region_common_name": "US915"},
                "crcStatus": "CRC_OK",
            }
        ],
        "txInfo": {
            "frequency": 904300000,
            "modulation": {
                "lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}
            },
        },
    }
    if fcnt:
        event["fCnt"] = fcnt
    if fport:
        event["fPort"] = fport
    return json.dumps(event).encode()


def chirpstack_join(*, application: str, dev_eui: str, time_ms: int) -> bytes:
    """A ChirpStack v4 ``event/join``."""
    event = {
        "deduplicationId": str(uuid.uuid4()),
        "time": _iso(time_ms),
        "deviceInfo": _chirpstack_device(application, dev_eui, ""),
        "devAddr": "0118f2a4",
    }
    return json.dumps(event).encode()


def chirpstack_status(
    *, application: str, dev_eui: str, time_ms: int, battery_pct: float, margin_db: int
) -> bytes:
    """A ChirpStack v4 ``event/status`` (the device's answer to DevStatusReq)."""
    event = {
        "deduplicationId": str(uuid.uuid4()),
        "time": _iso(time_ms),
        "deviceInfo": _chirpstack_device(application, dev_eui, ""),
        "margin": margin_db,
        "externalPowerSource": False,
        "batteryLevelUnavailable": False,
        "batteryLevel": battery_pct,
    }
    return json.dumps(event).encode()


def _tts_ids(application: str, device_id: str, dev_eui: str) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "application_ids": {"application_id": application.split("@", 1)[0]},
        "dev_eui": dev_eui.upper(),
        "join_eui": "A840410000000101",
        "dev_addr": "260B1C2D",
    }


def tts_uplink(
    *,
    application: str,
    device_id: str,
    dev_eui: str,
    fcnt: int,
    fport: int,
    data: bytes,
    time_ms: int,
    rssi: int = -101,
    snr: float = 6.25,
    session_key_id: str = "AYbWw3b0YxEuXd4g1w==",
) -> bytes:
    """A The Things Stack v3 ``up`` message; ``f_cnt``/``f_port`` left out at 0."""
    message: dict[str, Any] = {
        "session_key_id": session_key_id,
        "frm_payload": base64.b64encode(data).decode(),
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "rancho-gw", "eui": "B827EBFFFE6E0A2C"},
                "time": _iso(time_ms - 20),
                "timestamp": 2463457000,
                "rssi": rssi,
                "channel_rssi": rssi,
                "snr": snr,
                "uplink_token": "ChcKFQoJcmFuY2hvLWd3",
                "received_at": _iso(time_ms - 5),
            }
        ],
        "settings": {
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
            "frequency": "904300000",
            "timestamp": 2463457000,
            "time": _iso(time_ms - 20),
        },
        "received_at": _iso(time_ms),
        "consumed_airtime": "0.061696s",
        "network_ids": {"net_id": "000013", "tenant_id": "ttn", "cluster_id": "nam1"},
    }
    if fcnt:
        message["f_cnt"] = fcnt
    if fport:
        message["f_port"] = fport
    event = {
        "end_device_ids": _tts_ids(application, device_id, dev_eui),
        "correlation_ids": [f"as:up:{uuid.uuid4().hex}"],
        "received_at": _iso(time_ms + 30),
        "uplink_message": message,
    }
    return json.dumps(event).encode()


def tts_join(*, application: str, device_id: str, dev_eui: str, time_ms: int) -> bytes:
    """A The Things Stack v3 ``join`` message."""
    event = {
        "end_device_ids": _tts_ids(application, device_id, dev_eui),
        "received_at": _iso(time_ms + 30),
        "join_accept": {"session_key_id": str(uuid.uuid4()), "received_at": _iso(time_ms)},
    }
    return json.dumps(event).encode()


def event_topic(network: Network, application: str, device: str, event: str) -> str:
    """Where the network server publishes ``event`` of ``device``."""
    if network == "chirpstack":
        return f"application/{application}/device/{device}/event/{event}"
    return f"v3/{application}/devices/{device}/{event}"


# --- devices with frame counters ---------------------------------------------------------


@dataclass
class EmulatedDevice:
    """A LoRaWAN device as its network server knows it."""

    dev_eui: str
    device_id: str = ""
    fcnt: int = 0
    """The frame counter of its next uplink."""


@dataclass(frozen=True)
class Published:
    """An event as published (to publish it again: a duplicate)."""

    topic: str
    payload: bytes
    qos: int


@dataclass
class NetworkServerEmulator:
    """Publishes the integration events of one application's devices."""

    network: Network
    application: str
    publish: Publish
    qos: int = 1
    """ChirpStack's integration publishes at QoS 1 (its ``qos`` setting); The Things Stack's
    MQTT server delivers at QoS 0 whatever is asked."""
    devices: dict[str, EmulatedDevice] = field(default_factory=dict)

    def add(self, name: str, dev_eui: str, device_id: str = "") -> EmulatedDevice:
        """Register a device under ``name`` (the test's or the farm file's id)."""
        device = EmulatedDevice(dev_eui.lower(), device_id)
        self.devices[name] = device
        return device

    def _topic_device(self, device: EmulatedDevice) -> str:
        return device.dev_eui if self.network == "chirpstack" else device.device_id

    def uplink(self, name: str, fport: int, data: bytes, time_ms: int, **radio: Any) -> Published:
        """Publish the device's next uplink (its frame counter then moves on)."""
        device = self.devices[name]
        if self.network == "chirpstack":
            payload = chirpstack_uplink(
                application=self.application,
                dev_eui=device.dev_eui,
                fcnt=device.fcnt,
                fport=fport,
                data=data,
                time_ms=time_ms,
                **radio,
            )
        else:
            payload = tts_uplink(
                application=self.application,
                device_id=device.device_id,
                dev_eui=device.dev_eui,
                fcnt=device.fcnt,
                fport=fport,
                data=data,
                time_ms=time_ms,
                **radio,
            )
        device.fcnt += 1
        return self.send(
            event_topic(self.network, self.application, self._topic_device(device), "up"), payload
        )

    def lose(self, name: str, count: int = 1) -> None:
        """Uplinks the device sends that no gateway hears: its counter moves on."""
        self.devices[name].fcnt += count

    def rejoin(self, name: str, time_ms: int) -> Published:
        """The device joins again: a join event, and its frame counter starts at 0."""
        device = self.devices[name]
        device.fcnt = 0
        if self.network == "chirpstack":
            payload = chirpstack_join(
                application=self.application, dev_eui=device.dev_eui, time_ms=time_ms
            )
        else:
            payload = tts_join(
                application=self.application,
                device_id=device.device_id,
                dev_eui=device.dev_eui,
                time_ms=time_ms,
            )
        topic = event_topic(self.network, self.application, self._topic_device(device), "join")
        return self.send(topic, payload)

    def status(self, name: str, time_ms: int, battery_pct: float, margin_db: int) -> Published:
        """ChirpStack's device-status event (battery, margin)."""
        device = self.devices[name]
        payload = chirpstack_status(
            application=self.application,
            dev_eui=device.dev_eui,
            time_ms=time_ms,
            battery_pct=battery_pct,
            margin_db=margin_db,
        )
        topic = event_topic(self.network, self.application, device.dev_eui, "status")
        return self.send(topic, payload)

    def send(self, topic: str, payload: bytes) -> Published:
        """Publish raw bytes on a topic (garbage, a repeat)."""
        self.publish(topic, payload, self.qos)
        return Published(topic, payload, self.qos)

    def again(self, published: Published) -> None:
        """Publish an event again, byte for byte (what a network server's retry does)."""
        self.publish(published.topic, published.payload, published.qos)


class MqttPublisher:
    """A ``Publish`` on a real broker: connects, then publishes each message until the broker
    acknowledged it, as a network server's MQTT client retries (a retry after an
    acknowledgement that was lost delivers the event twice)."""

    def __init__(
        self, endpoint: MqttEndpoint, protocol: int = MQTT_V5, timeout_s: float = 60.0
    ) -> None:
        self._session = MqttSession(
            endpoint, clean_start=True, session_expiry_s=0, max_inflight=100, protocol=protocol
        )
        self._timeout_s = timeout_s
        self.retries = 0
        """Publications repeated because the broker did not acknowledge them in time."""

    def start(self, timeout_s: float = 10.0) -> MqttPublisher:
        """Connect (raise TimeoutError if the broker does not accept us in time)."""
        self._session.start()
        if not self._session.wait_connected(timeout_s):
            raise TimeoutError(f"no connection to {self._session.endpoint.host}")
        return self

    def __call__(self, topic: str, payload: bytes, qos: int) -> None:
        """Publish and wait until the broker has it (QoS 0: until it is sent), publishing
        again while it does not; TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            info = self._session.publish(topic, payload, qos=qos)
            try:
                info.wait_for_publish(2.0)
                if info.is_published():
                    return
            except (RuntimeError, ValueError):  # not queued: no connection right now
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the broker did not take {topic}")
            self.retries += 1
            time.sleep(0.2)

    def stop(self) -> None:
        """Disconnect."""
        self._session.stop()


# --- a farm's LoRaWAN devices, from a scenario --------------------------------------------


class FarmLorawan:
    """The LoRaWAN devices of one agent of a farm file, each uplinking what the scenario says
    its sensors see, every ``interval_s`` of simulated time, at the wall-clock time."""

    def __init__(
        self,
        farm: FarmConfig,
        agent_id: str,
        scenario: DroughtScenario,
        sim_time: Callable[[], float],
        publish: Publish,
        *,
        interval_s: float = 1.0,
    ) -> None:
        self.devices = farm.lorawan_devices_of(agent_id)
        self._sensors: dict[str, list[SensorConfig]] = {d.id: [] for d in self.devices}
        for sensor in farm.sensors_of(agent_id):
            if isinstance(sensor.source, LorawanSource):
                self._sensors[sensor.source.lorawan].append(sensor)
        self._scenario = scenario
        self._sim_time = sim_time
        self._interval_s = interval_s
        self._servers: dict[tuple[str, str], NetworkServerEmulator] = {}
        for device in self.devices:
            key = (device.network, device.application)
            server = self._servers.get(key)
            if server is None:
                qos = 1 if device.network == "chirpstack" else 0
                server = NetworkServerEmulator(device.network, device.application, publish, qos=qos)
                self._servers[key] = server
            server.add(device.id, device.dev_eui or "0000000000000000", device.device_id or "")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lorawan-emulator", daemon=True)

    @staticmethod
    def protocol(devices: tuple[LorawanDevice, ...]) -> int:
        """The MQTT protocol the network server of ``devices`` speaks."""
        return MQTT_V311 if devices and devices[0].network == "tts" else MQTT_V5

    def uplink_all(self) -> None:
        """One uplink of every device, now."""
        now_ms = time.time_ns() // 1_000_000
        for device in self.devices:
            points = {
                s.source.point: raw_for(s, self._scenario.state_pct(s, self._sim_time()))
                for s in self._sensors[device.id]
                if isinstance(s.source, LorawanSource)
            }
            fport, data = encode_points(device.codec, points)
            self._servers[(device.network, device.application)].uplink(
                device.id, fport, data, now_ms
            )

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.uplink_all()

    def start(self) -> None:
        """Uplink in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop uplinking."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
