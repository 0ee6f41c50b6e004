import pytest
import structlog


@pytest.fixture(autouse=True)
def _logs_to_the_current_stream() -> None:
    """An earlier in-process CLI run may have left structlog writing to a stream that is closed now."""
    structlog.reset_defaults()
