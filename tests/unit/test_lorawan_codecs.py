"""The LoRaWAN codecs against the vendors' own vectors.

Sources of the vectors (each test names its own):

- [TTN-LSE01] TheThingsNetwork/lorawan-devices, ``vendor/dragino/lse01-codec.yaml``, example
  "Moisture & EC Sensor": fPort 2, ``CE 29 00 F1 07 A5 09 9B 6E 28 90`` → Bat 3.625 V,
  TempC_DS18B20 24.1, water_SOIL 19.57, temp_SOIL 24.59, conduct_SOIL 28200; and "Unknown
  FPort" (fPort 42) → error.
- [DRAGINO-LSE01-V121] dragino/dragino-end-node-decoder, ``LSE01/LSE01_ChirpstackV4_Decoder
  V1.2.1.txt``: bit 7 of byte 10 is MOD; MOD=1 sends the dielectric constant (/10) and raw
  moisture and conductivity counts instead of calibrated values.
- [MANUAL-LSE01] Dragino "LSE01 LoRaWAN Soil Moisture & EC Sensor User Manual", 2.3: battery
  ``0x0B45`` = 2885 mV; soil moisture ``0x05DC`` = 1500 / 100 = 15 %; soil temperature
  ``0x0105`` = 2.61 °C and ``0xFF7E`` = -1.29 °C (the manual computes ``(FF7E - FFFF)/100``,
  one count off two's complement, which gives -1.30: the probe's register is a signed 16-bit
  value and the decoder here reads it as one); conductivity ``0x00C8`` = 200 µS/cm.
- [TTN-LDDS75] TheThingsNetwork/lorawan-devices, ``vendor/dragino/ldds75-codec.yaml``, example
  "Distance Detection": fPort 2, ``0E 1C 0B 05`` (4 bytes) → ``'No Sensor'`` (the decoder
  gives no distance for a frame that is not the documented length); "Unknown FPort" (fPort 42).
- [MANUAL-LDDS75] Dragino "LDDS75 LoRaWAN Distance Detection Sensor User Manual", 2.3 Uplink
  Payload (FPORT=2: BAT 2, distance 2, interrupt flag 1, DS18B20 2, sensor flag 1 bytes):
  battery ``0x0B45`` = 2885 mV, distance ``0x0B05`` = 2821 mm, DS18B20 ``0x0105`` = 26.1 °C and
  ``0xFF3F`` = -19.3 °C, sensor flag 0x01 = ultrasonic sensor detected; distance ``0x0000``: no
  sensor detected; below 280 mm the firmware sends ``0x0014`` (20 mm): invalid reading; flat
  object range 280–7500 mm. The DDS75-LB manual gives the same FPORT=2 layout.
- [TTN-EM500SWL] TheThingsNetwork/lorawan-devices, ``vendor/milesight-iot/em500-swl-codec.yaml``:
  fPort 85, ``01 75 5C 03 77 02 00`` → battery 92, level 2.
- [MILESIGHT-EM500SWL] Milesight-IoT/SensorDecoders, ``EM_Series/EM500_Series/EM500-SWL``:
  README payload definition (``01 75`` battery %, ``03 77`` water level, cm, 2 bytes; example
  ``017564 03770200`` → battery 100, water_level 2) and ``EM500-SWL_Decoder.js`` (little-endian
  level; ``0xFFFF`` "collection failed", ``0xFFFD`` "out of range").
"""

from __future__ import annotations

import pytest

from edge.lorawan.codecs import CODECS, CodecError, Decoded, Payload, codec_for
from farmwatch_emulators.lorawan import (
    em500_swl_payload,
    encode_points,
    ldds75_payload,
    lse01_payload,
)


def decode(codec: str, fport: int, data: str | bytes) -> Decoded:
    raw = bytes.fromhex(data) if isinstance(data, str) else data
    return CODECS[codec].decode(Payload(fport, raw))


def refused(codec: str, fport: int, data: str) -> str:
    with pytest.raises(CodecError) as caught:
        decode(codec, fport, data)
    return caught.value.cause


# --- Dragino LSE01 -------------------------------------------------------------------------


