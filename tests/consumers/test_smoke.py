import threading

import pytest

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from shop.orders import OrderPlaced
from tests.support.runtime import applied_topology, produce_orders, running
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.embedded]


def test_every_event_is_handled_and_committed(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=3)
    events = produce_orders(setup, 300)
    app = App(setup.group, topics=[setup.topic])
    seen: list[str] = []
    lock = threading.Lock()

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        with lock:
            seen.append(event.event_id)

    with running(app, setup):
        wait_until(lambda: len(seen) >= len(events), timeout=30, message="all handled")
    assert sorted(seen) == sorted(e.event_id for e in events)
