"""What must happen to a message once a lane processed it: a value, settled in one place.

Processing a message (``runtime/processor.py``) never raises and never waits: it returns one of these. The
settler (``runtime/settle.py``) is the only code that acts on them: it finishes offsets, forwards records and
waits. Routing a failure (``retry/router.py``) is pure: it turns a failure into a ``Forward``, a ``Rerun`` or
a ``Drop``.

=================  =============================================================================================
``HANDLED``        the handler ran and its key is complete: finish the offset
``DUPLICATE``      the key was already complete (a redelivery): finish the offset, count a duplicate
``Rerun``          run the message again in place after ``delay_s`` (store unavailable, a claim held by another
                   live worker, an in-place retry, or a rate/concurrency limit); ``redo`` is what the next run
                   continues from
``Forward``        send the record's key and value with ``headers`` to ``topic`` (a retry tier or the dead-letter
                   topic); the offset is finished when the broker acknowledged it
``Drop``           finish the offset without keeping the message anywhere, with an error log naming ``reason``
=================  =============================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal


@dataclass(frozen=True, slots=True)
class Handled:
    """The handler ran and the key is complete."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The key was complete already: the handler did not run."""


HANDLED: Final = Handled()
DUPLICATE: Final = Duplicate()

RerunReason = Literal["store-unavailable", "registry-unavailable", "claim-busy", "retry-in-place", "limit"]


@dataclass(frozen=True, slots=True)
class Redo:
    """What the next run of a message in place continues from.

    ``attempt``: the execution number of the next run (1 = first). ``first_failure_ms``: when the first
    in-place execution failed (blocking retries). ``store_waits``: consecutive waits for the store (backoff).
    ``handled``: the handler succeeded; only recording the key's completion is left. ``held_since``: when a
    rate or concurrency limit first held the message back (``time.monotonic()``; consumers/limits).
    """

    attempt: int
    first_failure_ms: int | None = None
    store_waits: int = 0
    handled: bool = False
    held_since: float | None = None


@dataclass(frozen=True, slots=True)
class Rerun:
    """Wait ``delay_s`` (woken early when the partition is revoked), then process the message again."""

    delay_s: float
    reason: RerunReason
    redo: Redo


ForwardKind = Literal["retry", "dead-letter"]


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the message's key and value with ``headers`` to ``topic``.

    ``dead_letter_topic``: where a retry record goes when ``topic`` refuses it (too large), if anywhere.
    ``tier``: the retry tier's suffix (``10s``), for metrics. ``reason``: why (``attempts-exhausted``,
    ``fatal``...), for the log.
    """

    topic: str
    headers: Sequence[tuple[str, bytes | None]]
    kind: ForwardKind
    dead_letter_topic: str | None = None
    tier: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Drop:
    """Finish the message without keeping it: dead letters are disabled, or there is nowhere to keep it."""

    reason: str
    error: str


Outcome = Handled | Duplicate | Rerun | Forward | Drop