def test_lse01_ttn_example_with_the_calibrated_mode() -> None:
    # [TTN-LSE01] bytes with the flags byte's MOD bit clear (0x10 instead of 0x90)
    decoded = decode("dragino_lse01", 2, "CE2900F107A5099B6E2810")
    assert decoded.battery_v == 3.625
    assert decoded.values == {
        "temperature_c": 24.1,
        "moisture_pct": 19.57,
        "soil_temperature_c": 24.59,
        "conductivity_us_cm": 28200.0,
    }
    assert decoded.faults == {}


def test_lse01_ttn_example_as_sent_is_the_raw_mode_of_the_current_decoder() -> None:
    # [TTN-LSE01] verbatim: byte 10 is 0x90, MOD=1 per [DRAGINO-LSE01-V121]: no VWC in it
    decoded = decode("dragino_lse01", 2, "CE2900F107A5099B6E2890")
    assert "moisture_pct" not in decoded.values
    assert decoded.values["dielectric_constant"] == 195.7
    assert decoded.values["raw_moisture"] == 0x099B
    assert decoded.values["raw_conductivity"] == 28200
    assert decoded.battery_v == 3.625


def test_lse01_manual_field_examples() -> None:
    # [MANUAL-LSE01]: battery 0B45, moisture 05DC, soil temperature 0105, EC 00C8
    decoded = decode("dragino_lse01", 2, "0B45010505DC010500C810")
    assert decoded.battery_v == 2.885
    assert decoded.values["moisture_pct"] == 15.0
    assert decoded.values["soil_temperature_c"] == 2.61
    assert decoded.values["conductivity_us_cm"] == 200
    negative = decode("dragino_lse01", 2, "0B45010505DCFF7E00C810")
    assert negative.values["soil_temperature_c"] == -1.30  # see the module docstring


def test_lse01_unknown_fport_and_wrong_lengths() -> None:
    assert refused("dragino_lse01", 42, "CE2900F107A5099B6E2810") == "wrong_fport"  # [TTN-LSE01]
    assert refused("dragino_lse01", 2, "CE2900F107A5099B6E28") == "payload_length"
    assert refused("dragino_lse01", 2, "CE2900F107A5099B6E281000") == "payload_length"
    assert refused("dragino_lse01", 2, "") == "payload_length"


# --- Dragino LDDS75 / DDS75-LB -------------------------------------------------------------


@pytest.mark.parametrize("codec", ["dragino_ldds75", "dragino_dds75_lb"])
def test_ldds75_manual_example(codec: str) -> None:
    # [MANUAL-LDDS75]: BAT 0B45, distance 0B05, no interrupt, DS18B20 0105, sensor detected
    decoded = decode(codec, 2, "0B450B0500010501")
    assert decoded.values == {"distance_mm": 2821.0, "temperature_c": 26.1}
    assert decoded.battery_v == 2.885
    assert decoded.faults == {}
    cold = decode(codec, 2, "0B450B0501FF3F01")
    assert cold.values["temperature_c"] == -19.3


@pytest.mark.parametrize(
    ("distance", "flag", "cause"),
    [
        ("0000", "01", "no_sensor"),  # [MANUAL-LDDS75] 0x0000: no ultrasonic sensor
        ("0B05", "00", "no_sensor"),  # sensor flag 0
        ("0014", "01", "no_target"),  # [MANUAL-LDDS75] 0x0014: invalid reading
        ("0100", "01", "out_of_range"),  # 256 mm: below the 280 mm range
        ("2000", "01", "out_of_range"),  # 8192 mm: beyond 7500 mm
    ],
)
def test_ldds75_fault_values_are_faults_never_distances(
    distance: str, flag: str, cause: str
) -> None:
    decoded = decode("dragino_ldds75", 2, "0B45" + distance + "00" + "0105" + flag)
    assert decoded.faults == {"distance_mm": cause}
    assert "distance_mm" not in decoded.values


def test_ldds75_ttn_examples_give_no_distance() -> None:
    # [TTN-LDDS75]: the 4-byte frame has no distance; fPort 42 is unknown
    assert refused("dragino_ldds75", 2, "0E1C0B05") == "payload_length"
    assert refused("dragino_ldds75", 42, "0E1C0B05") == "wrong_fport"
    assert refused("dragino_ldds75", 2, "0B450B05000105010000") == "payload_length"


def test_dragino_device_status_frame_carries_the_battery_and_no_reading() -> None:
    # FPORT=5: model, firmware (2), band, sub-band, BAT (2)
    decoded = decode("dragino_ldds75", 5, "27011002FF0CE4")
    assert decoded.info
    assert decoded.values == {}
    assert decoded.battery_v == 3.3


