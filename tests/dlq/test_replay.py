"""``kep dlq replay``: exact bytes back to the original topic, exactly once, filters that consume nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

import pytest
from confluent_kafka.admin import AdminClient

from kep.consumers.dlq import ReplayFilter, replay, replay_group
from kep.consumers.retry.headers import PROVENANCE_HEADERS
from kep.producers import headers as h
from kep.schemas.errors import DecodeError
from kep.topology.settings import KafkaSettings
from tests.dlq.conftest import T0, DeadLetters, committed
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

Cli = Callable[..., tuple[int, str]]


def _original(
    dead_letters: DeadLetters,
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]]:
    """What the source topic holds: (key, value, headers) per record, sorted by value."""
    records = read_topic(dead_letters.kafka, dead_letters.source)
    rows = [(m.key(), m.value(), cast(list[tuple[str, bytes | None]], m.headers() or [])) for m in records]
    return sorted(rows, key=lambda r: r[1] or b"")


def test_dry_run_counts_and_publishes_nothing(dead_letters: DeadLetters, cli: Cli) -> None:
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)
    dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0)
    dead_letters.add(partition=1, exc=KeyError("sku"), failed_at_ms=T0)

    code, output = cli("replay", dead_letters.dlq, "--dry-run", "--exception-type", "TimeoutError")

    assert code == 0, output
    assert "dry run: nothing sent" in output
    assert re.search(r"would replay\s*│\s*2\s*│", output), output
    assert re.search(r"skipped \(filters; kept for later\)\s*│\s*1\s*│", output), output
    assert _original(dead_letters) == []
    assert committed(dead_letters.kafka, replay_group(dead_letters.dlq), dead_letters.dlq, 2) == {}
    dlq = read_topic(dead_letters.kafka, dead_letters.dlq)
    assert len(dlq) == 3  # no marker written either


def test_replay_republishes_exact_bytes_key_and_idempotency_key_with_attempts_reset(
    dead_letters: DeadLetters, cli: Cli
) -> None:
    sent = [
        dead_letters.add(partition=0, exc=TimeoutError("gateway"), failed_at_ms=T0),
        dead_letters.add(partition=1, exc=TimeoutError("gateway"), failed_at_ms=T0 + 1),
        dead_letters.add(partition=1, exc=DecodeError("bad"), failed_at_ms=T0 + 2, value=b"\x00corrupt\xff"),
    ]

    code, output = cli("replay", dead_letters.dlq)

    assert code == 0, output
    copies = _original(dead_letters)
    assert all(h.header_int(headers, h.REPLAYED_AT) for _k, _v, headers in copies)  # marked for event status
    republished = [(k, v, [x for x in headers if x[0] != h.REPLAYED_AT]) for k, v, headers in copies]
    expected = sorted(((s["key"], s["value"], s["original_headers"]) for s in sent), key=lambda r: r[1])  # type: ignore[arg-type, return-value]
    assert republished == expected  # same key, same bytes, original headers (idempotency key incl.) in order
    for _key, _value, headers in republished:
        names = {name for name, _ in headers}
        assert not names & PROVENANCE_HEADERS  # kep-attempt and the other provenance are gone: attempts reset
        assert h.IDEMPOTENCY_KEY in names
    assert {s["event_id"].encode() for s in sent} == {  # type: ignore[attr-defined]
        dict(headers)[h.IDEMPOTENCY_KEY] for _k, _v, headers in republished
    }


def test_a_second_replay_sends_nothing(dead_letters: DeadLetters, cli: Cli) -> None:
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)
    dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0)
    settings = KafkaSettings(bootstrap_servers=dead_letters.kafka)

    first = replay(settings, dead_letters.dlq)
    second = replay(settings, dead_letters.dlq)
    code, output = cli("replay", dead_letters.dlq)

    assert (first.replayed, first.failed) == (2, 0)
    assert (second.scanned, second.matched, second.replayed) == (0, 0, 0)  # the group committed past both
    assert code == 0 and "replayed" in output
    assert len(_original(dead_letters)) == 2
    assert committed(dead_letters.kafka, replay_group(dead_letters.dlq), dead_letters.dlq, 2) == {0: 2, 1: 2}


def test_filtered_out_records_stay_for_a_later_replay_and_replayed_ones_are_not_sent_again(
    dead_letters: DeadLetters,
) -> None:
    settings = KafkaSettings(bootstrap_servers=dead_letters.kafka)
    dead_letters.add(partition=0, exc=KeyError("sku"), failed_at_ms=T0)  # offset 0: holds partition 0 back
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 1)
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 2)

    timeouts = replay(
        settings, dead_letters.dlq, filters=ReplayFilter.build(exception_type="builtins.TimeoutError")
    )
    assert (timeouts.matched, timeouts.replayed, timeouts.skipped) == (2, 2, 1)
    assert timeouts.committed == {}  # offset 0 was skipped, so nothing before it is consumed

    rest = replay(settings, dead_letters.dlq)
    assert (rest.scanned, rest.already_replayed, rest.matched, rest.replayed) == (3, 2, 1, 1)
    assert rest.committed[0] == 5  # 3 dead letters + 2 markers, all done
    assert len(_original(dead_letters)) == 3  # each dead letter exactly once


def test_limit_replays_the_oldest_first_and_a_rerun_takes_the_rest(
    dead_letters: DeadLetters, cli: Cli
) -> None:
    newest = dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 30_000)
    oldest = dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0)
    middle = dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0 + 10_000)

    code, output = cli("replay", dead_letters.dlq, "--limit", "2")
    assert code == 0, output
    assert sorted(v for _k, v, _h in _original(dead_letters)) == sorted([oldest["value"], middle["value"]])  # type: ignore[type-var]

    code, output = cli("replay", dead_letters.dlq, "--limit", "2")
    assert code == 0, output
    assert sorted(v for _k, v, _h in _original(dead_letters)) == sorted(  # type: ignore[type-var]
        [oldest["value"], middle["value"], newest["value"]]
    )


def test_time_window_and_key_filters(dead_letters: DeadLetters, cli: Cli) -> None:
    early = dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0)  # 00:00:00
    inside = dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 3_600_000)  # 01:00:00
    dead_letters.add(
        partition=1, exc=TimeoutError(), failed_at_ms=T0 + 7_200_000
    )  # 02:00:00, excluded by --until

    code, output = cli(
        "replay", dead_letters.dlq, "--since", "2026-01-01T00:30:00Z", "--until", "2026-01-01T02:00"
    )
    assert code == 0, output
    assert [v for _k, v, _h in _original(dead_letters)] == [inside["value"]]

    code, output = cli("replay", dead_letters.dlq, "--key", early["key"].decode())  # type: ignore[attr-defined]
    assert code == 0, output
    assert sorted(v for _k, v, _h in _original(dead_letters)) == sorted([early["value"], inside["value"]])  # type: ignore[type-var]


def test_records_without_provenance_fail_and_stay(dead_letters: DeadLetters, cli: Cli) -> None:
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0, provenance=False)
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0 + 1)

    code, output = cli("replay", dead_letters.dlq)

    assert code == 1
    assert "no provenance headers" in output
    assert len(_original(dead_letters)) == 1
    assert committed(dead_letters.kafka, replay_group(dead_letters.dlq), dead_letters.dlq, 2) == {}


def test_a_missing_original_topic_fails_the_record_without_creating_the_topic(
    dead_letters: DeadLetters,
) -> None:
    gone = f"{dead_letters.source}-deleted"
    dead_letters.add(partition=0, exc=TimeoutError(), failed_at_ms=T0, original_topic=gone)

    result = replay(KafkaSettings(bootstrap_servers=dead_letters.kafka), dead_letters.dlq)

    assert (result.matched, result.replayed, result.failed) == (1, 0, 1)
    assert f"original topic '{gone}' does not exist" in result.reasons[0]
    assert gone not in AdminClient({"bootstrap.servers": dead_letters.kafka}).list_topics(timeout=10).topics


def test_bad_filters_are_refused_before_anything_is_read(dead_letters: DeadLetters, cli: Cli) -> None:
    code, output = cli("replay", dead_letters.dlq, "--since", "yesterday")
    assert code == 2 and "--since 'yesterday'" in output
    code, output = cli("replay", dead_letters.dlq, "--rate", "0")
    assert code == 2 and "--rate" in output
