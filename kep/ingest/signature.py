"""Webhook signatures: HMAC-SHA256 over a timestamp and the raw body, in the form Stripe and others use.

The header (``Kep-Signature`` unless configured otherwise) reads ``t=<unix seconds>,v1=<hex digest>``; more
than one ``v1`` may be given (a sender rotating its secret signs with both). The digest is
``HMAC-SHA256(secret, "<t>." + body)`` in lower-case hex. A signature is refused when no ``v1`` matches, or
when ``t`` is further than the tolerance from this host's clock (a replayed old request).

>>> header = sign(b"secret", b'{"a":1}', timestamp=1700000000)
>>> header.startswith("t=1700000000,v1=")
True
>>> verify(header, b'{"a":1}', b"secret", tolerance_s=300, now=1700000100)
"""

from __future__ import annotations

import hashlib
import hmac
import time

from kep.schemas.errors import KepError

_MAX_HEADER = 4096
_SCHEME = "v1"


class SignatureError(KepError):
    """A request's signature is missing, malformed, stale or wrong. The message says which, never the secret
    or the expected digest."""


def digest(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``v1`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii"), hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def sign(secret: bytes, body: bytes, *, timestamp: int | None = None) -> str:
    """The signature header value a sender puts on ``body``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},{_SCHEME}={digest(secret, t, body)}"


def verify(
    header: str | None, body: bytes, secret: bytes, *, tolerance_s: float, now: float | None = None
) -> None:
    """Return when ``header`` signs ``body`` with ``secret`` within the tolerance; ``SignatureError`` if not."""
    if not header:
        raise SignatureError("the request is not signed")
    if len(header) > _MAX_HEADER:
        raise SignatureError("the signature header is too long")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise SignatureError("the signature timestamp is not a number of seconds")
            timestamp = int(value)
        elif name == _SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"the signature header has no t= or no {_SCHEME}= part")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"the signature timestamp is more than {tolerance_s:g}s from the intake's clock")
    expected = digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates if c.isascii()):
        raise SignatureError("the signature does not match the body")
