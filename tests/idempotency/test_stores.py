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
def test_transaction_fails_when_the_claim_was_taken_over(make_store: StoreFactory) -> None:
    if isinstance(make_store(), MemoryStore):
        pytest.skip("the in-memory store has no leases across processes to take over")
    a, b, k = make_store(lease_s=0.5), make_store(lease_s=30), key()
    assert a.claim(k) is ClaimState.NEW
    wait_until(lambda: b.claim(k) is ClaimState.NEW, timeout=5, message="takeover")
    with pytest.raises(AlreadyCompletedError), a.transaction(k):
        pass
    with b.transaction(k):
        pass
    assert a.claim(k) is ClaimState.DONE


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
def test_unreachable_stores_raise_store_errors() -> None:
    redis_store = open_store("redis://127.0.0.1:1/0", "g")
    with pytest.raises(IdempotencyStoreError, match="redis"):
        redis_store.claim("k")
    redis_store.close()
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
