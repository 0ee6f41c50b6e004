"""Replay filters and the replay group's commit position, without a broker."""

from __future__ import annotations

import pytest

from kep.consumers.dlq import DeadLetterRecord, InvalidFilterError, ReplayFilter
from kep.consumers.dlq.replay import _Scan
from kep.consumers.retry.headers import Provenance

pytestmark = pytest.mark.unit

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _record(
    exception_type: str = "builtins.TimeoutError", failed_ms: int = T0, key: bytes = b"k"
) -> DeadLetterRecord:
    provenance = Provenance(
        original_topic="orders", original_partition=0, original_offset=0, original_timestamp_ms=0,
        consumer_group="billing", attempt=1, first_failure_ms=failed_ms, last_failure_ms=failed_ms,
        exception_type=exception_type, exception_message="", exception_traceback="",
    )  # fmt: skip
    return DeadLetterRecord("orders.billing.dlq", 0, 0, 0, key, b"v", (), provenance)


def test_exception_type_matches_the_qualified_or_the_class_name() -> None:
    assert ReplayFilter(exception_type="TimeoutError").matches(_record())
    assert ReplayFilter(exception_type="builtins.TimeoutError").matches(_record())
    assert not ReplayFilter(exception_type="Error").matches(_record())
    assert not ReplayFilter(exception_type="KeyError").matches(_record())


def test_time_window_is_since_inclusive_until_exclusive_and_naive_times_are_utc() -> None:
    window = ReplayFilter.build(since="2026-01-01T00:00:00", until="2026-01-01T01:00:00+00:00")
    assert window.matches(_record(failed_ms=T0))
    assert window.matches(_record(failed_ms=T0 + 3_599_999))
    assert not window.matches(_record(failed_ms=T0 + 3_600_000))
    assert not window.matches(_record(failed_ms=T0 - 1))
    assert ReplayFilter.build(since="2026-01-01T01:00:00+01:00").since_ms == T0


def test_key_filter_compares_exact_bytes() -> None:
    assert ReplayFilter.build(key="o-1").matches(_record(key=b"o-1"))
    assert not ReplayFilter.build(key="o-1").matches(_record(key=b"o-10"))


def test_records_without_provenance_match_only_filters_that_do_not_need_it() -> None:
    bare = DeadLetterRecord("orders.billing.dlq", 0, 0, T0, b"k", b"v", (), None)
    assert ReplayFilter().matches(bare)
    assert not ReplayFilter(exception_type="TimeoutError").matches(bare)
    assert ReplayFilter(exception_type="(no provenance)").matches(bare)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"since": "yesterday"}, "--since 'yesterday'"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "--until 2026-01-01 is not after --since"),
    ],
)
def test_unusable_filters_name_the_option(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(InvalidFilterError, match=match):
        ReplayFilter.build(**kwargs)


def test_the_commit_position_stops_at_the_first_record_not_replayed() -> None:
    scan = _Scan(starts={0: 10, 1: None}, ends={0: 16, 1: 3})
    scan.records = {0: [10, 11, 13, 14], 1: [0, 1, 2]}  # 12 and 15 are markers
    scan.done = {0: {10, 11, 14}, 1: {0, 1, 2}}
    assert scan.watermark(0) == 13  # 13 was skipped by a filter: it holds the position
    assert scan.watermark(1) == 3  # everything done: the end of the partition
    scan.done[0].add(13)
    assert scan.watermark(0) == 16  # past the trailing marker too
