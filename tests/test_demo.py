"""``kep demo`` end to end, as a user runs it: a real process with its own embedded broker."""

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
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "kep.cli.main", "demo", "--count", "2000", "--metrics-port", "0"],
        cwd=REPO,
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