# --- Milesight EM500-SWL -------------------------------------------------------------------


def test_em500_swl_ttn_and_vendor_examples() -> None:
    ttn = decode("milesight_em500_swl", 85, "01755C03770200")  # [TTN-EM500SWL]
    assert ttn.battery_pct == 92
    assert ttn.values == {"depth_mm": 20.0}  # 2 cm
    vendor = decode("milesight_em500_swl", 85, "01756403770200")  # [MILESIGHT-EM500SWL]
    assert vendor.battery_pct == 100
    assert vendor.values == {"depth_mm": 20.0}
    little_endian = decode("milesight_em500_swl", 85, "03775E01")  # 0x015E = 350 cm
    assert little_endian.values == {"depth_mm": 3500.0}


@pytest.mark.parametrize(
    ("level", "cause"), [("FFFF", "collection_failed"), ("FDFF", "out_of_range")]
)
def test_em500_swl_sensor_fault_codes(level: str, cause: str) -> None:
    # [MILESIGHT-EM500SWL] EM500-SWL_Decoder.js: 0xFFFF and 0xFFFD (little-endian on the wire)
    decoded = decode("milesight_em500_swl", 85, "0175500377" + level)
    assert decoded.faults == {"depth_mm": cause}
    assert decoded.values == {}


def test_em500_swl_device_information_frame_is_no_reading() -> None:
    decoded = decode("milesight_em500_swl", 85, "FF0B01FF0110FF0A0105FF0F00")
    assert decoded.info
    assert decoded.values == {}


@pytest.mark.parametrize(
    ("fport", "data", "cause"),
    [
        (2, "01755C03770200", "wrong_fport"),
        (85, "", "payload_length"),
        (85, "01755C0377", "payload_length"),  # the level cut short
        (85, "01755C03", "payload_length"),  # a header cut short
        (85, "0175", "payload_length"),
        (85, "01755C0977AB00", "unknown_channel"),
        (85, "01755C017550", "repeated_channel"),
    ],
)
def test_em500_swl_garbage(fport: int, data: str, cause: str) -> None:
    assert refused("milesight_em500_swl", fport, data) == cause


# --- the network server's decoded object ---------------------------------------------------


def test_object_codec_reads_numbers_at_dotted_paths() -> None:
    codec = codec_for("object", {"distance_mm": "distance", "depth_mm": "water.level_mm"})
    decoded = codec.decode(
        Payload(2, b"", {"distance": 1234, "water": {"level_mm": 56.5}, "x": "y"})
    )
    assert decoded.values == {"distance_mm": 1234.0, "depth_mm": 56.5}
    partial = codec.decode(Payload(2, b"", {"distance": "2821 mm", "water": {}}))
    assert partial.faults == {"distance_mm": "object_not_a_number", "depth_mm": "object_missing"}
    with pytest.raises(CodecError, match="no_object"):
        codec.decode(Payload(2, b"", None))


def test_unknown_codec_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="dragino_ldds75"):
        codec_for("dragino_ldds99", {})


# --- the emulator's encoders agree with the decoders ---------------------------------------


def test_emulator_payloads_decode_to_what_was_encoded() -> None:
    distance = decode("dragino_ldds75", 2, ldds75_payload(1234, battery_mv=3010))
    assert (distance.values["distance_mm"], distance.battery_v) == (1234.0, 3.01)
    soil = decode("dragino_lse01", 2, lse01_payload(23.45, soil_temperature_c=-3.5))
    assert soil.values["moisture_pct"] == 23.45
    assert soil.values["soil_temperature_c"] == -3.5
    level = decode("milesight_em500_swl", 85, em500_swl_payload(87, battery_pct=64))
    assert (level.values["depth_mm"], level.battery_pct) == (870.0, 64)
    failed = decode("milesight_em500_swl", 85, em500_swl_payload(None))
    assert failed.faults == {"depth_mm": "collection_failed"}
    for codec, points in (
        ("dragino_ldds75", {"distance_mm": 700.0}),
        ("dragino_lse01", {"moisture_pct": 18.5}),
        ("milesight_em500_swl", {"depth_mm": 1230.0}),
    ):
        fport, data = encode_points(codec, points)
        assert dict(decode(codec, fport, data).values).items() >= points.items()
