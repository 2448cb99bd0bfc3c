"""HTTP SMS gateway with Twilio's REST API shape.

``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`` with a form body
(``To``, ``From``, ``Body``) and HTTP basic auth (account SID, auth token). The base URL is
configurable so another provider speaking the same shape, or a test server, can stand in.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import urllib3
from pydantic import SecretStr

from collector.alerts.channels import ChannelError, PartLedger


class TwilioGateway:
    """An SMS channel through an HTTP API shaped like Twilio's Messages resource."""

    name = "http"

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: SecretStr,
        sender: str,
        timeout_s: float = 15.0,
    ) -> None:
        self._url = (
            f"{base_url.rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}"
            "/Messages.json"
        )
        self._sender = sender
        self._headers = urllib3.make_headers(
            basic_auth=f"{account_sid}:{auth_token.get_secret_value()}"
        )
        self._headers["Content-Type"] = "application/x-www-form-urlencoded"
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=timeout_s), retries=False
        )

    def send(self, phone: str, text: str, ledger: PartLedger | None = None) -> str:
        """Create the message (the provider splits it: one request, ``ledger`` unused); return
        the provider's message SID. No response after the request went out (read timeout, the
        connection dropped) is ``uncertain``: the provider may have created the message."""
        body = urlencode({"To": phone, "From": self._sender, "Body": text})
        try:
            response = self._http.request("POST", self._url, body=body, headers=self._headers)
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError) as exc:
            raise ChannelError("gateway_no_answer", str(exc), uncertain=True) from None
        except urllib3.exceptions.HTTPError as exc:
            raise ChannelError("gateway_unreachable", str(exc)) from None
        detail = response.data[:300].decode("utf-8", "replace")
        if response.status in (200, 201):
            try:
                answer = json.loads(response.data)
            except (ValueError, RecursionError):  # accepted: only the SID is unknown
                answer = {}
            sid = answer.get("sid") if isinstance(answer, dict) else None
            return str(sid or "?")
        if response.status == 400:
            # Twilio answers 400 for a number or body it will never accept.
            raise ChannelError("gateway_refused", detail, permanent=True)
        if response.status in (401, 403):
            raise ChannelError("gateway_auth", f"HTTP {response.status}")
        raise ChannelError(f"gateway_http_{response.status}", detail)
