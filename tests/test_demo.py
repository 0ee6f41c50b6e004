"""``kep demo`` end to end, as ``make demo`` runs it on the shop example: a real process with its own embedded
broker, started in ``examples/shop``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.embedded
def test_demo_produces_and_consumes_every_event_and_prints_the_table() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KEP_SCHEMAS", "PYTHONPATH", "KEP_TOPOLOGY")}
    env.update({"COLUMNS": "120", "NO_COLOR": "1"})
    apps = ["--app", "shop.billing:app", "--app", "shop.shipping:app"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kep.cli.main",
            "demo",
            "--topology",
            "topology.yaml",
            *apps,
            "--count",
            "2000",
            "--metrics-port",
            "0",
        ],
        cwd=REPO / "examples" / "shop",
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "kep demo" in out and "produced" in out and "handled" in out
    rows = [line for line in out.splitlines() if line.strip("│ ").startswith(("orders ", "payments "))]
    assert len(rows) == 12, out  # 6 partitions each of orders and payments
    total = next(line for line in out.splitlines() if "total" in line)
    assert total.count("2000") == 2, total  # produced and handled
    assert "missing: 0" in out
    assert (
        "LAG-SECONDS" in out and "group billing: OK" in out and "group shipping: OK" in out
    )  # the lag table
    assert "/metrics" in out
    assert "billing: " in out and "failed attempts went through its retry topics" in out


@pytest.mark.unit
def test_demo_without_a_topology_or_apps_says_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KEP_TOPOLOGY"}
    no_topology = subprocess.run(
        [sys.executable, "-m", "kep.cli.main", "demo"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert no_topology.returncode == 2 and "no topology: pass --topology FILE" in no_topology.stderr
    no_apps = subprocess.run(
        [sys.executable, "-m", "kep.cli.main", "demo", "--topology", str(REPO / "examples" / "shop" / "topology.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert no_apps.returncode == 2 and "no apps: pass --app module:attribute" in no_apps.stderr
