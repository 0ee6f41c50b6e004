"""Which broker the suite runs against, and small helpers to make unique topics and groups on it.

One broker serves a whole test run: the pytest controller starts it (``kafka_cluster``) and hands its address to
the xdist workers through ``KEP_TEST_KAFKA``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support import apache_kafka


def docker_available() -> bool:
    """True when a Docker engine answers on its socket (``DOCKER_HOST`` or the default unix socket)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True  # a remote engine was configured on purpose; let testcontainers try it
    path = host.removeprefix("unix://")
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b" 200 " in sock.recv(64)
        except OSError:
            return False


@dataclass(frozen=True)
class Cluster:
    bootstrap_servers: str
    kind: str  # apache, external, testcontainers, embedded
    description: str  # what the pytest header prints after "kafka broker: "


@contextlib.contextmanager
def kafka_cluster() -> Iterator[Cluster]:
    """The broker a test run uses, in this order.

    ``KEP_TEST_BROKER=embedded`` (the embedded broker, for the suite's marked subset); ``KEP_TEST_KAFKA=host:port``
    (an existing cluster); Apache Kafka from Maven Central where Java and Maven are there; a testcontainers
    ``apache/kafka`` where a Docker engine answers; otherwise the embedded broker.
    """
    external = os.environ.get("KEP_TEST_KAFKA")
    if external:
        yield Cluster(
            external, "external", os.environ.get("KEP_TEST_KAFKA_DESCRIPTION", f"external at {external}")
        )
        return
    wanted = os.environ.get("KEP_TEST_BROKER", "auto")
    if wanted not in ("auto", "apache", "embedded"):
        raise ValueError(f"KEP_TEST_BROKER={wanted!r}: expected auto, apache or embedded")
    if wanted == "apache" or (wanted == "auto" and apache_kafka.can_run()):
        with apache_kafka.apache_kafka() as running:
            yield Cluster(running.bootstrap_servers, "apache", running.describe())
        return
    if wanted == "auto" and os.environ.get("KEP_TEST_DOCKER", "auto") != "off" and docker_available():
        from testcontainers.kafka import KafkaContainer

        version = apache_kafka.kafka_version()
        with KafkaContainer(f"apache/kafka:{version}").with_kraft() as container:
            bootstrap = container.get_bootstrap_server()
            yield Cluster(
                bootstrap, "testcontainers", f"Apache Kafka {version} (KRaft, testcontainers) at {bootstrap}"
            )
        return
    from kep.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield Cluster(broker.bootstrap_servers, "embedded", f"embedded (Tansu) at {broker.bootstrap_servers}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
    )
    futures[name].result(timeout=30)
    return name


def read_records(bootstrap: str, topic: str, count: int, *, timeout: float = 30.0) -> list[Any]:
    """The first ``count`` records of ``topic`` (every partition, from the start), or fewer at the timeout."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("reader"), "enable.auto.commit": False,
         "fetch.wait.max.ms": 10}
    )  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    records.append(msg)
        return records
    finally:
        consumer.close()


def read_topic(
    bootstrap: str, topic: str, *, expected: int | None = None, timeout: float = 20.0
) -> list[Message]:
    """Every record of ``topic``, from the start to the end of every partition (a plain consumer, assigned).

    With ``expected``, waits for that many records first and fails when more arrive. Fails when the end is
    not reached in ``timeout`` seconds.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Message] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while not (len(records) >= (expected or 0) and len(at_end) == len(partitions)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: {len(records)} records, {len(at_end)}/{len(partitions)} partitions at "
                    f"their end after {timeout}s; expected {expected}"
                )
            msg = consumer.poll(0.05)
            if msg is None:
                continue
            error = msg.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition() or 0)
            elif error is not None:
                raise AssertionError(f"{topic}: consumer error {error}")
            else:
                records.append(msg)
                at_end.discard(msg.partition() or 0)
        if expected is not None:
            assert len(records) == expected, f"{topic}: {len(records)} records, expected exactly {expected}"
        return records
    finally:
        consumer.close()
