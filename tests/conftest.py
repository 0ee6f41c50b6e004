"""Session-wide fixtures: one broker per test run, shared by the xdist workers; unique names per test.

Most tests use the shop example (``examples/shop``) as a service would: its package ``shop`` is importable
(here and, through ``PYTHONPATH``, in the worker processes tests start) and its schemas are in
``KEP_SCHEMAS``. Tests of what happens without them remove the variable.

``kep run`` runs one worker process per core by default; the tests that start it assert on one worker
process's behaviour, so ``KEP_PROCESSES`` is 1 unless a test (``tests/consumers/test_processes.py``) says
otherwise.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.support.kafka import create_topic, kafka_cluster, unique
from tests.support.shop import SHOP, SHOP_SCHEMAS

if str(SHOP) not in sys.path:
    sys.path.insert(0, str(SHOP))
os.environ.setdefault("KEP_SCHEMAS", str(SHOP_SCHEMAS))
os.environ.setdefault("KEP_PROCESSES", "1")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHOP), os.environ.get("PYTHONPATH")) if p)

_BROKER = "kep_broker_stack"


def pytest_configure(config: pytest.Config) -> None:
    """Start the run's broker once, in the controller; the workers inherit its address through the environment."""
    if hasattr(config, "workerinput"):
        return
    stack = contextlib.ExitStack()
    cluster = stack.enter_context(kafka_cluster())
    setattr(config, _BROKER, stack)
    os.environ["KEP_TEST_KAFKA"] = cluster.bootstrap_servers
    os.environ["KEP_TEST_KAFKA_KIND"] = cluster.kind
    os.environ["KEP_TEST_KAFKA_DESCRIPTION"] = cluster.description


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = getattr(config, _BROKER, None)
    if stack is not None:
        stack.close()


def pytest_report_header(config: pytest.Config) -> str:
    return f"kafka broker: {os.environ['KEP_TEST_KAFKA_DESCRIPTION']}"


# Settings that make group joins fast on the embedded broker and are valid on Apache Kafka too.
FAST_GROUP_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


@pytest.fixture(scope="session")
def kafka() -> str:
    """Bootstrap address of the run's broker (see ``pytest_configure``)."""
    return os.environ["KEP_TEST_KAFKA"]


@pytest.fixture(scope="session")
def kafka_kind() -> str:
    """``apache``, ``embedded``, ``testcontainers`` or ``external``: for the few tests where the brokers differ."""
    return os.environ.get("KEP_TEST_KAFKA_KIND", "external")


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
