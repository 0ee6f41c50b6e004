"""Secrets out of text that leaves the process: exception messages, tracebacks, log lines, dead-letter headers.

``scrub(text)`` replaces, with ``***``:

* the password of a URL (``postgresql://app:s3cret@db/x`` -> ``postgresql://app:***@db/x``);
* the value after a secret-looking key: ``password=``, ``passwd``, ``pwd``, ``secret``, ``token``,
  ``api_key``/``apikey``, ``sasl.password``, ``ssl.key.password``, ``authorization: Bearer ...`` (``=`` or ``:``,
  quoted or not), as libpq, librdkafka and HTTP clients echo them;
* every value registered with ``register()``: the worker registers the secrets of its configuration (the
  store URL's password, the Kafka client's passwords and tokens), so they are caught in any form of text.

It never raises and leaves text without secrets unchanged.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

MASK: Final = "***"
_MIN_SECRET: Final = 4  # shorter values would mask ordinary words

_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\"'\\]*:)(?P<secret>[^\s@/\"'\\]+)(?=@)"
)
_KEY_VALUE = re.compile(
    r"(?P<head>(?i:\b(?:[a-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|credentials?))"
    r"[\"']?\s*[=:]\s*[\"']?))(?P<secret>[^\s\"',;&}\\]+)"
)
_BEARER = re.compile(r"(?P<head>(?i:\b(?:bearer|basic)\s+))(?P<secret>[A-Za-z0-9._~+/=\-]{8,})")
_SECRET_KEYS = re.compile(r"(?i)(password|passwd|secret|token|api[_\-]?key|credentials?)")

_lock = threading.Lock()
_registered: tuple[str, ...] = ()
#: Texts scrubbed lately and their masked forms: a failing handler raises the same traceback again and again.
_recent: dict[str, str] = {}
_RECENT_MAX: Final = 256


def register(*values: str | None) -> None:
    """Mask these values wherever they appear from now on (in this process). Short or empty values are
    ignored; percent-encoded forms are registered too."""
    global _registered
    found = set(_registered)
    for value in values:
        if not value or len(value) < _MIN_SECRET:
            continue
        found.add(value)
        decoded = unquote(value)
        if len(decoded) >= _MIN_SECRET:
            found.add(decoded)
    with _lock:
        _registered = tuple(sorted(found, key=len, reverse=True))  # longest first: no partial masks
        _recent.clear()


def register_url(url: str | None) -> None:
    """Register the password of a connection URL (``redis://:pw@host``, ``postgresql://u:pw@host/db``)."""
    if not url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    register(password)


def register_config(config: Mapping[str, Any]) -> None:
    """Register the values of secret-looking keys of a client configuration (``sasl.password``,
    ``ssl.key.password``, ``sasl.oauthbearer.client.secret``...)."""
    for key, value in config.items():
        if isinstance(value, str) and _SECRET_KEYS.search(key):
            register(value)


def scrub(text: str) -> str:
    """``text`` with the secrets it holds masked (see the module docstring)."""
    done = _recent.get(text)
    if done is not None:
        return done
    registered = _registered
    masked = _scrub(text, registered)
    with _lock:
        if registered is _registered:  # not if a secret was registered meanwhile
            if len(_recent) >= _RECENT_MAX:
                _recent.clear()
            _recent[text] = masked
    return masked


def _scrub(text: str, registered: tuple[str, ...]) -> str:
    try:
        for value in registered:
            if value in text:
                text = text.replace(value, MASK)
        if "://" in text:
            text = _URL_PASSWORD.sub(_masked, text)
        text = _KEY_VALUE.sub(_masked, text)
        return _BEARER.sub(_masked, text)
    except Exception:  # noqa: BLE001 - masking must never be the thing that fails
        return text


def scrub_all(values: Iterable[str]) -> list[str]:
    return [scrub(value) for value in values]


def _masked(match: re.Match[str]) -> str:
    return match.group("head") + MASK
