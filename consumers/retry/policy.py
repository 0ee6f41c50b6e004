"""The retry policy: after a handler fails, retry (when, through which tier), dead-letter, or drop.

Semantics (also in docs/dead-letters.md):

- **Attempts.** ``max_attempts`` counts every execution, the first one included: ``max_attempts=4`` is one
  try and three retries. The default is one try plus one retry per tier. When ``max_attempts`` exceeds the
  number of tiers + 1, the last tier is reused. A failure that leaves no attempt is dead-lettered, reason
  ``"attempts-exhausted"``. In ``topics`` mode with no tiers, the first failure is dead-lettered.
- **Deadline.** Measured from the first failure (``kep-first-failure-time``). When the next retry would be due
  after ``first failure + deadline``, the record is dead-lettered now, reason ``"deadline-exceeded"``: waiting
  for a retry that may not run is pointless.
- **Jitter only lengthens.** ``due = failure time + delay + U(0, jitter * delay)``, rounded up to the
  millisecond. A retry never runs before its tier's nominal delay, so a consumer that only knows the tier's
  delay can never run it early either; the consumer holds the record until ``kep-due-time``.
- **Fatal failures** (see :mod:`consumers.retry.classify`) skip the retries, reason ``"fatal"``.
- **Dead letters disabled** (``dead_letter: false``): every would-be dead letter becomes :class:`Drop`, which
  the runtime commits past. THE MESSAGE IS LOST; only a topology that says ``dead_letter: false`` gets this.
- **Blocking mode** retries in place (ordering-critical topics): :class:`Retry` has ``tier=None`` and
  :meth:`RetryPolicy.blocking_delays` gives the nominal sleep before each retry.

The policy is pure: the caller passes the failure time, and the random source is injected (seedable).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Literal, Protocol

import structlog

from kep.consumers.errors import ConfigError
from kep.consumers.retry.classify import ErrorClassifier
from kep.consumers.retry.headers import Provenance
from kep.topology.durations import parse_duration
from kep.topology.errors import DurationError

log = structlog.get_logger(__name__)

DeadLetterReason = Literal["fatal", "attempts-exhausted", "deadline-exceeded"]
RetryMode = Literal["topics", "blocking"]
DurationLike = float | int | str | timedelta


class RetryTierLike(Protocol):
    """A retry tier as the topology derives it (``topology.model.RetryTier``)."""

    @property
    def topic(self) -> str: ...

    @property
    def delay_seconds(self) -> float: ...

    @property
    def index(self) -> int: ...

    @property
    def suffix(self) -> str: ...


class RetrySpecLike(Protocol):
    """The retry settings of a group and source topic (``topology.model.RetrySpec``)."""

    @property
    def delays(self) -> Sequence[DurationLike]: ...

    @property
    def jitter(self) -> float: ...

    @property
    def max_attempts(self) -> int | None: ...

    @property
    def deadline(self) -> DurationLike | None: ...

    @property
    def dead_letter(self) -> bool: ...

    @property
    def mode(self) -> str: ...

    @property
    def fatal_exceptions(self) -> Sequence[str]: ...


class GroupSpecLike(Protocol):
    """What the policy needs from ``topology.model.ConsumerGroupSpec``."""

    @property
    def name(self) -> str: ...

    def retry_for(self, source_topic: str) -> RetrySpecLike: ...

    def retry_tiers(self, source_topic: str) -> Sequence[RetryTierLike]: ...


class DecisionKind(StrEnum):
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class Retry:
    """Run again at ``due_ms``: through ``tier`` (topics mode) or in place (``tier is None``, blocking mode).

    ``attempt`` is the number of failed executions so far: the ``kep-attempt`` of the retry record.
    """

    tier: RetryTierLike | None
    due_ms: int
    attempt: int
    kind: Literal[DecisionKind.RETRY] = DecisionKind.RETRY


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Forward to the dead-letter topic. ``attempt``: failed executions, the ``kep-attempt`` to write."""

    reason: DeadLetterReason
    attempt: int
    kind: Literal[DecisionKind.DEAD_LETTER] = DecisionKind.DEAD_LETTER


@dataclass(frozen=True, slots=True)
class Drop:
    """Dead letters are disabled for this topic: commit past the record. The message is lost, by design."""

    reason: DeadLetterReason
    attempt: int
    kind: Literal[DecisionKind.DROP] = DecisionKind.DROP


Decision = Retry | DeadLetter | Drop


