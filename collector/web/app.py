"""The web application: routes, login and sessions, the pages (Starlette, server-rendered).

Every page but ``/login`` needs a session; a page asked for without one redirects to
``/login``, anything else (CSV, POST) answers 401. Every POST carries a CSRF token bound to the
session (the login form's to a pre-session cookie). An operator asking for a farm that is not
theirs gets the same 404 as for a farm that does not exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from collector.web import i18n
from collector.web.alerts_client import AckOutcome, AlertsClient, AlertsUnavailableError, FarmAlerts
from collector.web.auth import Accounts, Authenticator, Caller, LoginResult, caller_of
from collector.web.balance_view import BalanceView
from collector.web.csrf import csrf_ok, csrf_token
from collector.web.readings import UNREADABLE, FarmReadings, Readings, Window, page_window
from collector.web.responses import (
    STATIC_CACHE,
    SecurityHeaders,
    ServerTiming,
    cached_response,
)
from collector.web.sessions import SessionStore
from collector.web.settings import WebSettings
from collector.web.views import farm_page, overview_row
from farmwatch_shared.clock import Clock
from farmwatch_shared.farm.model import FarmConfig
from farmwatch_shared.influx import InfluxQueryError, RetryableWriteError

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 4096
LOGIN_COOKIE_S = 12 * 3600


class BalanceProvider(Protocol):
    """The water balance of a farm for its page and as CSV (``balance_view.WaterBalance``)."""

    def section(self, farm: FarmConfig, w: Window, language: str) -> BalanceView | None:
        """The balance section's view (None: no vessels)."""
        ...

    def csv(
        self, farm: FarmConfig, w: Window, language: str, period: Literal["day", "month"]
    ) -> str:
        """The balance as CSV."""
        ...


