"""``StatusRecorder`` on its own: what it writes for short and long handlers, retries and replayed copies."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from kep.consumers.status import MemoryStatusStore
from kep.consumers.status import recorder as rec
from kep.producers import headers as h
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit


class FakeMessage:
    def __init__(self, headers: list[tuple[str, bytes]]) -> None:
        self._headers = headers

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def topic(self) -> str:
        return "orders"


class FakeContext:
    def __init__(self, msg: FakeMessage, key: str, attempt: int = 1) -> None:
        self.idempotency_key, self.attempt, self.topic = key, attempt, "orders"
        self.headers = msg.headers()


def _state(store: MemoryStatusStore, key: str) -> str | None:
    found = store.events(key)
    return found[0].state if found else None


def test_outcomes_become_states(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rec, "PROCESSING_AFTER_S", 0.05)
    store = MemoryStatusStore(ttl_s=60)
    recorder = rec.StatusRecorder(store, "g", flush_interval_s=0.02)
    never = threading.Event()
    try:
        quick: Any = FakeMessage([(h.IDEMPOTENCY_KEY, b"quick")])
        recorder.started(quick, FakeContext(quick, "quick"))  # type: ignore[arg-type]
        recorder.handled(quick, FakeContext(quick, "quick"), never)  # type: ignore[arg-type]
        wait_until(lambda: _state(store, "quick") == "handled", timeout=5, message="quick handled")

        slow: Any = FakeMessage([])
        recorder.started(slow, FakeContext(slow, "slow"))  # type: ignore[arg-type]
        wait_until(lambda: _state(store, "slow") == "processing", timeout=5, message="a long handler shows")
        recorder.retrying(slow, FakeContext(slow, "slow"), "1s", 1, 123, TimeoutError("x"))  # type: ignore[arg-type]
        wait_until(lambda: _state(store, "slow") == "retrying", timeout=5, message="retrying")
        [record] = store.events("slow")
        assert (record.tier, record.attempt, record.due_ms, record.exception_type) == (
            "1s",
            1,
            123,
            "TimeoutError",
        )

        copy: Any = FakeMessage([(h.REPLAYED_AT, b"1")])
        monkeypatch.setattr(rec, "PROCESSING_AFTER_S", 60.0)
        recorder.started(copy, FakeContext(copy, "copy"))  # type: ignore[arg-type]
        wait_until(lambda: _state(store, "copy") == "replayed", timeout=5, message="a replayed copy shows")
        recorder.dead_lettered(copy, FakeContext(copy, "copy"), ValueError("no"), "fatal", never)  # type: ignore[arg-type]
        wait_until(lambda: _state(store, "copy") == "dead_lettered", timeout=5, message="dead-lettered")
        assert store.events("copy")[0].replayed_at_ms == 1
    finally:
        recorder.close()


def test_batch_members_are_counted_before_the_call_returns() -> None:
    store = MemoryStatusStore(ttl_s=60)
    recorder = rec.StatusRecorder(store, "g")
    never = threading.Event()
    members = [FakeMessage([(h.BATCH_ID, b"b1"), (h.BATCH_SIZE, b"2")]) for _ in range(2)]
    try:
        recorder.handled(members[0], FakeContext(members[0], "m0"), never)  # type: ignore[arg-type]
        recorder.duplicate(members[0], FakeContext(members[0], "m0"), never)  # type: ignore[arg-type]
        [progress] = store.batches("b1")
        assert (progress.handled, progress.pending) == (1, 1)
        recorder.dead_lettered(members[1], FakeContext(members[1], "m1"), ValueError("x"), "fatal", never)  # type: ignore[arg-type]
        [progress] = store.batches("b1")
        assert (progress.finished, progress.dead_lettered) == (True, 1)
        assert progress.announced_ms == 0  # no topology names a BatchCompleted topic: status only
    finally:
        recorder.close()


class _CountingStore(MemoryStatusStore):
    def __init__(self) -> None:
        super().__init__(ttl_s=60)
        self.calls: list[int] = []

    def put_events(self, records: Any) -> None:
        self.calls.append(len(records))
        super().put_events(records)


def test_a_backlog_is_written_in_few_calls() -> None:
    """What came in between two flushes goes to the store in one call (one SQLite transaction), not in calls of
    a few hundred: each call rewrites the pages its rows touch."""
    store = _CountingStore()
    recorder = rec.StatusRecorder(store, "g", flush_interval_s=3600)
    never = threading.Event()
    try:
        for i in range(3000):
            msg: Any = FakeMessage([])
            recorder.handled(msg, FakeContext(msg, f"k{i}"), never)  # type: ignore[arg-type]
        recorder.flush()
        assert store.calls == [3000]
    finally:
        recorder.close()
