"""Two ``kep run`` workers whose handler publishes a follow-up event with ``ctx.publish``, each running the outbox
relay, killed with SIGKILL at random moments and restarted, while the relay also kills its own process at its
three fault points (``KEP_OUTBOX_TEST_CRASH``: rows read; records produced, not committed; published, not marked
sent). At the end the follow-up topic holds exactly one record per source event (read_committed), in order per
key. On Apache Kafka: the relay's exactly-once mode is what is proved."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from kep.producers import headers as h
from kep.producers.producer import EventProducer
from shop.orders import OrderPlaced
from shop.samples import sample_events
from tests.outbox.support import Database, OutboxSetup, open_database, outbox_topology, read_topic
from tests.support.processes import WorkerProcess, worker_env, write_topology

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SIZES = {"postgres": 10_000, "sqlite": 10_000}
KEYS = {"postgres": 1_000, "sqlite": 1_000}  # orders per key: 10
PARTITIONS = 6
RANDOM_KILLS = 4
CRASH_POINTS = "before-publish:0.005,in-transaction:0.01,after-publish:0.1"


@pytest.fixture(params=["postgres", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path, kafka_kind: str) -> Iterator[Database]:
    if kafka_kind == "embedded":
        pytest.skip("exactly once needs Kafka transactions; the embedded broker shows aborted ones")
    yield from open_database(request.param, tmp_path)


def source_orders(n: int, keys: int) -> list[OrderPlaced]:
    """``n`` orders over ``keys`` order ids, several per key, in the order they are produced."""
    base = [e for e in sample_events(n, seed=11, kind="orders") if isinstance(e, OrderPlaced)]
    return [o.model_copy(update={"order_id": f"order-{i % keys:05d}"}) for i, o in enumerate(base)]


def workers(setup: OutboxSetup, db: Database, tmp_path: Path) -> list[WorkerProcess]:
    topology = write_topology(setup.topology, tmp_path / "topology.yaml")
    args = ["--topology", str(topology), "-b", setup.kafka.bootstrap_servers]
    env = worker_env(
        KEP_TEST_TOPIC=setup.topic,
        KEP_TEST_GROUP=setup.group,
        KEP_TEST_FOLLOW_TOPIC=setup.follow,
        KEP_TEST_EFFECTS=db.effects,
        KEP_IDEMPOTENCY_STORE=db.url,
        KEP_IDEMPOTENCY_LEASE_S=5,
        KEP_OUTBOX_TABLE=db.table,
        KEP_OUTBOX_BATCH_SIZE=100,
        KEP_OUTBOX_LOCK_RETRY_S=0.5,
        KEP_OUTBOX_TEST_CRASH=CRASH_POINTS,
        KEP_OUTBOX_DELIVERY="exactly-once",
    )
    return [WorkerProcess("tests.apps.outbox:app", args, env, tmp_path / f"worker-{i}.log") for i in range(2)]


def test_kill9_of_workers_and_relays_leaves_exactly_one_follow_up_per_event_in_order(
    kafka: str, tmp_path: Path, db: Database
) -> None:
    n = SIZES[db.kind]
    setup = outbox_topology(kafka, partitions=PARTITIONS)
    sources = source_orders(n, KEYS[db.kind])
    with EventProducer(setup.kafka, setup.topology) as producer:
        for order in sources:
            producer.publish(order, topic=setup.topic, on_delivery=lambda report, error: None)
        assert producer.flush(60) == 0

    def effects() -> int:
        try:
            return db.count(f"SELECT count(*) FROM {db.effects}")
        except Exception:  # noqa: BLE001 - the first worker has not created the table yet (SQLite)
            return 0

    def unsent() -> int:
        try:
            return db.count(f"SELECT count(*) FROM {db.table} WHERE sent_at IS NULL")
        except Exception:  # noqa: BLE001
            return -1

    def done() -> bool:
        return effects() >= n and unsent() == 0

    procs = [w.start() for w in workers(setup, db, tmp_path)]
    rng = random.Random(5)
    kills = restarts = 0
    started = time.monotonic()
    try:
        deadline = time.monotonic() + 600
        next_kill = time.monotonic() + rng.uniform(1.5, 3.5)
        while not done():
            assert time.monotonic() < deadline, f"not done in time: {effects()} effects, {unsent()} unsent"
            for proc in procs:
                if not proc.alive:  # a relay's fault point killed it: restart
                    proc.start()
                    restarts += 1
            if kills < RANDOM_KILLS and time.monotonic() >= next_kill:
                victim = rng.choice(procs)
                if victim.alive:
                    victim.kill9()
                victim.start()
                kills += 1
                next_kill = time.monotonic() + rng.uniform(1.5, 3.5)
            time.sleep(0.2)  # sleep-ok: the polling interval of the bounded loop above
    finally:
        codes = [p.terminate(60) for p in procs]
    elapsed = time.monotonic() - started
    logs = "".join(p.log_path.read_text(errors="replace") for p in procs)
    crashes = {
        point: logs.count(f"test crash at {point}")
        for point in ("before-publish", "in-transaction", "after-publish")
    }
    print(
        f"{db.kind}: {n} events in {elapsed:.1f}s, {kills} kill -9, relay crashes {crashes}, {restarts} restarts"
    )

    assert db.count(f"SELECT count(*) FROM {db.table}") == n, "an event was written to the outbox twice"
    records = read_topic(kafka, setup.follow, n, timeout_s=120)
    causes = [h.header_str(r.headers(), h.CAUSATION_ID) for r in records]
    assert len(set(causes)) == n, "an event has no follow-up"
    assert len(records) == n, f"{len(records) - n} follow-up events were published twice"
    order_of: dict[str, list[str]] = defaultdict(list)
    for order in sources:
        order_of[order.order_id].append(order.event_id)
    published: dict[str, list[str]] = defaultdict(list)
    for record, cause in zip(records, causes, strict=True):
        published[record.key().decode()].append(cause or "")
    assert published == order_of, "follow-up events of one key out of order"
    assert kills >= 1 and crashes["after-publish"] >= 1, (kills, crashes)
    assert all(code in (0, -15) for code in codes), [p.log() for p in procs]
