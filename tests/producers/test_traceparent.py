import pytest

from kep.producers.errors import InvalidTraceparentError
from kep.producers.traceparent import validate_traceparent

pytestmark = pytest.mark.unit

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_valid_traceparent_is_returned_unchanged() -> None:
    assert validate_traceparent(VALID) == VALID
    future_version = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
    assert validate_traceparent(future_version) == future_version


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        VALID.upper(),
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        VALID + "-more",  # version 00 has exactly four fields
    ],
)
def test_malformed_traceparent_is_refused(value: str) -> None:
    with pytest.raises(InvalidTraceparentError, match="traceparent"):
        validate_traceparent(value)