@dataclass(frozen=True)
class WebDeps:
    """What the application is made of (all injected: the tests and the CLI build them)."""

    settings: WebSettings
    farms: Mapping[str, FarmConfig]
    accounts: Accounts
    sessions: SessionStore
    authenticator: Authenticator
    readings: Readings
    alerts: AlertsClient
    clock: Clock
    balance: BalanceProvider | None
    """None: no balance section, the CSV answers 503."""


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("collector.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _stylesheet() -> tuple[str, bytes]:
    css = resources.files("collector.web").joinpath("static/farmwatch.css").read_bytes()
    digest = hashlib.sha256(css).hexdigest()[:12]
    return f"/static/farmwatch.{digest}.css", css


def safe_next(target: str | None) -> str:
    """A local path to go to after the login (never another site: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


class WebApp:
    """The routes over the injected dependencies."""

    def __init__(self, deps: WebDeps) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.templates = _templates()
        self.css_url, self.css = _stylesheet()
        self.key = deps.sessions.signing_key()

    # ---- plumbing -------------------------------------------------------------------------

    def caller(self, request: Request) -> Caller | None:
        """The logged-in caller of ``request``, or None."""
        token = request.cookies.get(self.settings.cookie_name())
        return caller_of(token, self.deps.sessions, self.deps.accounts)

    def language(self, request: Request, caller: Caller | None) -> str:
        """``?lang=`` (remembered for the session), the session's, the account's, or the
        default."""
        asked = request.query_params.get("lang")
        if asked in i18n.LANGUAGES:
            if caller is not None:
                self.deps.sessions.set_language(caller.session.token, asked)
            return asked
        if caller is not None:
            return caller.session.language or caller.user.language
        return self.settings.default_language

    def render(
        self,
        request: Request,
        template: str,
        *,
        caller: Caller | None,
        lang: str,
        title: str,
        status: int = 200,
        content_ms: int | None = None,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> Response:
        """A page with its ETag and Last-Modified (``content_ms``, the newest datum shown, or
        the current minute), or a 304 when the browser has it."""

        def t(key: str, **values: object) -> str:
            return i18n.text(key, lang, **values)

        csrf = csrf_token(self.key, caller.session.token) if caller else ""
        html = self.templates.get_template(template).render(
            t=t,
            lang=lang,
            other_lang="en" if lang == "es" else "es",
            title=title,
            caller=caller,
            csrf=context.pop("csrf", csrf),
            css_url=self.css_url,
            **context,
        )
        return cached_response(
            request.headers,
            html.encode(),
            media_type="text/html; charset=utf-8",
            status=status,
            # what a page shows changes at the data's pace, its ages at most once a minute
            last_modified_ms=max(content_ms or 0, self.deps.clock.now_ms() // 60_000 * 60_000),
            headers=headers,
        )

    def message(self, request: Request, caller: Caller | None, status: int, key: str) -> Response:
        """A short page saying ``key`` (404, 403...)."""
        lang = self.language(request, caller)
        text = i18n.text(key, lang)
        return self.render(
            request,
            "message.html",
            caller=caller,
            lang=lang,
            title=text,
            status=status,
            message=text,
        )

    def visible_farms(self, caller: Caller) -> list[FarmConfig]:
        """The farms the caller may see, in farm id order."""
        return [f for fid, f in sorted(self.deps.farms.items()) if caller.user.sees(fid)]

    def farm_for(self, caller: Caller, farm_id: str) -> FarmConfig | None:
        """The farm if it exists and the caller may see it (else None: a 404 either way)."""
        farm = self.deps.farms.get(farm_id)
        return farm if farm is not None and caller.user.sees(farm_id) else None

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        """HttpOnly, SameSite=Lax, Path=/ and Secure behind TLS."""
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.settings.behind_tls,
            httponly=True,
            samesite="lax",
        )

    def to_login(self, request: Request) -> Response:
        """Redirect a page request without a session to the login."""
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    async def form(self, request: Request) -> dict[str, str]:
        """The posted form (small fields only)."""
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            return {}
        form = await request.form(max_files=0, max_fields=20)
        return {k: v for k, v in form.items() if isinstance(v, str)}

    # ---- login ----------------------------------------------------------------------------

    def login_page(
        self,
        request: Request,
        *,
        status: int = 200,
        message: str = "",
        username: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """The login form, bound to a pre-session cookie (kept when it is there)."""
        lang = self.language(request, None)
        cookie = self.settings.login_cookie_name()
        nonce = request.cookies.get(cookie) or ""
        fresh = len(nonce) < 32 or len(nonce) > 64
        if fresh:
            nonce = secrets.token_urlsafe(32)
        response = self.render(
            request,
            "login.html",
            caller=None,
            lang=lang,
            title=i18n.text("login", lang),
            status=status,
            headers=headers,
            csrf=csrf_token(self.key, "login:" + nonce),
            next=safe_next(request.query_params.get("next")),
            message=message,
            username=username,
        )
        if fresh:
            self.set_cookie(response, cookie, nonce, LOGIN_COOKIE_S)
        return response

    async def get_login(self, request: Request) -> Response:
        """GET /login."""
        if self.caller(request) is not None:
            return RedirectResponse("/", status_code=303)
        return self.login_page(request)

    async def post_login(self, request: Request) -> Response:
        """POST /login: CSRF, the limit, the password; a new session on success."""
        form = await self.form(request)
        lang = self.language(request, None)
        nonce = request.cookies.get(self.settings.login_cookie_name())
        name = form.get("username", "").strip().lower()[:64]
        if not csrf_ok(self.key, "login:" + nonce if nonce else None, form.get("csrf")):
            return self.login_page(
                request, status=403, message=i18n.text("expired_form", lang), username=name
            )
        address = request.client.host if request.client else "?"
        result = await run_in_threadpool(
            self.deps.authenticator.check, name, form.get("password", ""), address
        )
        if result is LoginResult.THROTTLED:
            wait = max(self.deps.authenticator.retry_after_s(name, address), 1)
            return self.login_page(
                request,
                status=429,
                message=i18n.text("too_many", lang, s=wait),
                username=name,
                headers={"Retry-After": str(wait)},
            )
        if result is LoginResult.WRONG:
            return self.login_page(
                request, status=401, message=i18n.text("bad_login", lang), username=name
            )
        self.deps.sessions.purge()
        session = self.deps.sessions.create(name)
        response = RedirectResponse(safe_next(form.get("next")), status_code=303)
        self.set_cookie(
            response, self.settings.cookie_name(), session.token, self.settings.session_max_s
        )
        response.delete_cookie(self.settings.login_cookie_name(), path="/")
        return response

    async def post_logout(self, request: Request) -> Response:
        """POST /logout: the session is deleted."""
        caller = self.caller(request)
        if caller is None:
            return RedirectResponse("/login", status_code=303)
        form = await self.form(request)
        if not csrf_ok(self.key, caller.session.token, form.get("csrf")):
            return self.message(request, caller, 403, "bad_form")
        self.deps.sessions.delete(caller.session.token)
        log.info("salida / logout: %s", caller.name)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(self.settings.cookie_name(), path="/")
        return response

    # ---- pages ----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        """GET /: the farm list (an operator of one farm goes straight to it)."""
        caller = self.caller(request)
        if caller is None:
            return self.to_login(request)
        farms = self.visible_farms(caller)
        if caller.user.role == "operator" and len(farms) == 1:
            lang = request.query_params.get("lang")
            suffix = f"?lang={lang}" if lang in i18n.LANGUAGES else ""
            return RedirectResponse(f"/farms/{farms[0].farm.id}{suffix}", status_code=303)
        lang = self.language(request, caller)
        return self.render(
            request,
            "farms.html",
            caller=caller,
            lang=lang,
            title=i18n.text("farms", lang),
            farms=farms,
        )

    def _farm_alerts(self, farm_id: str) -> FarmAlerts | None:
        try:
            return self.deps.alerts.farm(farm_id)
        except AlertsUnavailableError as exc:
            log.warning("%s", exc)
            return None

    def _balance(self, farm: FarmConfig, w: Window, lang: str) -> BalanceView | None:
        return None if self.deps.balance is None else self.deps.balance.section(farm, w, lang)

    def _farm_readings(self, farm_id: str, w: Window) -> FarmReadings | None:
        try:
            return self.deps.readings.farm(farm_id, w)
        except RetryableWriteError as exc:
            log.warning("InfluxDB: %s", exc)
            return None

    async def farm(self, request: Request) -> Response:
        """GET /farms/<farm>: the farm page."""
        caller = self.caller(request)
        if caller is None:
            return self.to_login(request)
        farm = self.farm_for(caller, request.path_params["farm"])
        if farm is None:
            return self.message(request, caller, 404, "not_found")
        lang = self.language(request, caller)
        w = page_window(self.deps.clock.now_ms(), farm.farm.timezone)
        readings, alerts, balance = await asyncio.gather(
            run_in_threadpool(self._farm_readings, farm.farm.id, w),
            run_in_threadpool(self._farm_alerts, farm.farm.id),
            run_in_threadpool(self._balance, farm, w, lang),
        )
        page = farm_page(
            farm, readings or UNREADABLE, alerts, w, lang, may_ack=caller.user.may_acknowledge
        )
        return self.render(
            request,
            "farm.html",
            caller=caller,
            lang=lang,
            title=farm.farm.name,
            content_ms=page.content_ms,
            page=page,
            db_down=readings is None,
            notice=self._ack_notice(request, lang),
            balance=balance,
        )

    @staticmethod
    def _ack_notice(request: Request, lang: str) -> str:
        outcome = request.query_params.get("r")
        number = request.query_params.get("ack", "")
        if not number.isdigit() or outcome not in {o.value for o in AckOutcome}:
            return ""
        return i18n.text(f"ack_{outcome}", lang, n=int(number))

    async def overview(self, request: Request) -> Response:
        """GET /overview: every farm, one row each (agronomists and admins)."""
        caller = self.caller(request)
        if caller is None:
            return self.to_login(request)
        if caller.user.role == "operator":
            return self.message(request, caller, 404, "not_found")
        lang = self.language(request, caller)
        farms = self.visible_farms(caller)
        now = self.deps.clock.now_ms()
        ids = [f.farm.id for f in farms]
        agents_task = run_in_threadpool(self._overview_agents, ids, now)
        alerts = await asyncio.gather(
            agents_task, *(run_in_threadpool(self._farm_alerts, fid) for fid in ids)
        )
        agents: dict[str, Any] = alerts[0]
        rows = [
            overview_row(farm, answer, agents.get(farm.farm.id, {}), lang)
            for farm, answer in zip(farms, alerts[1:], strict=True)
        ]
        return self.render(
            request,
            "overview.html",
            caller=caller,
            lang=lang,
            title=i18n.text("overview", lang),
            rows=rows,
            alerts_down=any(a is None for a in alerts[1:]),
        )

    def _overview_agents(self, ids: list[str], now_ms: int) -> dict[str, Any]:
        try:
            return self.deps.readings.agents(ids, now_ms)
        except RetryableWriteError as exc:
            log.warning("InfluxDB: %s", exc)
            return {}

    async def balance_csv(self, request: Request) -> Response:
        """GET /farms/<farm>/balance.csv."""
        caller = self.caller(request)
        if caller is None:
            return PlainTextResponse(
                "Se requiere sesión / login required\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Cookie realm="farmwatch"'},
            )
        farm = self.farm_for(caller, request.path_params["farm"])
        if farm is None:
            return PlainTextResponse("No encontrado / not found\n", status_code=404)
        if self.deps.balance is None:
            return PlainTextResponse(
                "Balance de agua aún no disponible / water balance not available yet\n",
                status_code=503,
            )
        lang = self.language(request, caller)
        period: Literal["day", "month"] = (
            "month" if request.query_params.get("period") == "month" else "day"
        )
        w = page_window(self.deps.clock.now_ms(), farm.farm.timezone)
        try:
            text = await run_in_threadpool(self.deps.balance.csv, farm, w, lang, period)
        except (RetryableWriteError, InfluxQueryError) as exc:
            log.warning("balance CSV %s: %s", farm.farm.id, exc)
            return PlainTextResponse(
                "Base de datos no disponible / database unavailable\n", status_code=503
            )
        name = f"{farm.farm.id}-balance-{period}.csv"
        return Response(
            text.encode(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "private, no-cache",
                "Vary": "Cookie",
            },
        )

    async def acknowledge(self, request: Request) -> Response:
        """POST /farms/<farm>/incidents/<id>/ack: through the alerting API, then back to the
        farm page (post/redirect/get)."""
        caller = self.caller(request)
        if caller is None:
            return PlainTextResponse("Se requiere sesión / login required\n", status_code=401)
        form = await self.form(request)
        if not csrf_ok(self.key, caller.session.token, form.get("csrf")):
            return self.message(request, caller, 403, "bad_form")
        farm = self.farm_for(caller, request.path_params["farm"])
        if farm is None:
            return self.message(request, caller, 404, "not_found")
        if not caller.user.may_acknowledge:
            return self.message(request, caller, 403, "read_only")
        incident: int = request.path_params["incident"]
        outcome = await run_in_threadpool(
            self.deps.alerts.acknowledge, farm.farm.id, incident, caller.name
        )
        log.info(
            "reconocimiento / acknowledgement: %s #%d by %s: %s",
            farm.farm.id,
            incident,
            caller.name,
            outcome.value,
        )
        query = urlencode({"ack": incident, "r": outcome.value})
        return RedirectResponse(f"/farms/{farm.farm.id}?{query}#alerts", status_code=303)

    async def stylesheet(self, request: Request) -> Response:
        """GET /static/farmwatch.<hash>.css: cached for a year (the name changes with it)."""
        if request.url.path != self.css_url:
            return PlainTextResponse("No encontrado / not found\n", status_code=404)
        return cached_response(
            request.headers, self.css, media_type="text/css", cache_control=STATIC_CACHE
        )

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """Any other path."""
        caller = self.caller(request)
        if caller is None and request.method == "GET":
            return self.to_login(request)
        return PlainTextResponse("No encontrado / not found\n", status_code=404)


Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(deps: WebDeps) -> Starlette:
    """The ASGI application."""
    web = WebApp(deps)
    routes = [
        Route("/login", web.get_login, methods=["GET"]),
        Route("/login", web.post_login, methods=["POST"]),
        Route("/logout", web.post_logout, methods=["POST"]),
        Route("/", web.home, methods=["GET"]),
        Route("/overview", web.overview, methods=["GET"]),
        Route("/farms/{farm}", web.farm, methods=["GET"]),
        Route("/farms/{farm}/balance.csv", web.balance_csv, methods=["GET"]),
        Route("/farms/{farm}/incidents/{incident:int}/ack", web.acknowledge, methods=["POST"]),
        Route("/static/{name}", web.stylesheet, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(ServerTiming),
            Middleware(GZipMiddleware, minimum_size=500),
        ],
        exception_handlers={404: web.not_found},
    )
