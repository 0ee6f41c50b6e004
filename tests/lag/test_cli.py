"""``kep lag`` in-process (table and ``--json``) and ``kep lag-exporter`` as a process stopped by SIGTERM."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from rich.console import Console
from typer.testing import CliRunner

from kep.broker import free_port
from kep.cli.lag import render
from kep.cli.main import app
from kep.consumers.lag import GroupLag, LagSnapshot, Status
from kep.consumers.lag.snapshot import PartitionLag
from tests.lag.support import commit, http_get, http_json, now_ms, produce
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.embedded]

runner = CliRunner(env={"COLUMNS": "200"})
N = 25
K = 10


@contextmanager
def kep_process(*args: str, stderr: int) -> Iterator[subprocess.Popen[bytes]]:
    """``kep *args`` as a child process, standard output piped; killed if still running at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kep.cli.main", *args], stdout=subprocess.PIPE, stderr=stderr
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.fixture
def topic(kafka: str, topic_factory: Callable[..., str], group_id: str) -> str:
    name = topic_factory(partitions=1, prefix="lagcli")
    produce(kafka, name, 0, [now_ms() - 20_000] * N, batches=2)
    commit(kafka, group_id, {(name, 0): K})
    return name


def test_kep_lag_json_prints_the_snapshot(kafka: str, topic: str, group_id: str) -> None:
    result = runner.invoke(app, ["lag", "-b", kafka, "--group", group_id, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    [group] = data["groups"]
    assert (group["group"], group["status"], group["lag_messages"]) == (group_id, "OK", N - K)
    [partition] = group["partitions"]
    assert partition["topic"] == topic
    assert (partition["committed"], partition["log_end"], partition["lag_messages"]) == (K, N, N - K)
    assert 19 < partition["lag_seconds"] < 60


def test_kep_lag_prints_a_describe_table_and_a_status_line(kafka: str, topic: str, group_id: str) -> None:
    result = runner.invoke(app, ["lag", "-b", kafka, "--group", group_id])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "LAG-SECONDS",
        "STATUS",
    ]
    row = lines[1].split()
    assert row[:6] == [group_id, topic, "0", str(K), str(N), str(N - K)]
    assert row[7] == "OK"
    assert any(line.startswith(f"group {group_id}: OK") for line in lines)


def test_kep_lag_group_filters_are_globs_that_cannot_backtrack(kafka: str, topic: str, group_id: str) -> None:
    """A regex such as ``(a+)+$`` took seconds per group id; ``--group`` is a glob, matched in linear time."""
    prefix = group_id.rsplit("-", 1)[0]
    result = runner.invoke(app, ["lag", "-b", kafka, "--group", f"{prefix}-*", "--json"])
    assert result.exit_code == 0, result.output
    assert group_id in [g["group"] for g in json.loads(result.stdout)["groups"]]
    for literal in ("[unclosed", "(a+)+$", "a" * 40 + "!"):
        result = runner.invoke(app, ["lag", "-b", kafka, "--group", literal, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["groups"] == []
    result = runner.invoke(app, ["lag", "-b", kafka, "--group", "x" * 300])
    assert result.exit_code == 2 and "at most 255 characters" in result.stderr


def test_kep_lag_shows_hostile_group_ids_as_text() -> None:
    """Anyone may create a group or topic; their names are shown as text, never as markup or terminal
    escapes (the embedded broker percent-encodes such names, so the table is rendered from a snapshot)."""
    hostile = "g-[/]\x1b]0;owned\x07"
    partition = PartitionLag("t-[bold]x\x1b[2J", 0, 1, 1, 5, 4, 2.0, Status.OK)
    group = GroupLag(hostile, "Stable", 1, (partition,), error="[/] \x1b[31mred")
    out = io.StringIO()
    Console(file=out, width=200).print(render(LagSnapshot(0.0, 0.1, (group,), error="poll [/]")))
    text = out.getvalue()
    assert "g-[/]\\x1b]0;owned\\x07" in text and "t-[bold]x\\x1b[2J" in text
    assert "([/] \\x1b[31mred)" in text and "poll failed: poll [/]" in text
    assert "\x1b" not in text and "\x07" not in text


def test_kep_lag_takes_the_isolation_level_and_refuses_an_unknown_one(
    kafka: str, topic: str, group_id: str
) -> None:
    args = ["lag", "-b", kafka, "--group", group_id, "--json", "--isolation-level", "read_uncommitted"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["groups"][0]["lag_messages"] == N - K
    refused = runner.invoke(app, ["lag", "-b", kafka, "--isolation-level", "dirty"])
    assert refused.exit_code == 2
    assert "--isolation-level must be one of read_committed, read_uncommitted, got 'dirty'" in refused.stderr


def test_kep_lag_watch_refreshes_until_ctrl_c_and_exits_zero(kafka: str, topic: str, group_id: str) -> None:
    args = ["lag", "-b", kafka, "--group", group_id, "--watch", "--json", "--interval", "0.2"]
    with kep_process(*args, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        first, second = (json.loads(proc.stdout.readline()) for _ in range(2))
        assert first["taken_at"] < second["taken_at"]
        assert [g["lag_messages"] for g in second["groups"]] == [N - K]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0


def test_kep_lag_exporter_serves_until_sigterm_and_exits_zero(kafka: str, topic: str, group_id: str) -> None:
    port = free_port()
    args = ["-b", kafka, "--metrics-port", str(port), "--group", group_id, "--interval", "1", "--window", "5"]

    def ready() -> bool:
        try:
            return http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        except OSError:
            return False

    with kep_process("lag-exporter", *args, stderr=subprocess.STDOUT) as proc:
        wait_until(ready, timeout=30, message="lag exporter ready")
        status, groups = http_json(f"http://127.0.0.1:{port}/groups")
        assert status == 200 and [g["lag_messages"] for g in groups] == [N - K]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
