"""The intake on a free port in a background thread, against a topology applied on the test broker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kep.ingest import IngestSettings, create_app
from kep.ingest.server import BackgroundServer, uvicorn_config
from kep.ingest.status import status_opener
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings

ORDER: dict[str, Any] = {
    "order_id": "o-1",
    "customer_id": "c-9",
    "items": [{"sku": "SKU-1", "quantity": 2, "unit_price_cents": 600}],
    "amount_cents": 1200,
    "currency": "EUR",
}
ORDER_PATH = "/events/kep.orders.OrderPlaced"


def order(**changes: Any) -> dict[str, Any]:
    return {**ORDER, **changes}


@contextlib.contextmanager
def running_intake(
    topology: Topology, kafka: KafkaSettings, *, status: Any = None, **settings: Any
) -> Iterator[BackgroundServer]:
    """The intake for ``topology`` on 127.0.0.1 and a free port, stopped (drained) on exit."""
    config = IngestSettings(**{"port": 0, "status_store": "none", **settings})
    app = create_app(config, topology, kafka=kafka, status=status, open_status=status_opener(config))
    server = BackgroundServer(uvicorn_config(app, config)).start()
    try:
        yield server
    finally:
        server.stop()
