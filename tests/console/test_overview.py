"""The groups page's model from a lag snapshot and the topology, without a broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kep.console.index import DeadLetterIndex
from kep.console.overview import build_overview
from kep.consumers.lag import GroupLag, LagSnapshot, PartitionLag, Status
from kep.topology.model import ConsumerGroupSpec, RetrySpec, TopicSpec, Topology
from kep.topology.settings import KafkaSettings

pytestmark = pytest.mark.unit

TOPOLOGY = Topology(
    topics=(TopicSpec(name="orders", partitions=2),),
    groups=(
        ConsumerGroupSpec(name="billing", topics=("orders",), retry=RetrySpec(delays=("1s", "10s"))),
        ConsumerGroupSpec(name="shipping", topics=("orders",)),
    ),
)


@pytest.fixture
def index() -> Iterator[DeadLetterIndex]:
    found = DeadLetterIndex(":memory:", KafkaSettings(), None)
    yield found
    found.close()


def test_groups_of_the_topology_then_of_the_cluster_with_tier_backlog(index: DeadLetterIndex) -> None:
    billing = GroupLag(
        "billing",
        "STABLE",
        2,
        (
            PartitionLag("orders", 0, 10, 10, 25, 15, 4.5, Status.WARN),
            PartitionLag("orders", 1, 3, 3, 3, 0, 0.0),
            PartitionLag("orders.billing.retry.10s", 0, 1, 1, 8, 7, 9.0),
        ),
        status=Status.WARN,
    )
    other = GroupLag("audit", "EMPTY", 0, (PartitionLag("orders", 0, 25, 25, 25, 0, 0.0),))
    replay = GroupLag("kep-dlq-replay.orders.billing.dlq", "EMPTY", 0, ())
    snapshot = LagSnapshot(1_700_000_000.0, 0.1, (billing, other, replay))

    overview = build_overview(TOPOLOGY, snapshot, index)

    assert [g.name for g in overview.groups] == ["billing", "shipping", "audit"]
    first, absent, extra = overview.groups
    assert (first.status, first.members, first.declared) == ("WARN", "2", True)
    (orders,) = first.topics
    assert (orders.lag_messages, orders.max_lag_seconds) == (15, 4.5)
    assert [(t.delay, t.backlog) for t in orders.tiers] == [("1s", None), ("10s", 7)]
    assert orders.retry_backlog == 7
    assert orders.dlq == "orders.billing.dlq" and orders.dead_letters is not None
    assert orders.dead_letters.pending == 0
    assert (absent.status, absent.state) == ("ABSENT", "no offsets on the cluster")
    assert absent.topics[0].dlq == "orders.shipping.dlq" and absent.topics[0].partitions == ()
    assert (extra.declared, [t.source for t in extra.topics]) == (False, ["orders"])


def test_before_the_first_poll_every_declared_group_is_absent(index: DeadLetterIndex) -> None:
    overview = build_overview(TOPOLOGY, None, index)
    assert [g.status for g in overview.groups] == ["ABSENT", "ABSENT"]
    assert overview.taken_at is None