class RetryPolicy:
    """Decides what happens to a record after a failed execution. See the module docstring for the rules."""

    def __init__(
        self,
        *,
        tiers: Sequence[RetryTierLike] = (),
        delays: Sequence[DurationLike] | None = None,
        max_attempts: int | None = None,
        jitter: float = 0.0,
        deadline: DurationLike | None = None,
        dead_letter: bool = True,
        mode: RetryMode = "topics",
        classifier: ErrorClassifier | None = None,
        rng: random.Random | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        if mode not in ("topics", "blocking"):
            raise ConfigError(f"retry mode {mode!r}: expected 'topics' or 'blocking'")
        if not 0.0 <= jitter <= 1.0:
            raise ConfigError(f"retry jitter {jitter!r}: expected a fraction between 0 and 1")
        self.mode: RetryMode = mode
        ordered = sorted(tiers, key=lambda tier: tier.index)
        self.tiers: tuple[RetryTierLike, ...] = tuple(ordered) if mode == "topics" else ()
        raw_delays = delays if delays is not None else [tier.delay_seconds for tier in self.tiers]
        self.delays: tuple[float, ...] = tuple(to_seconds(d, "retry delay") for d in raw_delays)
        steps = len(self.tiers) if mode == "topics" else len(self.delays)
        self.max_attempts = steps + 1 if max_attempts is None else max_attempts
        if self.max_attempts < 1:
            raise ConfigError(f"retry max_attempts {max_attempts!r}: expected at least 1 (the first try)")
        if steps == 0:
            self.max_attempts = 1  # nowhere to retry: the first failure is the last
        self.jitter = jitter
        self.deadline_ms = None if deadline is None else round(to_seconds(deadline, "retry deadline") * 1000)
        self.dead_letter = dead_letter
        self.classifier = classifier or ErrorClassifier()
        self._rng = rng or random.Random()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        if not dead_letter:
            log.warning("dead letters disabled: records that exhaust retries or fail fatally are dropped")

    @classmethod
    def from_spec(
        cls,
        spec: RetrySpecLike,
        tiers: Sequence[RetryTierLike] = (),
        *,
        rng: random.Random | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> RetryPolicy:
        """A policy from a topology ``RetrySpec`` and the tiers derived for one group and source topic."""
        mode: RetryMode = "blocking" if spec.mode == "blocking" else "topics"
        return cls(
            tiers=tiers,
            delays=list(spec.delays),
            max_attempts=spec.max_attempts,
            jitter=spec.jitter,
            deadline=spec.deadline,
            dead_letter=spec.dead_letter,
            mode=mode,
            classifier=ErrorClassifier(fatal=tuple(spec.fatal_exceptions or ())),
            rng=rng,
            clock_ms=clock_ms,
        )

    @classmethod
    def from_topology(
        cls,
        group_spec: GroupSpecLike,
        source_topic: str,
        *,
        rng: random.Random | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> RetryPolicy:
        """The policy of ``group_spec`` for records of ``source_topic`` (per-topic overrides applied)."""
        spec = group_spec.retry_for(source_topic)
        tiers = group_spec.retry_tiers(source_topic) if spec.mode != "blocking" else ()
        return cls.from_spec(spec, tiers, rng=rng, clock_ms=clock_ms)

    def decide(
        self, provenance: Provenance | None, exc: BaseException, now_ms: int | None = None
    ) -> Decision:
        """What to do after an execution failed with ``exc`` at ``now_ms``.

        ``provenance`` is ``None`` for a record from its source topic (this was its first execution), else the
        provenance it carried (``kep-attempt`` = failures before this one).
        """
        now = self._clock_ms() if now_ms is None else now_ms
        failed = 1 if provenance is None else provenance.attempt + 1
        if self.classifier.is_fatal(exc):
            return self._give_up("fatal", failed)
        if failed >= self.max_attempts:
            return self._give_up("attempts-exhausted", failed)
        due = self.due_ms(now, failed)
        if self.deadline_ms is not None:
            first_failure = now if provenance is None else provenance.first_failure_ms
            if due > first_failure + self.deadline_ms:
                return self._give_up("deadline-exceeded", failed)
        return Retry(tier=self.tier_for(failed), due_ms=due, attempt=failed)

    def tier_for(self, attempt: int) -> RetryTierLike | None:
        """The tier a record goes to after its ``attempt``-th failure (the last tier is reused); ``None`` in
        blocking mode."""
        if not self.tiers:
            return None
        return self.tiers[min(attempt, len(self.tiers)) - 1]

    def delay_for(self, attempt: int) -> float:
        """Nominal delay in seconds after the ``attempt``-th failure (no jitter)."""
        if attempt < 1:
            raise ValueError(f"attempt {attempt}: failures are counted from 1")
        if self.tiers:
            return float(self.tiers[min(attempt, len(self.tiers)) - 1].delay_seconds)
        if self.delays:
            return self.delays[min(attempt, len(self.delays)) - 1]
        return 0.0

    def due_ms(self, failure_ms: int, attempt: int) -> int:
        """When the retry after the ``attempt``-th failure may run: failure time + delay + jitter (>= 0)."""
        delay_ms = self.delay_for(attempt) * 1000
        extra_ms = self._rng.uniform(0.0, self.jitter * delay_ms) if self.jitter else 0.0
        return failure_ms + math.ceil(delay_ms + extra_ms)

    def blocking_delays(self) -> list[float]:
        """Nominal seconds to wait before each retry: ``max_attempts - 1`` values, the last delay reused."""
        return [self.delay_for(attempt) for attempt in range(1, self.max_attempts)]

    def _give_up(self, reason: DeadLetterReason, failed: int) -> Decision:
        if self.dead_letter:
            return DeadLetter(reason=reason, attempt=failed)
        return Drop(reason=reason, attempt=failed)

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(mode={self.mode!r}, delays={list(self.delays)}, max_attempts={self.max_attempts}, "
            f"jitter={self.jitter}, deadline_ms={self.deadline_ms}, dead_letter={self.dead_letter})"
        )


def to_seconds(value: DurationLike, what: str = "duration") -> float:
    """Seconds in ``value``: a number of seconds, a ``timedelta``, or a duration string such as ``"10s"``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ConfigError(f"{what} {value!r}: expected seconds or a duration such as '10s'")
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            raise ConfigError(f"{what} {value!r}: {exc}") from exc
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{what} {value!r}: expected a finite, non-negative duration")
    return seconds
