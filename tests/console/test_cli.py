"""``kep console`` on the command line: help, and settings refused with a message naming the setting."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kep.cli.main import app

pytestmark = pytest.mark.unit


def test_help_names_the_access_model() -> None:
    result = CliRunner().invoke(app, ["console", "--help"])
    assert result.exit_code == 0
    assert "Read-only unless" in result.output and "--host" in result.output


def test_a_weak_token_is_refused_without_printing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEP_CONSOLE_OPERATOR_TOKEN", "hunter2")
    result = CliRunner().invoke(app, ["console", "--port", "0", "-b", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "operator_token must be at least 12 characters" in result.output
    assert "hunter2" not in result.output


def test_a_bad_group_pattern_is_refused_naming_it() -> None:
    result = CliRunner().invoke(app, ["console", "--group", "(", "-b", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "group_filter" in result.output and "not a regular expression" in result.output
