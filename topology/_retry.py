"""Retry policy of a consumer group: delays (one retry topic each), attempts, deadline, dead letters.

``max_attempts`` counts the first try: ``delays: [1s, 10s]`` gives 3 attempts by default. A larger
``max_attempts`` reuses the last delay (and its topic) for the extra retries; a smaller one is refused, since
its unused delays would create topics nobody writes to.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from kep.topology._types import DottedName, FrozenModel, PositiveDuration
from kep.topology.durations import format_duration
from kep.topology.errors import Issue, ValidationProblems

__all__ = ["RetrySpec", "RetryTier"]


class RetrySpec(FrozenModel):
    """How a group retries a failed record.

    ``mode: topics`` (default) forwards the record to one retry topic per delay and keeps consuming;
    ``mode: blocking`` retries in place after each delay, holding back the partition (for topics where order
    matters more than throughput). ``deadline`` bounds the time from the first failure; after the last attempt
    or the deadline the record goes to the dead-letter topic (or is dropped with a log line when
    ``dead_letter`` is false). ``fatal_exceptions`` go to the dead-letter topic at once.
    """

    delays: tuple[PositiveDuration, ...] = ()
    jitter: float = Field(default=0.0, ge=0.0, le=1.0)
    max_attempts: int | None = Field(default=None, ge=1)
    deadline: PositiveDuration | None = None
    dead_letter: bool = True
    mode: Literal["topics", "blocking"] = "topics"
    fatal_exceptions: tuple[DottedName, ...] = ()

    @field_validator("delays")
    @classmethod
    def _one_topic_per_suffix(cls, delays: tuple[float, ...]) -> tuple[float, ...]:
        seen: dict[str, int] = {}
        for index, delay in enumerate(delays):
            suffix = format_duration(delay)
            if suffix in seen:
                raise ValueError(
                    f"delays[{seen[suffix]}] and delays[{index}] are both {suffix}, which would share "
                    f"the topic suffix '.retry.{suffix}'; to retry several times after one delay, list it "
                    "once and raise max_attempts"
                )
            seen[suffix] = index
        return delays

    @model_validator(mode="after")
    def _attempts_fit_delays(self) -> RetrySpec:
        problems: list[Issue] = []
        attempts = self.max_attempts
        if attempts is not None and attempts > 1 and not self.delays:
            problems.append(
                Issue(("max_attempts",), f"{attempts} attempts need at least one delay to wait between them")
            )
        elif attempts is not None and attempts < len(self.delays) + 1:
            unused = ", ".join(format_duration(d) for d in self.delays[attempts - 1 :])
            problems.append(
                Issue(
                    ("max_attempts",),
                    f"{attempts} attempts (first try + {attempts - 1} retries) never use the delays "
                    f"{unused}; remove them or raise max_attempts to {len(self.delays) + 1}",
                )
            )
        if self.deadline is not None and self.delays and self.deadline < self.delays[0]:
            problems.append(
                Issue(
                    ("deadline",),
                    f"{format_duration(self.deadline)} is shorter than the first delay "
                    f"{format_duration(self.delays[0])}: no retry could ever happen",
                )
            )
        if problems:
            raise ValidationProblems(problems)
        return self

    @property
    def attempts(self) -> int:
        """Total attempts including the first try: ``max_attempts``, or one per delay plus the first try."""
        return self.max_attempts if self.max_attempts is not None else len(self.delays) + 1

    @property
    def retries(self) -> int:
        """Retries after the first try."""
        return self.attempts - 1

    def tier_index(self, retry: int) -> int | None:
        """The 1-based tier (delay) used for retry number ``retry`` (1 = first retry), or None when exhausted.

        Retries beyond the number of delays reuse the last one.
        """
        if retry < 1:
            raise ValueError(f"retry numbers start at 1, got {retry}")
        if retry > self.retries:
            return None
        return min(retry, len(self.delays))

    def delay_for(self, retry: int) -> float | None:
        """Seconds to wait before retry number ``retry`` (jitter not applied), or None when exhausted."""
        index = self.tier_index(retry)
        return None if index is None else self.delays[index - 1]


class RetryTier(FrozenModel):
    """One retry topic: where records wait ``delay_seconds`` before retry tier ``index`` (1-based)."""

    topic: str
    source: str
    group: str
    index: int = Field(ge=1)
    delay_seconds: float
    suffix: str
