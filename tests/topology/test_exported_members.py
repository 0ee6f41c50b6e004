import pytest

import topology

pytestmark = pytest.mark.unit

EXPORTED = {
    "Action",
    "AdminError",
    "AlterConfigs",
    "ApplyError",
    "ApplyResult",
    "ConfigChange",
    "ConsumerGroupSpec",
    "CreateTopic",
    "DerivedTopic",
    "DurationError",
    "IncreasePartitions",
    "KafkaSettings",
    "PartitionGrowthUnsupportedError",
    "Plan",
    "PlanError",
    "Problem",
    "RefusedChangeError",
    "Refusal",
    "RetrySpec",
    "RetryTier",
    "TopicSpec",
    "Topology",
    "TopologyError",
    "apply",
    "check_schema_names",
    "default_topology_path",
    "format_duration",
    "load_topology",
    "parse_duration",
    "parse_topology",
    "plan",
}


def test_public_api_is_pinned() -> None:
    assert set(topology.__all__) == EXPORTED
    for name in topology.__all__:
        assert hasattr(topology, name), name


def test_errors_derive_from_kep_error() -> None:
    from schemas.errors import KepError

    for name in (
        "AdminError",
        "ApplyError",
        "DurationError",
        "PartitionGrowthUnsupportedError",
        "PlanError",
        "RefusedChangeError",
        "TopologyError",
    ):
        assert issubclass(getattr(topology, name), KepError), name
