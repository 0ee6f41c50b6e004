"""``kep dlq replay``: exact bytes back to the group that dead-lettered them (its first retry topic, from the
topology), exactly once, filters that consume nothing; main topics and forged provenance refused."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
from confluent_kafka.admin import AdminClient

from kep.consumers.dlq import (
    NoReplayPathError,
    NotADeadLetterTopicError,
    ReplayFilter,
    ReplayResult,
    replay,
    replay_group,
    start_replay_progress,
)
from kep.consumers.retry.headers import PROVENANCE_HEADERS, Provenance
from kep.producers import headers as h
from kep.schemas.errors import DecodeError
from kep.topology.loader import load_topology
from kep.topology.settings import KafkaSettings
from tests.dlq.conftest import T0, DeadLetters, committed
from tests.support.kafka import create_topic, read_topic

pytestmark = pytest.mark.integration

Cli = Callable[..., tuple[int, str]]


def _handed_back(
    dead_letters: DeadLetters,
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]]:
    """What the group's first retry topic holds: (key, value, headers) per record, sorted by value."""
    records = read_topic(dead_letters.kafka, dead_letters.retry)
    rows = [(m.key(), m.value(), cast(list[tuple[str, bytes | None]], m.headers() or [])) for m in records]
    return sorted(rows, key=lambda r: r[1] or b"")


def _without_marker(
    rows: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]]:
    """``rows`` without the ``kep-replayed-at`` header every replayed copy carries (read by event status)."""
    return [(k, v, [x for x in headers if x[0] != h.REPLAYED_AT]) for k, v, headers in rows]


def _replay(dead_letters: DeadLetters, **kwargs: Any) -> ReplayResult:
    topology = load_topology(dead_letters.topology_file)
    return replay(
        KafkaSettings(bootstrap_servers=dead_letters.kafka), dead_letters.dlq, topology=topology, **kwargs
    )


@pytest.fixture
def replay_cli(dead_letters: DeadLetters, cli: Cli) -> Cli:
    """``kep dlq replay`` with the fixture's topology."""

    def run(*args: str) -> tuple[int, str]:
        return cli("replay", *args, "--topology", str(dead_letters.topology_file))

    return run


def test_dry_run_counts_and_publishes_nothing(dead_letters: DeadLetters, replay_cli: Cli) -> None:
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)
    dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0)
    dead_letters.add(partition=1, exc=KeyError("sku"), failed_at_ms=T0)

    code, output = replay_cli(dead_letters.dlq, "--dry-run", "--exception-type", "TimeoutError")

    assert code == 0, output
    assert "dry run: nothing sent" in output
    assert re.search(r"would replay\s*│\s*2\s*│", output), output
    assert re.search(r"skipped \(filters; kept for later\)\s*│\s*1\s*│", output), output
    assert _handed_back(dead_letters) == []
    assert committed(dead_letters.kafka, replay_group(dead_letters.dlq), dead_letters.dlq, 2) == {}
    dlq = read_topic(dead_letters.kafka, dead_letters.dlq)
    assert len(dlq) == 3  # no marker written either


def test_replay_hands_exact_bytes_key_and_idempotency_key_back_to_the_group_with_attempts_reset(
    dead_letters: DeadLetters, replay_cli: Cli
) -> None:
    sent = [
        dead_letters.add(partition=0, exc=TimeoutError("gateway"), failed_at_ms=T0),
        dead_letters.add(partition=1, exc=TimeoutError("gateway"), failed_at_ms=T0 + 1),
        dead_letters.add(partition=1, exc=DecodeError("bad"), failed_at_ms=T0 + 2, value=b"\x00corrupt\xff"),
    ]
    before = time.time_ns() // 1_000_000

    code, output = replay_cli(dead_letters.dlq)

    assert code == 0, output
    assert f"to {dead_letters.retry}" in output
    assert read_topic(dead_letters.kafka, dead_letters.source) == []  # never the shared source topic
    handed_back = _handed_back(dead_letters)
    assert all(h.header_int(headers, h.REPLAYED_AT) for _k, _v, headers in handed_back)  # for event status
    handed_back = _without_marker(handed_back)
    expected = sorted(((s["key"], s["value"], s["original_headers"]) for s in sent), key=lambda r: r[1])  # type: ignore[arg-type, return-value]
    assert [(k, v) for k, v, _h in handed_back] == [(k, v) for k, v, _h in expected]  # same key, same bytes
    for (_k, _v, headers), (_ek, _ev, original) in zip(handed_back, expected, strict=True):
        assert [
            (n, v) for n, v in headers if n not in PROVENANCE_HEADERS
        ] == original  # original headers, in order
        provenance = Provenance.from_headers(headers)
        assert provenance is not None
        assert (provenance.original_topic, provenance.consumer_group) == (
            dead_letters.source,
            dead_letters.group,
        )
        assert provenance.attempt == 0  # the retry budget starts over
        assert provenance.due_ms is not None and before <= provenance.due_ms <= time.time_ns() // 1_000_000
        assert provenance.first_failure_ms == provenance.due_ms  # a deadline counts from the replay
    assert {s["event_id"].encode() for s in sent} == {  # type: ignore[attr-defined]
        dict(headers)[h.IDEMPOTENCY_KEY] for _k, _v, headers in handed_back
    }


