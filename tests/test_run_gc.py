"""``kep run`` tunes garbage collection for its own process: start-up objects frozen, a larger youngest generation."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def test_kep_run_freezes_start_up_objects_and_collects_the_youngest_generation_less_often() -> None:
    code = (
        "import gc\n"
        "from kep.cli import run\n"
        "before = gc.get_threshold()\n"
        "run._tune_gc()\n"
        "print(before[0], gc.get_threshold()[0], gc.get_freeze_count() > 0, before[1:] == gc.get_threshold()[1:])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["700", str(10_000), "True", "True"]
