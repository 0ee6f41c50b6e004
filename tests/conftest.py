"""Session-wide fixtures: one broker per test session, unique names per test.

Most tests use the shop example (``examples/shop``) as a service would: its package ``shop`` is importable
(here and, through ``PYTHONPATH``, in the worker processes tests start) and its schemas are in
``KEP_SCHEMAS``. Tests of what happens without them remove the variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.support.kafka import create_topic, kafka_cluster, unique
from tests.support.shop import SHOP, SHOP_SCHEMAS

if str(SHOP) not in sys.path:
    sys.path.insert(0, str(SHOP))
os.environ.setdefault("KEP_SCHEMAS", str(SHOP_SCHEMAS))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHOP), os.environ.get("PYTHONPATH")) if p)

# Settings that make group joins fast on the embedded broker and are valid on Apache Kafka too.
FAST_GROUP_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """Bootstrap address of the Kafka-protocol broker for this session."""
    with kafka_cluster() as (bootstrap, _kind):
        yield bootstrap


@pytest.fixture
def topic_factory(kafka: str) -> Callable[..., str]:
    """Create a topic with a unique name: ``topic_factory(partitions=3, prefix="orders")``."""

    def make(partitions: int = 1, prefix: str = "t", config: dict[str, str] | None = None) -> str:
        return create_topic(kafka, unique(prefix), partitions, config)

    return make


@pytest.fixture
def group_id() -> str:
    return unique("g")


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    yield
    from tests.support.processes import kill_leftovers

    kill_leftovers()
