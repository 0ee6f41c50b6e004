"""Every store keeps the same promises: claim, lease expiry, completion, release, transactions."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kep.consumers.errors import ConfigError, IdempotencyStoreError
from kep.consumers.idempotency import (
    AlreadyCompletedError,
    ClaimState,
    IdempotencyStore,
    MemoryStore,
    open_store,
)
from kep.consumers.idempotency.base import digest
from tests.support.services import require_postgres, require_redis
from tests.support.wait import wait_until

StoreFactory = Callable[..., IdempotencyStore]


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    url = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path}/idem.db",
        "redis": "redis" in request.param and require_redis(),
        "postgres": "postgres" in request.param and require_postgres(),
    }[request.param]
    made: list[IdempotencyStore] = []
    shared: dict[str, IdempotencyStore] = {}

    def make(lease_s: float = 30.0, ttl_s: float = 3600.0) -> IdempotencyStore:
        if request.param == "memory" and "memory" in shared:  # one process: replicas share the object
            base = shared["memory"]
            assert isinstance(base, MemoryStore)
            twin = MemoryStore(namespace, ttl_s=ttl_s, lease_s=lease_s)
            twin._entries, twin._lock = base._entries, base._lock
            made.append(twin)
            return twin
        store = open_store(str(url), namespace, ttl_s=ttl_s, lease_s=lease_s)
        shared.setdefault(request.param, store)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def key() -> str:
    return str(uuid.uuid4())


@pytest.mark.unit
def test_claim_complete_then_done(make_store: StoreFactory) -> None:
    store, k = make_store(), key()
    assert store.claim(k) is ClaimState.NEW
    assert store.claim(k) is ClaimState.NEW  # the owner may claim again (an in-place retry)
    store.complete(k)
    assert store.claim(k) is ClaimState.DONE


@pytest.mark.unit
def test_a_live_claim_of_another_replica_is_busy_until_its_lease_expires(make_store: StoreFactory) -> None:
    a, b, k = make_store(lease_s=1.0), make_store(lease_s=1.0), key()
    assert a.claim(k) is ClaimState.NEW
    assert b.claim(k) is ClaimState.BUSY
    wait_until(lambda: b.claim(k) is ClaimState.NEW, timeout=5, message="lease expiry")
    assert a.claim(k) is ClaimState.BUSY


@pytest.mark.unit
def test_release_lets_another_replica_claim(make_store: StoreFactory) -> None:
    a, b, k = make_store(), make_store(), key()
    assert a.claim(k) is ClaimState.NEW
    b.release(k)  # not b's claim: nothing happens
    assert b.claim(k) is ClaimState.BUSY
    a.release(k)
    assert b.claim(k) is ClaimState.NEW


@pytest.mark.unit
def test_done_keys_expire_after_their_ttl(make_store: StoreFactory) -> None:
    store, k = make_store(ttl_s=0.5), key()
    store.claim(k)
    store.complete(k)
    assert store.claim(k) is ClaimState.DONE
    wait_until(lambda: store.claim(k) is ClaimState.NEW, timeout=5, message="ttl expiry")


@pytest.mark.unit
def test_transaction_completes_the_key_atomically(make_store: StoreFactory) -> None:
    store, k = make_store(), key()
    assert store.claim(k) is ClaimState.NEW
    with store.transaction(k):
        pass
    assert store.claim(k) is ClaimState.DONE


@pytest.mark.unit
def test_a_claim_taken_over_is_a_store_failure_and_only_a_completion_a_duplicate(
    make_store: StoreFactory,
) -> None:
    if isinstance(make_store(), MemoryStore):
        pytest.skip("the in-memory store has no leases across processes to take over")
    a, b, k = make_store(lease_s=0.5), make_store(lease_s=30), key()
    assert a.claim(k) is ClaimState.NEW
    wait_until(lambda: b.claim(k) is ClaimState.NEW, timeout=5, message="takeover")
    with pytest.raises(IdempotencyStoreError, match="claim was lost"), a.transaction(k):
        pass  # b holds it and has not finished: a must wait and ask again, not take it for done
    assert a.claim(k) is ClaimState.BUSY
    with b.transaction(k):
        pass
    with pytest.raises(AlreadyCompletedError), a.transaction(k):
        pass
    assert a.claim(k) is ClaimState.DONE


@pytest.mark.unit
@pytest.mark.parametrize(
    "hostile",
    [b"a\x00b", b"\xff\xfe", "k" * 3000, b"\xff" * 100_000, "\x00", "emoji \U0001f600 key", b""],
    ids=["nul", "not-utf8", "3k", "100k", "text-nul", "emoji", "empty"],
)
def test_any_bytes_of_any_length_are_a_key(make_store: StoreFactory, hostile: str | bytes) -> None:
    store = make_store()
    assert store.claim(hostile) is ClaimState.NEW
    store.complete(hostile)
    assert store.claim(hostile) is ClaimState.DONE
    other = hostile + (b"!" if isinstance(hostile, bytes) else "!")  # type: ignore[operator]
    assert store.claim(other) is ClaimState.NEW
    with store.transaction(other):
        pass
    assert store.claim(other) is ClaimState.DONE


@pytest.mark.unit
def test_text_and_its_utf8_bytes_are_the_same_key(make_store: StoreFactory) -> None:
    store, k = make_store(), key() + "-\u00e9"
    store.claim(k)
    store.complete(k)
    assert store.claim(k.encode()) is ClaimState.DONE


@pytest.mark.unit
def test_redis_connection_dropped_while_watching_is_not_a_duplicate() -> None:
    """redis-py raises WatchError when the connection drops while a key is watched; that is no completion."""
    import redis

    url = require_redis()
    name = f"kep-test-{uuid.uuid4().hex[:8]}"
    store = open_store(f"{url}?client_name={name}", f"ns-{name}", ttl_s=60, lease_s=30)
    admin = redis.Redis.from_url(url)
    k = key()
    try:
        assert store.claim(k) is ClaimState.NEW
        with pytest.raises(IdempotencyStoreError), store.transaction(k) as pipe:
            pipe.rpush(f"effects-{name}", k)
            for client in admin.client_list():
                if client.get("name") == name:
                    admin.client_kill_filter(_id=client["id"])
        assert admin.lrange(f"effects-{name}", 0, -1) == []
        assert store.claim(k) is ClaimState.NEW  # still this worker's claim: run it again
        with store.transaction(k) as pipe:
            pipe.rpush(f"effects-{name}", k)
        assert store.claim(k) is ClaimState.DONE
        assert admin.lrange(f"effects-{name}", 0, -1) == [k.encode()]
    finally:
        admin.delete(f"effects-{name}")
        admin.close()
        store.close()


@pytest.mark.unit
def test_postgres_connection_killed_inside_a_transaction_is_a_store_failure() -> None:
    import psycopg

    dsn = require_postgres()
    store = open_store(dsn, f"ns-{uuid.uuid4().hex[:8]}", ttl_s=60, lease_s=30)
    k = key()
    try:
        assert store.claim(k) is ClaimState.NEW
        with pytest.raises(IdempotencyStoreError, match="connection lost"), store.transaction(k) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            conn.execute("SELECT 1")
        assert store.claim(k) is ClaimState.NEW
        with store.transaction(k):
            pass
        assert store.claim(k) is ClaimState.DONE
    finally:
        store.close()


@pytest.mark.unit
def test_a_handler_sql_error_in_a_transaction_is_the_handlers(make_store: StoreFactory) -> None:
    """A constraint the handler's statement breaks is its failure (retried, dead-lettered), not a store outage
    to wait out forever."""
    store = make_store()
    if not store.supports_transactions or isinstance(store, MemoryStore):
        pytest.skip("no SQL")
    if type(store).__name__ == "RedisStore":
        pytest.skip("redis reports errors of queued commands at EXEC")
    k = key()
    store.claim(k)
    with pytest.raises(Exception) as info, store.transaction(k) as conn:  # noqa: PT011
        conn.execute("SELECT * FROM kep_no_such_table")
    assert not isinstance(info.value, IdempotencyStoreError)
    assert store.claim(k) is ClaimState.NEW


@pytest.mark.unit
def test_namespaces_are_separate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/idem.db"
    billing, shipping = open_store(url, "billing"), open_store(url, "shipping")
    k = key()
    billing.claim(k)
    billing.complete(k)
    assert shipping.claim(k) is ClaimState.NEW
    billing.close()
    shipping.close()


@pytest.mark.unit
def test_sqlite_transaction_rolls_back_handler_writes_on_error(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/idem.db", "g")
    k = key()
    store.claim(k)
    with store.transaction(k) as conn:  # type: ignore[attr-defined]
        conn.execute("CREATE TABLE effects (event_id TEXT)")
    with pytest.raises(RuntimeError), store.transaction(k) as conn:
        conn.execute("INSERT INTO effects VALUES (?)", (k,))
        raise RuntimeError("handler failed")
    rows = sqlite3.connect(tmp_path / "idem.db").execute("SELECT count(*) FROM effects").fetchone()
    assert rows == (0,)
    store.close()


@pytest.mark.unit
def test_unreachable_stores_are_noticed_when_opened() -> None:
    with pytest.raises(IdempotencyStoreError, match="redis") as info:
        open_store("redis://user:s3cret@127.0.0.1:1/0", "g")
    assert "s3cret" not in str(info.value)
    with pytest.raises(IdempotencyStoreError, match="postgres"):
        open_store("postgresql://nobody@127.0.0.1:1/none", "g")


@pytest.mark.unit
def test_unknown_scheme_is_a_clear_error_without_credentials() -> None:
    with pytest.raises(ConfigError, match="unknown scheme 'mongodb'") as info:
        open_store("mongodb://user:secret@host/db", "g")
    assert "secret" not in str(info.value)


@pytest.mark.unit
def test_memory_store_is_bounded() -> None:
    store = MemoryStore("g", ttl_s=60, lease_s=60, max_keys=100, clock=time.monotonic)
    for i in range(1000):
        store.claim(str(i))
        store.complete(str(i))
    assert len(store) <= 100


@pytest.mark.unit
def test_a_wedged_postgres_connection_is_replaced_not_reused_for_ever() -> None:
    """A reset in the middle of a result can leave libpq with a command "already in progress" on a connection
    not marked broken; every later statement then failed the same way and the partitions waited for ever."""
    store = open_store(require_postgres(), f"ns-{uuid.uuid4().hex[:8]}", ttl_s=60, lease_s=30)
    try:
        store._conn().pgconn.send_query(b"SELECT 1")  # type: ignore[attr-defined]  # a result never read
        with pytest.raises(IdempotencyStoreError, match="already in progress"):
            store.claim("k")
        assert store.claim("k") is ClaimState.NEW
    finally:
        store.close()


@pytest.mark.unit
def test_claim_many_answers_as_claim_would_for_each_key(make_store: StoreFactory) -> None:
    a, b, short = make_store(), make_store(), make_store(lease_s=1.0)
    done, theirs, ours, fresh, expired = key(), key(), key(), key(), key()
    a.claim(done)
    a.complete(done)
    b.claim(theirs)
    a.claim(ours)
    short.claim(expired)
    wait_until(lambda: b.claim(expired) is ClaimState.NEW, timeout=5, message="lease expiry")
    b.release(expired)  # gone again: as if its worker had died and its lease run out
    answers = a.claim_many([done, theirs, ours, fresh, expired])
    assert answers == [ClaimState.DONE, ClaimState.BUSY, ClaimState.NEW, ClaimState.NEW, ClaimState.NEW]
    assert b.claim(fresh) is ClaimState.BUSY and b.claim(expired) is ClaimState.BUSY  # a holds them now
    assert a.claim_many([]) == []
    lapsing = key()
    short.claim(lapsing)
    assert b.claim_many([lapsing]) == [ClaimState.BUSY]
    wait_until(lambda: b.claim_many([lapsing]) == [ClaimState.NEW], timeout=5, message="lease expiry")


@pytest.mark.unit
def test_complete_many_and_release_many(make_store: StoreFactory) -> None:
    a, b = make_store(), make_store()
    finished, given_up, not_ours = key(), key(), key()
    assert a.claim_many([finished, given_up]) == [ClaimState.NEW, ClaimState.NEW]
    b.claim(not_ours)
    a.complete_many([finished])
    a.release_many([given_up, not_ours])  # only this worker's claims are given up
    assert b.claim(finished) is ClaimState.DONE
    assert b.claim(given_up) is ClaimState.NEW
    assert a.claim(not_ours) is ClaimState.BUSY
    a.complete_many([])
    a.release_many([])


@pytest.mark.unit
def test_settle_many_gives_up_then_completes_in_one_call(make_store: StoreFactory) -> None:
    """A lane's flush: failed handlers' claims given up, succeeded ones completed; a key in both ends done."""
    a, b = make_store(), make_store()
    finished, given_up, both, not_ours = key(), key(), key(), key()
    assert a.claim_many([finished, given_up, both]) == [ClaimState.NEW] * 3
    b.claim(not_ours)
    a.settle_many([finished, both], [given_up, both, not_ours])
    assert [b.claim(k) for k in (finished, both)] == [ClaimState.DONE, ClaimState.DONE]
    assert b.claim(given_up) is ClaimState.NEW
    assert a.claim(not_ours) is ClaimState.BUSY
    a.settle_many([], [])


@pytest.mark.unit
def test_the_shared_stores_batch_and_take_any_key_bytes(make_store: StoreFactory) -> None:
    store = make_store()
    odd = [b"\x00\xff" * 3, "x" * 100_000, "ü", b"plain"]
    assert store.claim_many(odd) == [ClaimState.NEW] * 4
    store.complete_many(odd)
    assert [store.claim(k) for k in odd] == [ClaimState.DONE] * 4
    assert store.batches is (not isinstance(store, MemoryStore))


@pytest.mark.unit
def test_sqlite_keeps_claims_apart_from_completed_keys(tmp_path: Path) -> None:
    """A key is written once to the big table of completed keys (random pages): its claim lives in the small
    claim table and is gone once the key completes, one by one or in batches."""
    path = tmp_path / "idem.db"
    store = open_store(f"sqlite:///{path}", "ns", ttl_s=3600, lease_s=30)
    db = sqlite3.connect(path)

    def rows(table: str) -> int:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - a test's own names

    try:
        assert store.claim("one") is ClaimState.NEW
        assert store.claim_many(["two", "three"]) == [ClaimState.NEW, ClaimState.NEW]
        assert (rows("kep_idempotency_claim"), rows("kep_idempotency")) == (3, 0)
        store.complete("one")
        store.complete_many(["two", "three"])
        assert (rows("kep_idempotency_claim"), rows("kep_idempotency")) == (0, 3)
        assert store.claim_many(["one", "two", "four"]) == [ClaimState.DONE, ClaimState.DONE, ClaimState.NEW]
        store.release_many(["four"])
        assert rows("kep_idempotency_claim") == 0
    finally:
        db.close()
        store.close()


@pytest.mark.unit
def test_sqlite_claims_an_older_kep_left_in_the_big_table_still_count(tmp_path: Path) -> None:
    path = tmp_path / "idem.db"
    store = open_store(f"sqlite:///{path}", "ns", ttl_s=3600, lease_s=30)

    with sqlite3.connect(path) as db:  # as an earlier kep wrote them: a live claim and an expired one
        db.execute(
            "INSERT INTO kep_idempotency VALUES ('ns', ?, 'gone-worker', ?)",
            (digest("live"), time.time() + 60),
        )
        db.execute(
            "INSERT INTO kep_idempotency VALUES ('ns', ?, 'gone-worker', ?)", (digest("old"), time.time() - 1)
        )
    try:
        assert store.claim("live") is ClaimState.BUSY
        assert store.claim_many(["live", "old"]) == [ClaimState.BUSY, ClaimState.NEW]
        store.complete("old")
        assert store.claim("old") is ClaimState.DONE
    finally:
        store.close()
