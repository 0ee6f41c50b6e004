"""Routing a failure is pure: a failure in, an outcome value out (no producer, no partition, no offsets)."""

from __future__ import annotations

import random

import pytest

from kep.consumers.outcome import Drop, Forward, Redo, Rerun
from kep.consumers.retry.classify import ErrorClassifier
from kep.consumers.retry.headers import Provenance
from kep.consumers.retry.policy import RetryPolicy
from kep.consumers.retry.router import Failure, Router
from kep.producers import headers as h
from kep.schemas.errors import DecodeError
from kep.topology.model import ConsumerGroupSpec, RetrySpec

pytestmark = pytest.mark.unit

NOW = 1_700_000_000_000
ORIGINAL = [(h.EVENT_TYPE, b"kep.orders.OrderPlaced"), ("custom", b"kept")]


def router(
    *, mode: str = "topics", dead_letter: bool = True, managed: bool = True, tracebacks: bool = True
) -> Router:
    spec = ConsumerGroupSpec(
        name="billing",
        topics=("orders",),
        retry=RetrySpec(delays=("1s", "5s"), mode=mode, dead_letter=dead_letter),
    )
    policies = {"orders": RetryPolicy.from_topology(spec, "orders", rng=random.Random(0))} if managed else {}
    return Router(
        group="billing",
        policies=policies,
        dlq_topics={"orders": spec.dlq_topic("orders")} if managed else {},
        classifier=ErrorClassifier(),
        tracebacks=tracebacks,
        clock_ms=lambda: NOW,
    )


def failure(exc: BaseException, *, attempt: int = 1, tier: str | None = None, **kw: object) -> Failure:
    values: dict[str, object] = {
        "exc": exc,
        "source_topic": "orders",
        "tier": tier,
        "topic": "orders" if tier is None else f"orders.billing.retry.{tier}",
        "partition": 2,
        "offset": 41,
        "timestamp_ms": NOW - 5,
        "headers": ORIGINAL,
        "attempt": attempt,
        "idempotency_key": "evt-1",
    }
    values.update(kw)
    return Failure(**values)  # type: ignore[arg-type]


def test_a_first_failure_goes_to_the_first_tier_with_provenance() -> None:
    outcome = router().route(failure(TimeoutError("slow")))
    assert isinstance(outcome, Forward)
    assert (outcome.topic, outcome.kind, outcome.tier) == ("orders.billing.retry.1s", "retry", "1s")
    assert outcome.dead_letter_topic == "orders.billing.dlq"
    provenance = Provenance.from_headers(outcome.headers)
    assert provenance is not None
    assert (provenance.original_topic, provenance.original_partition, provenance.original_offset) == (
        "orders",
        2,
        41,
    )
    assert provenance.attempt == 1 and provenance.due_ms == NOW + 1000
    assert provenance.exception_type == "builtins.TimeoutError" and provenance.idempotency_key == "evt-1"
    assert ("custom", b"kept") in outcome.headers


def test_the_last_failure_is_dead_lettered() -> None:
    seen = Provenance.from_headers(router().route(failure(TimeoutError("1"))).headers)  # type: ignore[union-attr]
    assert seen is not None
    second = router().route(failure(TimeoutError("2"), attempt=2, tier="1s", provenance=seen))
    assert isinstance(second, Forward) and second.topic == "orders.billing.retry.5s"
    third_seen = Provenance.from_headers(second.headers)
    third = router().route(failure(TimeoutError("3"), attempt=3, tier="5s", provenance=third_seen))
    assert isinstance(third, Forward) and (third.topic, third.kind) == ("orders.billing.dlq", "dead-letter")
    assert third.reason == "attempts-exhausted"
    assert h.header_int(third.headers, h.ATTEMPT) == 3
    assert h.header_bytes(third.headers, h.DUE_TIME) is None


def test_fatal_failures_skip_the_tiers() -> None:
    outcome = router().route(failure(DecodeError("corrupt", raw=b"x"), decoded=False))
    assert isinstance(outcome, Forward) and outcome.kind == "dead-letter" and outcome.reason == "fatal"


def test_dead_letters_disabled_is_a_drop_naming_the_error() -> None:
    outcome = router(dead_letter=False).route(failure(DecodeError("corrupt", raw=b"x")))
    assert isinstance(outcome, Drop) and "dead letters are disabled" in outcome.reason
    assert "corrupt" in outcome.error


def test_blocking_mode_reruns_in_place_keeping_the_first_failure_time() -> None:
    first = router(mode="blocking").route(failure(TimeoutError("1")))
    assert first == Rerun(1.0, "retry-in-place", Redo(attempt=2, first_failure_ms=NOW))
    second = router(mode="blocking").route(failure(TimeoutError("2"), attempt=2, first_failure_ms=NOW - 1000))
    assert isinstance(second, Rerun) and second.redo == Redo(attempt=3, first_failure_ms=NOW - 1000)
    last = router(mode="blocking").route(failure(TimeoutError("3"), attempt=3, first_failure_ms=NOW - 6000))
    assert isinstance(last, Forward) and last.kind == "dead-letter"
    provenance = Provenance.from_headers(last.headers)
    assert provenance is not None and provenance.attempt == 3 and provenance.first_failure_ms == NOW - 6000


def test_a_group_without_a_topology_entry_reruns_retryable_failures_and_drops_fatal_ones() -> None:
    unmanaged = router(managed=False)
    assert unmanaged.route(failure(TimeoutError("x"), attempt=3)) == Rerun(
        2.0, "retry-in-place", Redo(attempt=4)
    )
    assert isinstance(unmanaged.route(failure(DecodeError("bad", raw=b""), decoded=False)), Drop)


def test_an_exception_whose_str_raises_is_still_routed() -> None:
    class Nasty(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    outcome = router().route(failure(Nasty()))
    assert isinstance(outcome, Forward)
    assert h.header_str(outcome.headers, h.EXCEPTION_MESSAGE) == "<unprintable Nasty>"


def test_tracebacks_can_be_left_out_of_the_headers() -> None:
    try:
        raise TimeoutError("slow")
    except TimeoutError as exc:
        with_tb = router().route(failure(exc))
        without = router(tracebacks=False).route(failure(exc))
    assert "raise TimeoutError" in (h.header_str(with_tb.headers, h.EXCEPTION_TRACEBACK) or "")  # type: ignore[union-attr]
    assert h.header_str(without.headers, h.EXCEPTION_TRACEBACK) in (None, "")  # type: ignore[union-attr]


def test_the_last_resort_dead_letters_with_both_errors_or_drops_without_a_topic() -> None:
    outcome = router().last_resort(failure(TimeoutError("slow")), KeyError("bug"))
    assert isinstance(outcome, Forward) and outcome.topic == "orders.billing.dlq"
    message = h.header_str(outcome.headers, h.EXCEPTION_MESSAGE) or ""
    assert "TimeoutError: slow" in message and "routing it failed: builtins.KeyError" in message
    assert ("custom", b"kept") in outcome.headers and h.header_int(outcome.headers, h.ORIGINAL_OFFSET) == 41
    assert isinstance(router(managed=False).last_resort(failure(TimeoutError("x")), KeyError("bug")), Drop)
