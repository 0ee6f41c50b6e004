"""The command line follows one convention; this walks every command's --help (and a few runs) to prove it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from kep.cli._common import console
from kep.cli.lag import render as lag_render
from kep.cli.main import app
from kep.consumers.lag import GroupLag, LagSnapshot, PartitionLag
from tests.support.shop import SHOP_TOPOLOGY

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
    monkeypatch.setenv("KEP_TOPOLOGY", str(SHOP_TOPOLOGY))
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


def _commands() -> list[tuple[tuple[str, ...], Any]]:
    """Every visible command and command group, as (path, click command); the root is ``()``."""
    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append((path, command))
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            if not sub.hidden:
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()
LEAVES = [(path, command) for path, command in COMMANDS if not getattr(command, "commands", None)]
# What typer would show unrendered: a type after an option, a braced argument, reST or Rich markup.
LEAKS = re.compile(
    r"<(bool|str|int|float|path|dir|file|text)>|\{[A-Za-z_]+\}|``|\[/?(red|green|yellow|bold|dim)\]"
)
MANDATED = {"-b": "--bootstrap-servers", "-t": "--topic", "-g": "--group", "-p": "--partition"}
HOW_MANY = {"--count", "--limit"}  # -n, as in head -n
NO_JSON = {
    ("broker",): "runs until stopped; prints one ready line",
    ("run",): "runs until stopped; its logs are JSON with --log-format json",
    ("lag-exporter",): "runs until stopped; serves JSON on /groups",
    ("demo",): "a guided tour on a throw-away broker",
    ("schemas", "export"): "prints JSON (an Avro schema) already",
    ("console",): "runs until stopped; serves pages (and JSON to htmx)",
    ("ingest",): "runs until stopped; answers JSON",
    ("delays", "run"): "runs until stopped; its logs are JSON with --log-format json",
    ("outbox", "relay"): "runs until stopped; its logs are JSON with --log-format json",
    ("schedules", "run"): "runs until stopped; its logs are JSON with KEP_LOG_FORMAT=json",
}


def _options(command: Any) -> list[list[str]]:
    return [[*p.opts, *p.secondary_opts] for p in command.params if p.param_type_name == "option"]


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "kep")
def test_every_help_renders(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert result.output.strip().startswith("Usage: kep"), result.output
    assert not LEAKS.findall(result.output), f"kep {' '.join(path)} --help: {LEAKS.findall(result.output)}"


def test_short_flags_mean_one_thing_across_commands() -> None:
    meanings: dict[str, set[str]] = {}
    for path, command in LEAVES:
        where = f"kep {' '.join(path)}"
        for names in _options(command):
            longs = {n for n in names if n.startswith("--")}
            shorts = [n for n in names if not n.startswith("--")]
            for short in shorts:
                meanings.setdefault(short, set()).update(longs)
            for short, long in MANDATED.items():
                if long in longs:
                    assert short in shorts, f"{where}: {long} without {short}"
            if "--topology" in longs:
                assert not shorts, f"{where}: --topology takes no short flag (-t is a topic)"
    for short, longs in sorted(meanings.items()):
        if short in MANDATED:
            assert longs == {MANDATED[short]}, f"{short} means {sorted(longs)}"
        elif short == "-n":
            assert longs <= HOW_MANY, f"-n means {sorted(longs)}"
        else:
            assert len(longs) == 1, f"{short} means {sorted(longs)}"
    assert set(MANDATED) <= set(meanings)


def test_every_listing_command_is_ls() -> None:
    names = {path[-1] for path, _ in COMMANDS if path}
    assert "list" not in names
    assert {("dlq", "ls"), ("schemas", "ls")} <= {path for path, _ in COMMANDS}


def test_every_command_that_prints_data_takes_json() -> None:
    for path, command in LEAVES:
        has_json = any("--json" in names for names in _options(command))
        if path in NO_JSON:
            continue
        assert has_json, f"kep {' '.join(path)} prints data but has no --json"


@pytest.mark.parametrize(
    "args",
    [["schemas", "ls"], ["schemas", "check"], ["topology", "validate"], ["topology", "show"]],
    ids=" ".join,
)
def test_json_output_is_json(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--json"], env={"KEP_TOPOLOGY": str(SHOP_TOPOLOGY)})
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)


def test_run_says_when_the_app_attribute_is_missing() -> None:
    result = runner.invoke(app, ["run", "shop.billing:nope"])
    assert result.exit_code == 2
    assert "module 'shop.billing' has no attribute 'nope'" in result.output


@pytest.mark.parametrize(
    ("topic", "says"),
    [("orders", "is a main topic"), ("orders.billing.retry.1s", "is a retry topic of group 'billing'")],
)
def test_dlq_show_refuses_a_topic_that_holds_no_dead_letters(topic: str, says: str) -> None:
    result = runner.invoke(
        app, ["dlq", "show", topic, "-b", "127.0.0.1:1"], env={"KEP_TOPOLOGY": str(SHOP_TOPOLOGY)}
    )
    assert result.exit_code == 2
    assert f"'{topic}' {says}" in result.output and "orders.billing.dlq" in result.output
