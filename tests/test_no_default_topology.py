"""kep ships no topology and no schemas: every command that needs them says so and exits 2, creating nothing."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kep.cli.main import app

pytestmark = pytest.mark.unit

NEEDS_A_TOPOLOGY = [
    ["topology", "validate"],
    ["topology", "show"],
    ["topology", "plan", "-b", "127.0.0.1:1"],
    ["topology", "apply", "-b", "127.0.0.1:1"],
    ["produce", "orders", "-b", "127.0.0.1:1"],
    ["dlq", "ls", "-b", "127.0.0.1:1"],
    ["run", "shop.billing:app", "-b", "127.0.0.1:1", "--idempotency-store", "memory://"],
]


@pytest.mark.parametrize("argv", NEEDS_A_TOPOLOGY, ids=lambda argv: " ".join(argv[:2]))
def test_a_command_without_a_topology_says_so_and_exits_2(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEP_TOPOLOGY", raising=False)
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "no topology: pass --topology FILE or set KEP_TOPOLOGY" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_schemas_commands_without_any_schemas_say_where_to_list_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEP_TOPOLOGY", raising=False)
    monkeypatch.delenv("KEP_SCHEMAS")
    for command in ("list", "check"):
        result = CliRunner().invoke(app, ["schemas", command], env={"COLUMNS": "200"})
        assert result.exit_code == 2, result.output
        assert "no schemas: pass --dir DIR, set KEP_SCHEMAS, or give a topology" in " ".join(
            result.output.split()
        )
