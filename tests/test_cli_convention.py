"""The command line follows one convention; this walks every command's --help (and a few runs) to prove it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

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
