"""CSRF tokens: an HMAC of what the form is bound to (the session, or before login the
pre-session cookie) under the server's key. Nothing is stored per form; a token from another
session, or none, is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac


def csrf_token(key: bytes, binding: str) -> str:
    """The token forms of ``binding`` (a session token or a pre-session nonce) carry."""
    digest = hmac.new(key, b"farmwatch-web csrf\0" + binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_ok(key: bytes, binding: str | None, given: str | None) -> bool:
    """Whether ``given`` is the token of ``binding`` (constant-time compare)."""
    if not binding or not given:
        return False
    return hmac.compare_digest(csrf_token(key, binding), given)
