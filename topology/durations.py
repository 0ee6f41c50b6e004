"""Durations in the topology file: ``"500ms"``, ``"10s"``, ``"1m"``, ``"1h"``, ``"1d"`` <-> seconds.

``format_duration`` gives the canonical spelling used in derived topic names: the largest unit that divides
the value exactly, so ``60`` -> ``"1m"`` and ``90`` -> ``"90s"``. Durations are whole milliseconds.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from kep.topology.errors import DurationError

__all__ = ["format_duration", "parse_duration", "to_milliseconds"]

_UNITS_MS: dict[str, int] = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
# The whole ASCII string: spaces or tabs around, nothing else (no newline, no digits of other scripts).
_PATTERN = re.compile(
    r"\A[ \t]*(?P<number>[0-9]{1,15}(?:\.[0-9]{1,9})?)[ \t]*(?P<unit>ms|s|m|h|d)[ \t]*\Z", re.ASCII
)


def parse_duration(value: str | timedelta) -> float:
    """Seconds in ``value``: a number with a unit (``ms``, ``s``, ``m``, ``h``, ``d``) or a ``timedelta``.

    Bare numbers are refused on purpose: ``60`` could mean seconds or Kafka's milliseconds.
    Raises ``DurationError`` naming the value.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds < 0:
            raise DurationError(f"duration {value!r} is negative")
        return _whole_milliseconds(seconds, value)
    if isinstance(value, bool) or not isinstance(value, str):
        hint = " (add a unit: ms, s, m, h or d)" if isinstance(value, int | float) else ""
        raise DurationError(f"duration {value!r} is not a string like '10s'{hint}")
    match = _PATTERN.fullmatch(value)
    if match is None:
        raise DurationError(
            f"duration {value!r} is not a number with a unit (ms, s, m, h, d), e.g. '500ms', '10s'"
        )
    seconds = float(match["number"]) * _UNITS_MS[match["unit"]] / 1000
    if not math.isfinite(seconds):
        raise DurationError(f"duration {value!r} is too large")
    return _whole_milliseconds(seconds, value)


def _whole_milliseconds(seconds: float, original: object) -> float:
    millis = seconds * 1000
    if abs(millis - round(millis)) > 1e-6:
        raise DurationError(f"duration {original!r} is not a whole number of milliseconds")
    return round(millis) / 1000


def to_milliseconds(seconds: float) -> int:
    """``seconds`` as whole milliseconds (Kafka's unit for ``retention.ms`` and friends)."""
    return round(seconds * 1000)


def format_duration(seconds: float) -> str:
    """Canonical spelling of ``seconds``: ``10`` -> ``"10s"``, ``60`` -> ``"1m"``, ``0.5`` -> ``"500ms"``."""
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"duration {seconds!r} seconds cannot be formatted")
    millis = to_milliseconds(seconds)
    if abs(millis - seconds * 1000) > 1e-6:
        raise DurationError(f"duration {seconds!r} seconds is not a whole number of milliseconds")
    if millis == 0:
        return "0s"
    for unit, size in _UNITS_MS.items():
        if millis % size == 0:
            return f"{millis // size}{unit}"
    raise AssertionError("unreachable: every whole millisecond count divides by 1 ms")  # pragma: no cover
