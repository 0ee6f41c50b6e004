import pytest

from kep import topology
from kep.schemas.errors import KepError

pytestmark = pytest.mark.unit


def test_errors_derive_from_kep_error() -> None:
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
