"""The retry policy: attempts, tiers, deadline, jitter, fatal failures, disabled dead letters, blocking."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from kep.consumers.errors import ConfigError
from kep.consumers.retry.classify import ErrorClassifier
from kep.consumers.retry.headers import Provenance
from kep.consumers.retry.policy import DeadLetter, DecisionKind, Drop, Retry, RetryPolicy
from kep.schemas.errors import DecodeError
from kep.topology.model import ConsumerGroupSpec, RetrySpec

pytestmark = pytest.mark.unit

T0 = 1_700_000_000_000


@dataclass(frozen=True)
class Tier:
    topic: str
    delay_seconds: float
    index: int
    suffix: str


TIERS = [
    Tier("orders.billing.retry.1s", 1.0, 1, "1s"),
    Tier("orders.billing.retry.10s", 10.0, 2, "10s"),
    Tier("orders.billing.retry.1m", 60.0, 3, "1m"),
]


def _seen(attempt: int, first_failure_ms: int = T0) -> Provenance:
    """Provenance carried by a retry record after ``attempt`` failures."""
    return Provenance(
        original_topic="orders",
        original_partition=0,
        original_offset=1,
        original_timestamp_ms=T0 - 5,
        consumer_group="billing",
        attempt=attempt,
        first_failure_ms=first_failure_ms,
        last_failure_ms=first_failure_ms,
        exception_type="builtins.TimeoutError",
        exception_message="",
        exception_traceback="",
    )


def test_each_failure_moves_to_the_next_tier_and_the_last_one_dead_letters() -> None:
    policy = RetryPolicy(tiers=TIERS)
    assert policy.max_attempts == 4
    first = policy.decide(None, TimeoutError(), T0)
    assert first == Retry(tier=TIERS[0], due_ms=T0 + 1_000, attempt=1)
    second = policy.decide(_seen(1), TimeoutError(), T0 + 2_000)
    assert second == Retry(tier=TIERS[1], due_ms=T0 + 12_000, attempt=2)
    third = policy.decide(_seen(2), TimeoutError(), T0 + 20_000)
    assert third == Retry(tier=TIERS[2], due_ms=T0 + 80_000, attempt=3)
    assert policy.decide(_seen(3), TimeoutError(), T0 + 90_000) == DeadLetter("attempts-exhausted", attempt=4)


def test_max_attempts_counts_the_first_try_and_reuses_the_last_tier() -> None:
    policy = RetryPolicy(tiers=TIERS[:2], max_attempts=5)
    tiers = []
    for failed in range(1, 5):
        decision = policy.decide(None if failed == 1 else _seen(failed - 1), TimeoutError(), T0)
        assert isinstance(decision, Retry) and decision.attempt == failed
        tiers.append(decision.tier)
    assert tiers == [TIERS[0], TIERS[1], TIERS[1], TIERS[1]]
    assert policy.decide(_seen(4), TimeoutError(), T0) == DeadLetter("attempts-exhausted", attempt=5)


def test_without_tiers_the_first_failure_is_dead_lettered() -> None:
    assert RetryPolicy().decide(None, TimeoutError(), T0) == DeadLetter("attempts-exhausted", attempt=1)
    one_try = RetryPolicy(tiers=TIERS, max_attempts=1)
    assert one_try.decide(None, TimeoutError(), T0).kind is DecisionKind.DEAD_LETTER


def test_fatal_failures_skip_the_retries() -> None:
    policy = RetryPolicy(tiers=TIERS, classifier=ErrorClassifier(fatal=("builtins.KeyError",)))
    assert policy.decide(None, DecodeError("corrupt", raw=b"x"), T0) == DeadLetter("fatal", attempt=1)
    assert policy.decide(_seen(1), KeyError("sku"), T0) == DeadLetter("fatal", attempt=2)


def test_deadline_is_measured_from_the_first_failure() -> None:
    policy = RetryPolicy(tiers=TIERS, deadline="30s")
    assert isinstance(policy.decide(None, TimeoutError(), T0), Retry)
    # second failure 5 s after the first: due at +15 s, inside the 30 s budget
    assert isinstance(policy.decide(_seen(1), TimeoutError(), T0 + 5_000), Retry)
    # third failure at +20 s: the 1 m tier would be due at +80 s, past the deadline
    assert policy.decide(_seen(2), TimeoutError(), T0 + 20_000) == DeadLetter("deadline-exceeded", attempt=3)
    # a record that first failed long ago is out of budget whatever the tier
    long_ago = _seen(1, first_failure_ms=T0 - 60_000)
    assert policy.decide(long_ago, TimeoutError(), T0) == DeadLetter("deadline-exceeded", attempt=2)


def test_jitter_only_lengthens_the_delay_and_is_reproducible_with_a_seed() -> None:
    policy = RetryPolicy(tiers=TIERS, jitter=0.5, rng=random.Random(7))
    dues = [policy.due_ms(T0, 2) for _ in range(2_000)]
    assert min(dues) >= T0 + 10_000
    assert max(dues) <= T0 + 15_000
    assert max(dues) - min(dues) > 4_000  # spread over the whole window
    again = RetryPolicy(tiers=TIERS, jitter=0.5, rng=random.Random(7))
    assert [again.due_ms(T0, 2) for _ in range(2_000)] == dues


def test_disabled_dead_letters_drop_instead() -> None:
    policy = RetryPolicy(tiers=TIERS[:1], dead_letter=False)
    assert isinstance(policy.decide(None, TimeoutError(), T0), Retry)
    assert policy.decide(_seen(1), TimeoutError(), T0) == Drop("attempts-exhausted", attempt=2)
    assert policy.decide(None, DecodeError("corrupt"), T0) == Drop("fatal", attempt=1)


def test_blocking_mode_retries_in_place_with_its_backoff_sequence() -> None:
    policy = RetryPolicy(mode="blocking", delays=["1s", "5s"], max_attempts=5, tiers=TIERS)
    assert policy.tiers == ()
    assert policy.blocking_delays() == [1.0, 5.0, 5.0, 5.0]
    decision = policy.decide(None, TimeoutError(), T0)
    assert decision == Retry(tier=None, due_ms=T0 + 1_000, attempt=1)
    assert policy.decide(_seen(4), TimeoutError(), T0) == DeadLetter("attempts-exhausted", attempt=5)


def test_from_topology_uses_the_group_tiers_and_per_topic_overrides() -> None:
    group = ConsumerGroupSpec(
        name="billing",
        topics=("orders", "payments"),
        retry=RetrySpec(delays=("1s", "10s"), jitter=0.1, fatal_exceptions=("builtins.KeyError",)),
        topic_retry={"payments": RetrySpec(delays=("2s",), mode="blocking", max_attempts=3, deadline="1m")},
    )
    orders = RetryPolicy.from_topology(group, "orders", rng=random.Random(1))
    decision = orders.decide(None, TimeoutError(), T0)
    assert isinstance(decision, Retry) and decision.tier is not None
    assert decision.tier.topic == "orders.billing.retry.1s"
    assert T0 + 1_000 <= decision.due_ms <= T0 + 1_100
    assert orders.decide(None, KeyError("x"), T0) == DeadLetter("fatal", attempt=1)

    payments = RetryPolicy.from_topology(group, "payments")
    assert payments.mode == "blocking" and payments.blocking_delays() == [2.0, 2.0]
    assert payments.deadline_ms == 60_000
    assert payments.decide(None, TimeoutError(), T0) == Retry(tier=None, due_ms=T0 + 2_000, attempt=1)


def test_the_injected_clock_is_used_when_no_time_is_given() -> None:
    policy = RetryPolicy(tiers=TIERS, clock_ms=lambda: T0)
    assert policy.decide(None, TimeoutError()) == Retry(tier=TIERS[0], due_ms=T0 + 1_000, attempt=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"jitter": 1.5}, "jitter 1.5"),
        ({"max_attempts": 0, "tiers": TIERS}, "max_attempts 0"),
        ({"mode": "later"}, "mode 'later'"),
        ({"deadline": "soon"}, "deadline 'soon'"),
        ({"delays": [-1.0], "mode": "blocking"}, "delay -1.0"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_value(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
