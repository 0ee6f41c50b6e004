"""The command line follows one convention; this walks every command's --help (and a few runs) to prove it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from kep.cli._common import console
from kep.cli.lag import render as lag_render
from kep.cli.main import app
from kep.consumers.lag import GroupLag, LagSnapshot, PartitionLag

pytestmark = pytest.mark.unit
runner = CliRunner()

KEP = Path(sys.executable).parent / "kep"


def _complete(words: str) -> list[str]:
    """What bash completion offers after ``words`` (the last word is the one being completed)."""
    env = {
        **os.environ,
        "_KEP_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    proc = subprocess.run([str(KEP)], env=env, capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout.split()


@pytest.mark.skipif(shutil.which(str(KEP)) is None, reason="the kep entry point is not installed")
def test_shell_completion_completes_commands_and_options() -> None:
    script = subprocess.run(
        [str(KEP), "--show-completion", "bash"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "_kep_completion" in script and "complete" in script
    assert _complete("kep dl") == ["dlq"]
    assert _complete("kep dlq replay --dr") == ["--dry-run"]
    assert "--bootstrap-servers" in _complete("kep lag --boot")


@pytest.mark.parametrize("width", [60, 80])
def test_tables_adapt_to_the_terminal_width_and_never_cut_a_name(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", width)
    for args in (["topology", "show"], ["schemas", "ls"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "…" not in result.output, f"kep {' '.join(args)} cut a name at {width} columns"
        table = [line for line in result.output.splitlines() if line[:1] in "┏┃┡│└ " and line.strip()]
        assert table and max(len(line) for line in table) <= width  # text lines wrap softly, tables fit
    group, topic = "billing-europe-west-production", "orders.billing-europe-west-production.retry.10s"
    lag = PartitionLag(topic, 0, 5, 5, 10, 5, 1.5)
    snapshot = LagSnapshot(0.0, 0.1, (GroupLag(group, "STABLE", 2, (lag, replace(lag, topic="orders"))),))
    narrow = Console(width=width, record=True, color_system=None)
    narrow.print(lag_render(snapshot))
    text = narrow.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    assert f"group {group}" in text and topic in "".join(text.split())  # wrapped, whole
