"""``LagProbe`` on the broker: true log ends, the next record's timestamp, caught up, empty, no commit."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from kep.consumers.lag import NO_OFFSET, LagError, LagProbe, PartitionProbe
from tests.lag.support import commit, now_ms, produce, settings

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

N = 50
K = 20


@pytest.fixture
def probe(kafka: str) -> Iterator[LagProbe]:
    with LagProbe(settings(kafka), timeout_s=5.0) as p:
        yield p


@pytest.fixture
def loaded(kafka: str, topic_factory: Callable[..., str]) -> tuple[str, list[int]]:
    """A 2-partition topic: partition 0 holds N records written in 4 batches, one second apart from
    now - 60 s; partition 1 is empty."""
    topic = topic_factory(partitions=2, prefix="lag")
    base = now_ms() - 60_000
    return topic, produce(kafka, topic, 0, [base + i * 1000 for i in range(N)], batches=4)


def test_log_end_is_the_true_high_watermark_even_where_list_offsets_latest_is_wrong(
    probe: LagProbe, loaded: tuple[str, list[int]], kafka_kind: str
) -> None:
    topic, timestamps = loaded
    answer = probe.probe({(topic, 0): K})[(topic, 0)]
    # detected, not configured: the embedded broker's ListOffsets disagrees with a fetched watermark
    assert probe.log_ends_from_fetch is (kafka_kind == "embedded")
    assert answer.log_end == N
    assert answer.lag_messages == N - K
    assert answer.next_timestamp_ms == timestamps[K]
    assert answer.position == K


def test_a_caught_up_position_has_no_next_record(probe: LagProbe, loaded: tuple[str, list[int]]) -> None:
    topic, _ = loaded
    assert probe.probe({(topic, 0): N})[(topic, 0)] == PartitionProbe(N, None, N, 0, 0)


def test_an_empty_partition_answers_log_end_zero_and_no_record(
    probe: LagProbe, loaded: tuple[str, list[int]]
) -> None:
    topic, _ = loaded
    assert probe.probe({(topic, 1): 0})[(topic, 1)] == PartitionProbe(0, None, 0, 0, 0)
    assert probe.probe({(topic, 1): NO_OFFSET})[(topic, 1)] == PartitionProbe(0, None, 0, 0, 0)


def test_no_committed_offset_reads_from_the_log_start(probe: LagProbe, loaded: tuple[str, list[int]]) -> None:
    topic, timestamps = loaded
    answer = probe.probe({(topic, 0): NO_OFFSET})[(topic, 0)]
    assert answer == PartitionProbe(N, timestamps[0], 0, N, 0)


def test_one_consumer_answers_successive_calls_with_fresh_log_ends(
    kafka: str, probe: LagProbe, loaded: tuple[str, list[int]]
) -> None:
    topic, timestamps = loaded
    first = probe.probe({(topic, 0): K, (topic, 1): 0})
    assert first[(topic, 0)].log_end == N and first[(topic, 1)].log_end == 0
    later = produce(kafka, topic, 1, [now_ms() - 5_000, now_ms()])
    produce(kafka, topic, 0, [now_ms()] * 3)
    second = probe.probe({(topic, 0): N - 1, (topic, 1): 0})
    assert second[(topic, 0)] == PartitionProbe(N + 3, timestamps[N - 1], N - 1, 4, 0)
    assert second[(topic, 1)] == PartitionProbe(2, later[0], 0, 2, 0)
    # the same partition again at another offset, and a partition left out is not reported
    third = probe.probe({(topic, 0): N + 3})
    assert third == {(topic, 0): PartitionProbe(N + 3, None, N + 3, 0, 0)}


def test_partitions_that_cannot_answer_are_absent_and_the_call_is_bounded(
    kafka: str, loaded: tuple[str, list[int]]
) -> None:
    topic, _ = loaded
    with LagProbe(settings(kafka), timeout_s=1.0) as short:
        started = time.monotonic()
        answers = short.probe({(topic, 0): K, (topic, 7): 0, ("no-such-topic-lag", 0): 0})
        elapsed = time.monotonic() - started
    assert set(answers) == {(topic, 0)}
    assert elapsed < 3.0


def test_committed_offsets_lists_only_partitions_with_a_commit(
    kafka: str, probe: LagProbe, loaded: tuple[str, list[int]], group_id: str
) -> None:
    topic, _ = loaded
    commit(kafka, group_id, {(topic, 0): K})
    assert probe.committed_offsets(group_id) == {(topic, 0): K}
    assert probe.committed_offsets(group_id, [(topic, 1)]) == {}
    assert probe.committed_offsets(group_id, [(topic, 0), (topic, 1)]) == {(topic, 0): K}


def test_an_empty_request_answers_at_once_and_a_closed_probe_refuses(kafka: str) -> None:
    p = LagProbe(settings(kafka))
    assert p.probe({}) == {}
    p.close()
    p.close()
    with pytest.raises(LagError, match="closed"):
        p.probe({("t", 0): 0})
