"""kep benchmarks: ``python -m bench`` (see ``bench/__main__.py``).

They measure the shop example's events (``examples/shop``), as a service would use kep: its package ``shop``
is made importable and its schemas are put in ``KEP_SCHEMAS`` here, before any benchmark module loads.
"""

import os
import sys
from pathlib import Path

_SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"
if str(_SHOP) not in sys.path:
    sys.path.insert(0, str(_SHOP))
os.environ.setdefault("KEP_SCHEMAS", str(_SHOP / "schemas"))

from bench.context import BenchContext  # noqa: E402
from bench.result import Result  # noqa: E402
from bench.stats import Timing  # noqa: E402

__all__ = ["BenchContext", "Result", "Timing"]
