"""W3C trace context: the shape of a ``traceparent`` header (https://www.w3.org/TR/trace-context/)."""

from __future__ import annotations

import re

from kep.producers.errors import InvalidTraceparentError

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def validate_traceparent(value: str) -> str:
    """Return ``value`` if it is a well-formed ``traceparent``, else raise ``InvalidTraceparentError``.

    ``version-traceid-parentid-flags`` in lower-case hex; version ``ff`` and all-zero ids are invalid;
    versions above ``00`` may carry more fields after the flags.
    """
    match = _TRACEPARENT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidTraceparentError(
            f"traceparent {value!r} is not W3C trace context (expected 00-<32 hex>-<16 hex>-<2 hex>)"
        )
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff":
        raise InvalidTraceparentError(f"traceparent {value!r} has the forbidden version ff")
    if version == "00" and rest:
        raise InvalidTraceparentError(
            f"traceparent {value!r} has extra fields after the flags for version 00"
        )
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        raise InvalidTraceparentError(f"traceparent {value!r} has an all-zero trace id or parent id")
    return value
