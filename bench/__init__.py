"""kep benchmarks: ``python -m bench`` (see ``bench/__main__.py``)."""

from bench.context import BenchContext
from bench.result import Result
from bench.stats import Timing

__all__ = ["BenchContext", "Result", "Timing"]
