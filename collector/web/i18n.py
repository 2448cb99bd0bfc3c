"""The page's texts, Spanish first and English, and the number and time formats.

Numbers are written the Mexican way, which is also the English one: ``13,234.5``.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("es", "en")

TEXTS: Mapping[str, tuple[str, str]] = {
    "app": ("Agua del rancho", "Farm water"),
    "login": ("Entrar", "Log in"),
    "logout": ("Salir", "Log out"),
    "username": ("Usuario", "User name"),
    "password": ("Contraseña", "Password"),
    "bad_login": ("Usuario o contraseña incorrectos.", "Wrong user name or password."),
    "too_many": (
        "Demasiados intentos. Espere {s} s y vuelva a intentar.",
        "Too many attempts. Wait {s} s and try again.",
    ),
    "expired_form": (
        "El formulario caducó; vuelva a intentar.",
        "The form expired; please try again.",
    ),
    "farms": ("Ranchos", "Farms"),
    "overview": ("Resumen de ranchos", "All farms"),
    "water": ("Agua", "Water"),
    "of_capacity": ("de {v} L", "of {v} L"),
    "days_left": ("Quedan {d} de agua", "{d} of water left"),
    "days": ("{n} días", "{n} days"),
    "day_one": ("1 día", "1 day"),
    "under_a_day": ("menos de 1 día", "under 1 day"),
    "not_falling": ("El nivel no baja", "Level not falling"),
    "no_forecast": ("Sin pronóstico", "No forecast"),
    "trend": ("{arrow} {delta} en {h} h", "{arrow} {delta} in {h} h"),
    "read_ago": ("lectura {age}", "read {age}"),
    "ago_now": ("hace menos de 1 min", "under 1 min ago"),
    "ago_min": ("hace {n} min", "{n} min ago"),
    "ago_h": ("hace {n} h", "{n} h ago"),
    "ago_d": ("hace {n} d", "{n} d ago"),
    "stale": ("Sin lecturas recientes", "No recent readings"),
    "no_reading": ("Sin lecturas", "No readings"),
    "soil": ("Suelo", "Soil"),
    "depth": ("a {cm} cm", "at {cm} cm"),
    "vwc": ("humedad", "moisture"),
    "below_wilting": ("Bajo el punto de marchitez", "Below the wilting point"),
    "dry": ("Seco: queda {p} % del agua útil", "Dry: {p} % of the available water left"),
    "adequate": ("Bien: {p} % del agua útil", "Good: {p} % of the available water"),
    "saturated": ("Saturado (sobre capacidad de campo)", "Saturated (above field capacity)"),
    "soil_bounds": (
        "Marchitez {wp} % · capacidad de campo {fc} %",
        "Wilting point {wp} % · field capacity {fc} %",
    ),
    "rain": ("Lluvia", "Rain"),
    "rain_mm": ("Lluvia (mm)", "Rain (mm)"),
    "today": ("Hoy", "Today"),
    "week": ("7 días", "7 days"),
    "month": ("30 días", "30 days"),
    "agents": ("Equipo en el rancho", "Farm equipment"),
    "online": ("En línea", "Online"),
    "offline": ("Fuera de línea", "Offline"),
    "unknown": ("Sin noticias", "Never heard from"),
    "last_seen": ("Visto {age}", "Seen {age}"),
    "backlog": ("{n} lecturas por enviar", "{n} readings waiting to be sent"),
    "clock_ok": ("Reloj sincronizado", "Clock synchronised"),
    "clock_bad": ("Reloj sin sincronizar", "Clock not synchronised"),
    "alerts": ("Alertas", "Alerts"),
    "no_alerts": ("Sin alertas activas", "No active alerts"),
    "alerts_down": (
        "El servicio de alertas no responde: alertas y días de agua no disponibles.",
        "The alert service is unreachable: alerts and days of water unavailable.",
    ),
    "firing": ("Activa", "Firing"),
    "pending": ("Pendiente", "Pending"),
    "critical": ("Crítica", "Critical"),
    "warning": ("Aviso", "Warning"),
    "info": ("Información", "Info"),
    "opened": ("desde {age}", "since {age}"),
    "acked": ("Reconocida por {who} ({via}) {age}", "Acknowledged by {who} ({via}) {age}"),
    "ack": ("Reconocer #{n}", "Acknowledge #{n}"),
    "read_only": ("Solo lectura", "Read only"),
    "ack_acknowledged": ("Alerta #{n} reconocida.", "Alert #{n} acknowledged."),
    "ack_already": ("La alerta #{n} ya estaba reconocida.", "Alert #{n} was already acknowledged."),
    "ack_not_found": ("La alerta #{n} ya no está abierta.", "Alert #{n} is no longer open."),
    "ack_resolved": ("La alerta #{n} ya se resolvió.", "Alert #{n} has resolved."),
    "ack_unavailable": (
        "No se pudo reconocer la alerta #{n}: el servicio de alertas no responde.",
        "Could not acknowledge alert #{n}: the alert service is unreachable.",
    ),
    "last_sms": ("Último SMS {age}", "Last SMS {age}"),
    "balance": ("Balance de agua", "Water balance"),
    "balance_unavailable": (
        "El balance de agua no se pudo calcular (faltan datos en la base).",
        "The water balance could not be computed (data missing in the database).",
    ),
    "bal_month": ("Este mes ({m})", "This month ({m})"),
    "bal_came_in": ("Entró", "Came in"),
    "bal_used": ("Usada", "Used"),
    "bal_h_harvested": ("Cosechada", "Harvested"),
    "bal_h_delivered": ("Entregada", "Delivered"),
    "bal_day": ("Día", "Day"),
    "bal_harvested": ("cosechada {v}", "harvested {v}"),
    "bal_delivered": ("entregada {v}", "delivered {v}"),
    "bal_in": ("recibida de otro recipiente {v}", "transferred in {v}"),
    "bal_out": ("pasada a otro recipiente {v}", "transferred out {v}"),
    "bal_drawn": ("extraída {v}", "drawn {v}"),
    "bal_drunk": ("bebida {v}", "drunk {v}"),
    "bal_per_animal": ("{v} L por animal al día", "{v} L per animal a day"),
    "bal_autonomy": ("Autonomía: {d} sin más agua", "Autonomy: {d} without more water"),
    "bal_no_autonomy": ("Autonomía: datos insuficientes", "Autonomy: not enough data"),
    "bal_csv_days": ("CSV por día", "CSV by day"),
    "bal_csv_months": ("CSV por mes", "CSV by month"),
    "week_chart": ("Últimos 7 días", "Last 7 days"),
    "data_missing": (
        "Parte de los datos no se pudo leer ({parts}).",
        "Part of the data could not be read ({parts}).",
    ),
    "db_down": (
        "La base de datos no responde: no hay lecturas que mostrar.",
        "The database is unreachable: no readings to show.",
    ),
    "min_days": ("Mín. días de agua", "Min. days of water"),
    "active_alerts": ("Alertas activas", "Active alerts"),
    "farm": ("Rancho", "Farm"),
    "agent": ("Equipo", "Equipment"),
    "not_found": ("No encontrado.", "Not found."),
    "forbidden": ("No permitido.", "Not allowed."),
    "bad_form": (
        "El formulario no es válido (falta el token CSRF). Vuelva a cargar la página.",
        "The form is not valid (CSRF token missing). Reload the page.",
    ),
    "language": ("English", "Español"),
    "back": ("Volver", "Back"),
}


def text(key: str, language: str, **values: object) -> str:
    """The text ``key`` in ``language`` with ``values`` filled in."""
    es, en = TEXTS[key]
    template = en if language == "en" else es
    return template.format(**values) if values else template


def label_in(label: str, language: str) -> str:
    """One language of a farm file label written "Spanish / English"; a label without
    " / " is shown as it is."""
    if " / " not in label:
        return label
    es, en = label.split(" / ", 1)
    return en.strip() if language == "en" else es.strip()


def number(value: float, decimals: int = 1) -> str:
    """``13,234.5``; ``-0.0`` shows as ``0.0``."""
    rounded = round(value, decimals)
    if rounded == 0:
        rounded = 0.0
    return f"{rounded:,.{decimals}f}"


def age(ms: int, language: str) -> str:
    """How long ago, in the largest whole unit: "hace 5 min" / "5 min ago". Nothing finer
    than a minute, so a page stays the same (and revalidates as 304) within one."""
    seconds = max(ms, 0) // 1000
    if seconds < 60:
        return text("ago_now", language)
    if seconds < 3600:
        return text("ago_min", language, n=seconds // 60)
    if seconds < 48 * 3600:
        return text("ago_h", language, n=seconds // 3600)
    return text("ago_d", language, n=seconds // 86400)


def days(days_left: float, language: str) -> str:
    """Days in words: "4.5 días" under ten days, "12 días" beyond."""
    if days_left < 1:
        return text("under_a_day", language)
    shown = number(days_left, 1) if days_left < 10 else number(days_left, 0)
    if shown in ("1.0", "1"):
        return text("day_one", language)
    return text("days", language, n=shown)
