"""Who is asking, and whether a form post really comes from a console page.

Roles: everyone is a *viewer* (read-only); an *operator* may act. An operator proves it with:

* the login form: a name and the configured token; the console answers with a session cookie (HttpOnly,
  SameSite=Strict) holding the name and an expiry, signed with HMAC-SHA256 under ``secret_key``;
* ``Authorization: Bearer <token>``;
* ``Authorization: Basic`` with ``operator_user`` and ``operator_password``.

Wrong credentials answer 401; they are never logged, and comparisons are constant-time.

CSRF: every page view carries a random ``kep_console_csrf`` cookie (HttpOnly, SameSite=Strict); forms carry
``HMAC(secret_key, cookie)``. Every POST must present both, and a cross-site ``Origin`` is refused too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from kep.console.settings import ConsoleSettings

SESSION_COOKIE = "kep_console_session"
CSRF_COOKIE = "kep_console_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


class AuthError(Exception):
    """Credentials were presented and are wrong (the answer is 401; the message holds no secret)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from. ``operator`` may act; ``via`` is how that was proved."""

    name: str
    operator: bool
    via: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.via})" if self.operator else "viewer"


VIEWER = Principal("viewer", False, "anonymous")


class Guard:
    """Checks credentials, signs and reads sessions, issues and checks CSRF tokens."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self._key = hashlib.sha256(b"kep-console:" + settings.secret_key.get_secret_value().encode()).digest()

    # -- identity -----------------------------------------------------------------------------------------
    def principal(self, authorization: str | None, session: str | None) -> Principal:
        """The requester: from the Authorization header when present (``AuthError`` if wrong), else the
        session cookie (ignored when invalid or expired), else a viewer."""
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer":
                if self.token_ok(credentials.strip()):
                    return Principal("token", True, "bearer token")
                raise AuthError("wrong operator token")
            if scheme == "basic":
                return self._basic(credentials.strip())
            raise AuthError(f"unsupported authorization scheme {scheme!r}")
        if session:
            found = self.read_session(session)
            if found is not None:
                return found
        return VIEWER

    def token_ok(self, token: str) -> bool:
        expected = self.settings.operator_token
        return expected is not None and hmac.compare_digest(
            token.encode(), expected.get_secret_value().encode()
        )

    def _basic(self, credentials: str) -> Principal:
        password = self.settings.operator_password
        if password is None:
            raise AuthError("basic auth is not configured")
        try:
            user, _, given = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError("malformed basic credentials") from None
        user_ok = hmac.compare_digest(user.encode(), self.settings.operator_user.encode())
        password_ok = hmac.compare_digest(given.encode(), password.get_secret_value().encode())
        if not (user_ok and password_ok):
            raise AuthError("wrong operator user or password")
        return Principal(user, True, "basic auth")

    # -- sessions -----------------------------------------------------------------------------------------
    def session_for(self, name: str) -> str:
        """A signed session value for operator ``name``, valid ``session_ttl_s``."""
        expires = int(time.time() + self.settings.session_ttl_s)
        body = f"{name}|{expires}"
        return f"{body}|{self._sign('session:' + body)}"

    def read_session(self, value: str) -> Principal | None:
        name, _, rest = value.partition("|")
        expires, _, signature = rest.partition("|")
        if not (name and expires.isdigit() and signature):
            return None
        if not hmac.compare_digest(signature, self._sign(f"session:{name}|{expires}")):
            return None
        if int(expires) < time.time():
            return None
        return Principal(name, True, "token login")

    @staticmethod
    def clean_name(name: str) -> str:
        """An operator's self-declared name for the audit log: letters, digits and ``._@-``, 1-64 long."""
        name = name.strip()
        if not (1 <= len(name) <= 64) or not set(name) <= _NAME_CHARS:
            raise AuthError("name: 1 to 64 letters, digits, '.', '_', '@' or '-'")
        return name

    # -- CSRF ---------------------------------------------------------------------------------------------
    @staticmethod
    def new_csrf_cookie() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, cookie: str) -> str:
        return self._sign("csrf:" + cookie)

    def csrf_ok(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        return hmac.compare_digest(token, self.csrf_token(cookie))

    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()
