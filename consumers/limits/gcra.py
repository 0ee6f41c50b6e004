"""The rate algorithm: GCRA, a token bucket kept as one number per key.

A key's state is its *theoretical arrival time* (TAT): when the bucket would be full again. With ``interval``
seconds between starts at the steady rate and a ``burst`` of starts allowed back to back, the tolerance is
``(burst - 1) * interval``. A start at ``now`` is allowed when ``max(TAT, now) - tolerance <= now``; it moves
the TAT to ``max(TAT, now) + interval``. Otherwise the caller waits ``max(TAT, now) - tolerance - now``.

In any window of ``T`` seconds, at most ``burst + T / interval`` starts are allowed. A key never seen (or
expired: TAT in the past) is a full bucket. Every store runs exactly this, atomically.
"""

from __future__ import annotations


def gcra(tat: float | None, now: float, interval: float, tolerance: float) -> tuple[float, float | None]:
    """``(wait, new_tat)``: ``wait`` 0.0 and the TAT to store when allowed; otherwise the seconds to wait and
    None (nothing changes)."""
    base = now if tat is None or tat < now else tat
    allow_at = base - tolerance
    if allow_at > now:
        return allow_at - now, None
    return 0.0, base + interval


def tolerance(interval: float, burst: int) -> float:
    return (burst - 1) * interval
