"""Every limit store runs the same algorithms: GCRA for rates, leases for concurrency, atomically.

The stores take a fake clock here (the time the algorithm sees); concurrency tests use many threads and two
store objects (two replicas) against the same Redis, PostgreSQL or SQLite file.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kep.consumers.limits import LimitStore, LimitStoreError, open_limit_store
from kep.consumers.limits.gcra import gcra, tolerance
from kep.consumers.limits.memory import MemoryLimitStore
from tests.support.services import require_postgres, require_redis

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


StoreFactory = Callable[[], LimitStore]


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FakeClock, StoreFactory]]:
    """A fake clock and a factory of stores sharing one namespace (replicas of one group)."""
    clock = FakeClock()
    namespace = f"limits-{uuid.uuid4().hex[:8]}"
    url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path}/limits.db",
        "redis": "redis" in request.param and require_redis(),
        "postgres": "postgres" in request.param and require_postgres(),
    }[request.param]
    made: list[LimitStore] = []

    def make() -> LimitStore:
        if request.param == "memory" and made:
            return made[0]  # one process: replicas share the object
        store = open_limit_store(str(url), namespace, clock=clock)
        made.append(store)
        return store

    yield clock, make
    for store in made:
        store.close()


def key() -> str:
    return uuid.uuid4().hex


def test_gcra_spaces_starts_by_the_interval_after_the_burst() -> None:
    interval, tol = 0.1, tolerance(0.1, 3)
    tat, now, allowed = None, 100.0, []
    for _ in range(6):
        wait, new = gcra(tat, now, interval, tol)
        if wait == 0:
            allowed.append(round(now, 3))
            tat = new
        else:
            now += wait
    assert allowed == [100.0, 100.0, 100.0, 100.1]  # the burst of 3, then one per interval
    assert gcra(tat, 1000.0, interval, tol) == (0.0, pytest.approx(1000.1))  # idle: a full bucket again


def test_a_rate_allows_the_burst_then_one_start_per_interval(stores: tuple[FakeClock, StoreFactory]) -> None:
    clock, make = stores
    store, k = make(), key()
    interval, tol = 0.02, tolerance(0.02, 5)  # 50/s, burst 5
    assert [store.take(k, interval, tol) for _ in range(5)] == [0.0] * 5
    wait = store.take(k, interval, tol)
    assert wait == pytest.approx(0.02, abs=1e-4)
    clock.advance(wait)
    assert store.take(k, interval, tol) == 0.0
    assert store.take(k, interval, tol) == pytest.approx(0.02, abs=1e-4)
    clock.advance(10.0)  # idle: the bucket is full again
    assert [store.take(k, interval, tol) for _ in range(5)] == [0.0] * 5


def test_keys_and_namespaces_are_separate(stores: tuple[FakeClock, StoreFactory]) -> None:
    _clock, make = stores
    store, a, b = make(), key(), key()
    assert store.take(a, 1.0, 0.0) == 0.0
    assert store.take(a, 1.0, 0.0) > 0
    assert store.take(b, 1.0, 0.0) == 0.0


def test_a_rate_counted_over_a_minute_of_fake_time_never_exceeds_rate_plus_burst(
    stores: tuple[FakeClock, StoreFactory],
) -> None:
    clock, make = stores
    store, k = make(), key()
    interval, burst = 1 / 50, 5
    starts: list[float] = []
    while clock.now < 1_800_000_000.0 + 10:
        wait = store.take(k, interval, tolerance(interval, burst))
        if wait == 0:
            starts.append(clock.now)
        else:
            clock.advance(wait)
    assert len(starts) == pytest.approx(50 * 10 + burst, abs=2)
    assert _max_in_window(starts, 1.0) <= 50 + burst


def test_concurrent_replicas_share_one_rate(stores: tuple[FakeClock, StoreFactory]) -> None:
    """Eight threads on two store objects ask at one fake instant: exactly the burst is allowed."""
    _clock, make = stores
    replicas, k = [make(), make()], key()
    allowed: list[int] = []
    barrier = threading.Barrier(8)

    def ask(n: int) -> None:
        barrier.wait()
        for _ in range(10):
            if replicas[n % 2].take(k, 1.0, tolerance(1.0, 7)) == 0.0:
                allowed.append(n)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 7


def test_concurrency_slots_are_shared_and_given_back(stores: tuple[FakeClock, StoreFactory]) -> None:
    _clock, make = stores
    a, b, k = make(), make(), key()
    assert a.enter(k, 2, 30.0, "h1") == 0.0
    assert b.enter(k, 2, 30.0, "h2") == 0.0
    wait = b.enter(k, 2, 30.0, "h3")
    assert wait == pytest.approx(30.0, abs=0.01)  # the first lease's end, at the latest
    a.leave(k, "h1")
    assert b.enter(k, 2, 30.0, "h3") == 0.0


def test_a_dead_holders_slot_comes_back_when_its_lease_ends(stores: tuple[FakeClock, StoreFactory]) -> None:
    clock, make = stores
    a, b, k = make(), make(), key()
    assert a.enter(k, 1, 5.0, "dead") == 0.0  # never left: its replica was killed
    assert b.enter(k, 1, 5.0, "live") > 0
    clock.advance(5.01)
    assert b.enter(k, 1, 5.0, "live") == 0.0


def test_concurrent_callers_never_hold_more_slots_than_the_limit(
    stores: tuple[FakeClock, StoreFactory],
) -> None:
    _clock, make = stores
    replicas, k, slots = [make(), make()], key(), 3
    lock = threading.Lock()
    holding, most, entered = [0], [0], [0]

    def work(n: int) -> None:
        store = replicas[n % 2]
        for i in range(15):
            holder = f"{n}-{i}"
            while store.enter(k, slots, 30.0, holder) > 0:
                pass  # busy: ask again (the fake clock does not move; slots come back by leave)
            with lock:
                holding[0] += 1
                entered[0] += 1
                most[0] = max(most[0], holding[0])
            with lock:
                holding[0] -= 1
            store.leave(k, holder)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert entered[0] == 90
    assert most[0] <= slots


def test_an_unreachable_store_raises_limit_store_error() -> None:
    store = open_limit_store("redis://127.0.0.1:1/0", "nowhere")
    with pytest.raises(LimitStoreError, match="127.0.0.1:1"):
        store.take(key(), 1.0, 0.0)
    store.close()


def test_memory_store_forgets_nothing_it_still_needs() -> None:
    clock = FakeClock()
    store = MemoryLimitStore("m", clock=clock)
    assert store.take("k", 1.0, 0.0) == 0.0
    assert store.take("k", 1.0, 0.0) == pytest.approx(1.0)


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_purging_full_buckets_keeps_every_limit_in_force(
    stores: tuple[FakeClock, StoreFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, make = stores
    store = make()
    module = __import__(type(store).__module__, fromlist=["PURGE_EVERY"])
    if not hasattr(module, "PURGE_EVERY"):
        pytest.skip(f"{type(store).__name__} forgets full buckets by itself")
    monkeypatch.setattr(module, "PURGE_EVERY", 2)
    idle, busy = key(), key()
    assert store.take(idle, 1.0, 0.0) == 0.0
    assert store.take(busy, 600.0, 0.0) == 0.0  # next start in ten minutes
    clock.advance(120)  # idle's bucket is full again: its row may go
    for _ in range(4):
        store.take(key(), 1.0, 0.0)
    assert store.take(busy, 600.0, 0.0) == pytest.approx(480.0, abs=0.01)
    assert store.take(idle, 1.0, 0.0) == 0.0


def test_postgres_slots_come_back_after_their_rows_were_removed() -> None:
    import psycopg

    dsn = require_postgres()
    namespace, k = f"limits-{uuid.uuid4().hex[:8]}", key()
    store = open_limit_store(dsn, namespace)
    try:
        assert store.enter(k, 1, 30.0, "a") == 0.0
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM kep_limit_slot WHERE namespace = %s", (namespace,))
        assert store.enter(k, 1, 30.0, "b") > 0  # asked while the rows were missing: made again next time
        assert store.enter(k, 1, 30.0, "b") == 0.0
    finally:
        store.close()


def test_sqlite_limits_wait_for_the_files_writers_lock_and_share_its_transactions(tmp_path: Path) -> None:
    """A decision waits on the idempotency file's writers' lock (woken when a lane's transaction ends, not after
    a sleep in SQLite's busy handler) and goes into the transaction of the writes waiting beside it."""
    from kep.consumers.idempotency.base import ClaimState
    from kep.consumers.idempotency.sqlite import SqliteStore
    from tests.support.wait import wait_until

    path = tmp_path / "idempotency.db"
    keys = SqliteStore(path, "group", ttl_s=60, lease_s=30)
    limits = open_limit_store(f"sqlite:///{path}", "group-limits")
    decided = threading.Event()
    try:
        assert keys.claim("held") is ClaimState.NEW
        with keys.transaction("held"):  # a handler's transaction holds the file
            thread = threading.Thread(target=lambda: (limits.take("k", 1.0, 0.0), decided.set()), daemon=True)
            thread.start()
            file = keys._file
            assert file is not None
            wait_until(lambda: len(file._queued) == 1, timeout=10, message="the decision queued on the lock")
            assert not decided.is_set()
        assert decided.wait(5)  # at once: no busy-handler sleep, no 30 s timeout
        assert limits.take("k", 1.0, 0.0) > 0  # the first take was committed: the bucket is full
    finally:
        limits.close()
        keys.close()
