"""What exists on the cluster: topics, consumer groups, retry and dead-letter topics, and reconciling them.

>>> from kep.topology import load_topology, schema_registry
>>> topology = load_topology("examples/shop/topology.yaml")  # or $KEP_TOPOLOGY; kep ships no topology
>>> [tier.topic for tier in topology.group("billing").retry_tiers("orders")]
['orders.billing.retry.1s', 'orders.billing.retry.10s', 'orders.billing.retry.1m']
>>> schema_registry(topology).names()  # the topology's schemas: and $KEP_SCHEMAS
['kep.orders.OrderPlaced', 'kep.orders.PaymentCaptured']
"""

from kep.topology._actions import (
    Action,
    AlterConfigs,
    ApplyResult,
    ConfigChange,
    CreateTopic,
    IncreasePartitions,
    Plan,
    Refusal,
)
from kep.topology._delays import DelaySpec, DelayTier
from kep.topology._limits import LimitSpec, Rate, parse_rate
from kep.topology.admin import apply, plan
from kep.topology.cluster import require_cluster
from kep.topology.durations import format_duration, parse_duration
from kep.topology.errors import (
    AdminError,
    ApplyError,
    ClusterUnreachableError,
    DurationError,
    PartitionGrowthUnsupportedError,
    PlanError,
    Problem,
    RefusedChangeError,
    TopologyError,
)
from kep.topology.loader import (
    check_schedules,
    check_schema_names,
    default_topology_path,
    load_topology,
    parse_topology,
    schema_registry,
)
from kep.topology.model import (
    ConsumerGroupSpec,
    DerivedTopic,
    RetrySpec,
    RetryTier,
    ScheduleSpec,
    ScheduleStateSpec,
    TopicSpec,
    Topology,
)
from kep.topology.settings import KafkaSettings

__all__ = [
    "Action",
    "AdminError",
    "AlterConfigs",
    "ApplyError",
    "ApplyResult",
    "ClusterUnreachableError",
    "ConfigChange",
    "CreateTopic",
    "IncreasePartitions",
    "Plan",
    "Refusal",
    "ConsumerGroupSpec",
    "DelaySpec",
    "DelayTier",
    "DerivedTopic",
    "DurationError",
    "KafkaSettings",
    "LimitSpec",
    "PartitionGrowthUnsupportedError",
    "PlanError",
    "Problem",
    "Rate",
    "RefusedChangeError",
    "RetrySpec",
    "RetryTier",
    "ScheduleSpec",
    "ScheduleStateSpec",
    "TopicSpec",
    "Topology",
    "TopologyError",
    "apply",
    "check_schedules",
    "check_schema_names",
    "default_topology_path",
    "format_duration",
    "load_topology",
    "parse_duration",
    "parse_rate",
    "parse_topology",
    "plan",
    "require_cluster",
    "schema_registry",
]
