"""SMS wording: languages, bilingual labels, length, and the GSM-friendly option."""

from __future__ import annotations

from support.harness import farm_config

from collector.alerts.messages import AlertFacts, label_for, render, to_gsm_friendly
from farmwatch_shared.sms_pdu import DCS_GSM7, DCS_UCS2, encode_submit


def _facts(rule_id: str, value: float, days_left: float | None = None) -> AlertFacts:
    config = farm_config("oax-istmo")
    rule = next(r for r in config.alerts if r.id == rule_id)
    sensor = next(s for s in config.sensors if s.id == getattr(rule, "sensor", ""))
    return AlertFacts(config.farm.name, rule, sensor.label, value, days_left, 12)


def test_spanish_and_english_with_the_label_half_of_each_language() -> None:
    facts = _facts("trough-long-low", 22.4, days_left=1.26)
    assert render("firing", facts, "es", False) == (
        "ALERTA 12 Rancho modelo Istmo: Bebedero de concreto 22% (umbral 30%), "
        "agua para 1.3 d. Responda OK 12"
    )
    assert render("firing", facts, "en", False) == (
        "ALERT 12 Rancho modelo Istmo: concrete trough 22% (threshold 30%), "
        "water for 1.3 d. Reply OK 12"
    )
    assert render("resolved", facts, "en", False).endswith(". Back to normal.")
    assert render("escalation", facts, "es", False).startswith("SIN RESPUESTA 12 ")
    assert render("reminder", facts, "en", False).startswith("REMINDER 12 ")


def test_every_shipped_rule_fits_one_sms_in_both_languages() -> None:
    for farm in ("oax-mixteca", "oax-istmo", "chis-frailesca"):
        config = farm_config(farm)
        for rule in config.alerts:
            sensor_id = getattr(rule, "sensor", None)
            label = next((s.label for s in config.sensors if s.id == sensor_id), "pi-1")
            facts = AlertFacts(config.farm.name, rule, label, 12.345, 3.21, 1234)
            for language in ("es", "en"):
                for notice in ("firing", "reminder", "escalation", "resolved"):
                    text = render(notice, facts, language, ascii_only=True)
                    assert len(encode_submit("+529510000001", text)) == 1, text


def test_ascii_only_keeps_gsm_letters_and_avoids_ucs2() -> None:
    assert to_gsm_friendly("Pluviómetro, captación, días, ñandú ¿sí? é ü") == (
        "Pluviometro, captacion, dias, ñandu ¿si? é ü"
    )
    config = farm_config("oax-mixteca")
    rule = next(r for r in config.alerts if r.id == "tank-days-left")
    facts = AlertFacts(config.farm.name, rule, "Tanque de captación / rainwater tank", 3.0, None, 5)
    plain = render("firing", facts, "es", ascii_only=False)
    friendly = render("firing", facts, "es", ascii_only=True)
    assert "captación" in plain
    assert "captacion" in friendly
    assert encode_submit("+529510000001", plain)[0].dcs == DCS_UCS2
    assert encode_submit("+529510000001", friendly)[0].dcs == DCS_GSM7


def test_label_halves() -> None:
    assert label_for("Bebedero A / trough A", "x", "en") == "trough A"
    assert label_for("Humedad del suelo, 20 cm", "x", "en") == "Humedad del suelo, 20 cm"
    assert label_for("", "soil-20cm", "es") == "soil-20cm"