def test_a_second_replay_sends_nothing(dead_letters: DeadLetters, replay_cli: Cli) -> None:
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)
    dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0)

    first = _replay(dead_letters)
    second = _replay(dead_letters)
    code, output = replay_cli(dead_letters.dlq)

    assert (first.replayed, first.failed) == (2, 0)
    assert (second.scanned, second.matched, second.replayed) == (0, 0, 0)  # the group committed past both
    assert code == 0 and "replayed" in output
    assert len(_handed_back(dead_letters)) == 2
    assert committed(dead_letters.kafka, replay_group(dead_letters.dlq), dead_letters.dlq, 2) == {0: 2, 1: 2}


def test_filtered_out_records_stay_for_a_later_replay_and_replayed_ones_are_not_sent_again(
    dead_letters: DeadLetters,
) -> None:
    dead_letters.add(partition=0, exc=KeyError("sku"), failed_at_ms=T0)  # offset 0: holds partition 0 back
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 1)
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 2)

    timeouts = _replay(dead_letters, filters=ReplayFilter.build(exception_type="builtins.TimeoutError"))
    assert (timeouts.matched, timeouts.replayed, timeouts.skipped) == (2, 2, 1)
    assert timeouts.committed == {}  # offset 0 was skipped, so nothing before it is consumed

    rest = _replay(dead_letters)
    assert (rest.scanned, rest.already_replayed, rest.matched, rest.replayed) == (3, 2, 1, 1)
    assert rest.committed[0] == 5  # 3 dead letters + 2 markers, all done
    assert len(_handed_back(dead_letters)) == 3  # each dead letter exactly once


def test_limit_replays_the_oldest_first_and_a_rerun_takes_the_rest(
    dead_letters: DeadLetters, replay_cli: Cli
) -> None:
    newest = dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 30_000)
    oldest = dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0)
    middle = dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0 + 10_000)

    code, output = replay_cli(dead_letters.dlq, "--limit", "2")
    assert code == 0, output
    assert sorted(v for _k, v, _h in _handed_back(dead_letters)) == sorted([oldest["value"], middle["value"]])  # type: ignore[type-var]

    code, output = replay_cli(dead_letters.dlq, "--limit", "2")
    assert code == 0, output
    assert sorted(v for _k, v, _h in _handed_back(dead_letters)) == sorted(  # type: ignore[type-var]
        [oldest["value"], middle["value"], newest["value"]]
    )


def test_time_window_and_key_filters(dead_letters: DeadLetters, replay_cli: Cli) -> None:
    early = dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)  # 00:00:00
    inside = dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 3_600_000)  # 01:00:00
    dead_letters.add(
        partition=1, exc=TimeoutError(), failed_at_ms=T0 + 7_200_000
    )  # 02:00:00, excluded by --until

    code, output = replay_cli(
        dead_letters.dlq, "--since", "2026-01-01T00:30:00Z", "--until", "2026-01-01T02:00"
    )
    assert code == 0, output
    assert [v for _k, v, _h in _handed_back(dead_letters)] == [inside["value"]]

    code, output = replay_cli(dead_letters.dlq, "--key", early["key"].decode())  # type: ignore[attr-defined]
    assert code == 0, output
    assert sorted(v for _k, v, _h in _handed_back(dead_letters)) == sorted([early["value"], inside["value"]])  # type: ignore[type-var]


def test_records_without_provenance_fail_and_stay(dead_letters: DeadLetters, replay_cli: Cli) -> None:
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0, provenance=False)
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 1)

    code, output = replay_cli(dead_letters.dlq)

    assert code == 1
    assert "no provenance headers" in output
    assert len(_handed_back(dead_letters)) == 1
    assert committed(dead_letters.kafka, replay_group(dead_letters.dlq), dead_letters.dlq, 2) == {}


