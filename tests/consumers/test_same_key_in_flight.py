"""One idempotency key runs once at a time in a worker process: the store's claim belongs to the process, so two of
its lanes holding copies of one event (key-ordered lanes with other message keys, or two partitions) must not
both run it. The second waits until the first is completed, then is a duplicate."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.producers.producer import EventProducer
from shop.orders import LineItem, OrderPlaced
from tests.support.runtime import applied_topology, running
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("store", ["sqlite", "memory://"])
@pytest.mark.parametrize("second_copies", ["in order", "reversed"])
def test_copies_of_one_event_in_two_lanes_run_once(
    kafka: str, store: str, second_copies: str, tmp_path: object
) -> None:
    """``reversed``: one lane meets the events in the order the other meets them backwards, so each lane holds
    a key (claimed ahead with its batch) the other waits for; neither may wait for the other's lease."""
    setup = applied_topology(kafka, partitions=1)
    events = [
        OrderPlaced(
            order_id=f"order-{i}", customer_id=str(i), items=[LineItem(sku="S", quantity=1, unit_price_cents=1)],
            amount_cents=1, currency="EUR",
        )
        for i in range(6)
    ]  # fmt: skip
    second = events if second_copies == "in order" else events[::-1]
    with EventProducer(setup.kafka, setup.topology) as producer:  # each event twice, under two message keys
        for copy, batch in (
            ("a", events),
            ("b", second),
        ):  # all on one partition: two key lanes, one key each
            for event in batch:
                producer.publish(event, topic=setup.topic, key=f"copy-{copy}", on_delivery=lambda r, e: None)
    app = App(setup.group, topics=[setup.topic])
    runs: Counter[str] = Counter()
    lock = threading.Lock()

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        with lock:
            runs[event.event_id] += 1
        time.sleep(0.2)  # sleep-ok: a slow effect, so that both copies are in flight together

    url = f"sqlite:///{tmp_path}/keys.db" if store == "sqlite" else store
    with running(app, setup, concurrency="key", workers=8, idempotency_store=url) as worker:
        # well within the claim lease (60 s): a lane waiting for another's lease would miss it
        wait_until(lambda: len(runs) == len(events), timeout=30, message="every event ran")
        wait_until(lambda: worker.in_flight() == 0, timeout=30, message="every copy settled")
    assert max(runs.values()) == 1, f"an event ran more than once: {dict(runs)}"
