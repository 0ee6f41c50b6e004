"""Workers as real processes: ``kep run`` started with the venv's Python, killed with SIGKILL or SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from kep.topology.model import Topology

ROOT = Path(__file__).resolve().parents[2]


def write_topology(topology: Topology, path: Path) -> Path:
    path.write_text(yaml.safe_dump(topology.model_dump(mode="json", exclude_defaults=True), sort_keys=False))
    return path


_started: list[WorkerProcess] = []


def kill_leftovers() -> None:
    """SIGKILL every worker a test started and left running (a failed assertion skips its clean-up)."""
    while _started:
        worker = _started.pop()
        if worker.alive:
            worker.kill9()


class WorkerProcess:
    def __init__(self, target: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.target, self.args, self.env, self.log_path = target, args, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, "KEP_LOG_FORMAT": "json", **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kep.cli.main", "run", self.target, *self.args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _started.append(self)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def worker_env(**extra: Any) -> dict[str, str]:
    base = {
        "KEP_SESSION_TIMEOUT_MS": "6000",
        "KEP_HEARTBEAT_INTERVAL_MS": "1000",
        "KEP_FETCH_WAIT_MAX_MS": "10",
        "KEP_METRICS_PORT": "0",
        "KEP_COMMIT_INTERVAL_S": "0.5",
    }
    base.update({k: str(v) for k, v in extra.items()})
    return base


def effects_worker(setup: Any, tmp_path: Path, name: str, **env: Any) -> WorkerProcess:
    """A ``kep run tests.apps.effects:app`` worker (not started) for ``setup``'s topic and group, with its
    topology written to ``tmp_path`` and its log at ``tmp_path/<name>.log``; ``env`` as in ``worker_env``."""
    topology = write_topology(setup.topology, tmp_path / "topology.yaml")
    args = ["--topology", str(topology), "-b", setup.kafka.bootstrap_servers]
    env = worker_env(KEP_TEST_TOPIC=setup.topic, KEP_TEST_GROUP=setup.group, **env)
    return WorkerProcess("tests.apps.effects:app", args, env, tmp_path / f"{name}.log")