def test_a_forged_original_topic_or_group_sends_the_event_nowhere(dead_letters: DeadLetters) -> None:
    elsewhere = create_topic(dead_letters.kafka, f"{dead_letters.source}-payments", 1)
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0, original_topic=elsewhere)
    dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0, consumer_group="shipping")

    result = _replay(dead_letters)

    assert (result.matched, result.replayed, result.failed) == (2, 0, 2)
    assert any(f"names topic '{elsewhere}'" in reason and "not sent" in reason for reason in result.reasons)
    assert any("group 'shipping'" in reason for reason in result.reasons)
    assert read_topic(dead_letters.kafka, elsewhere) == []
    assert _handed_back(dead_letters) == [] and read_topic(dead_letters.kafka, dead_letters.source) == []


def test_a_main_or_retry_topic_is_refused_before_anything_is_read(
    dead_letters: DeadLetters, replay_cli: Cli
) -> None:
    code, output = replay_cli(dead_letters.source)
    assert code == 2
    assert f"'{dead_letters.source}' is a main topic, not a dead-letter topic" in output
    assert dead_letters.dlq in output  # says where its dead letters are
    code, output = replay_cli(dead_letters.retry)
    assert code == 2 and "is a retry topic" in output
    with pytest.raises(NotADeadLetterTopicError, match="not a dead-letter topic of the topology"):
        _replay(dead_letters.__class__(**{**dead_letters.__dict__, "dlq": "nope.dlq"}))


def test_sending_elsewhere_takes_an_explicit_option(dead_letters: DeadLetters, replay_cli: Cli) -> None:
    entry = dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)

    code, output = replay_cli(dead_letters.dlq, "--to", dead_letters.source)

    assert code == 0, output
    [(key, value, headers)] = _without_marker(
        [(m.key(), m.value(), m.headers() or []) for m in read_topic(dead_letters.kafka, dead_letters.source)]
    )
    assert (key, value, headers) == (
        entry["key"],
        entry["value"],
        entry["original_headers"],
    )  # as first published
    assert _handed_back(dead_letters) == []


def test_a_group_without_a_retry_topic_needs_the_explicit_option(dead_letters: DeadLetters) -> None:
    topology = load_topology(dead_letters.topology_file)
    idle_dlq = next(
        d.spec.name for d in topology.derived_topics() if d.kind == "dlq" and d.group.startswith("idle-")
    )
    with pytest.raises(NoReplayPathError, match="--to TOPIC"):
        replay(KafkaSettings(bootstrap_servers=dead_letters.kafka), idle_dlq, topology=topology)


def test_a_missing_retry_topic_fails_the_record_without_creating_the_topic(dead_letters: DeadLetters) -> None:
    gone = f"{dead_letters.source}-deleted"
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)

    result = _replay(dead_letters, to=gone)

    assert (result.matched, result.replayed, result.failed) == (1, 0, 1)
    assert f"topic '{gone}' does not exist" in result.reasons[0]
    assert gone not in AdminClient({"bootstrap.servers": dead_letters.kafka}).list_topics(timeout=10).topics


def test_bad_filters_are_refused_before_anything_is_read(dead_letters: DeadLetters, replay_cli: Cli) -> None:
    code, output = replay_cli(dead_letters.dlq, "--since", "yesterday")
    assert code == 2 and "--since 'yesterday'" in output
    code, output = replay_cli(dead_letters.dlq, "--rate", "0")
    assert code == 2 and "--rate" in output


def test_replay_progress_starts_at_the_log_start_once_and_never_moves_a_replay_back(
    dead_letters: DeadLetters,
) -> None:
    settings = KafkaSettings(bootstrap_servers=dead_letters.kafka)
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)
    group = replay_group(dead_letters.dlq)

    assert start_replay_progress(settings, [dead_letters.dlq, "no-such-topic.dlq"]) == [dead_letters.dlq]
    assert committed(dead_letters.kafka, group, dead_letters.dlq, 2) == {0: 0, 1: 0}  # nothing marked done
    assert _replay(dead_letters).replayed == 1  # the replay still takes it
    after = committed(dead_letters.kafka, group, dead_letters.dlq, 2)
    assert start_replay_progress(settings, [dead_letters.dlq]) == []
    assert committed(dead_letters.kafka, group, dead_letters.dlq, 2) == after


def test_replay_json_prints_the_result(dead_letters: DeadLetters, replay_cli: Cli) -> None:
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)

    code, output = replay_cli(dead_letters.dlq, "--dry-run", "--json")

    assert code == 0, output
    result = json.loads(output)
    assert (result["target"], result["dry_run"], result["selected"], result["replayed"]) == (
        dead_letters.retry,
        True,
        1,
        0,
    )
