"""kep: Kafka event processing.

The command line lives in ``kep.cli``; the embedded broker in ``kep.broker``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kep-kafka")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
