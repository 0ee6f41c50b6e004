"""The shop example (``examples/shop``), which most tests use as a service would use kep."""

from __future__ import annotations

from pathlib import Path

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
SHOP_SCHEMAS = SHOP / "schemas"
SHOP_TOPOLOGY = SHOP / "topology.yaml"
