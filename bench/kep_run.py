"""A ``kep run`` process for the consumer benchmarks, at its shipped defaults.

``KepRun.trial`` writes a topology (the topic, one group of the given retry settings), applies it, starts
``python -m kep.cli.main run bench.kep_app:app`` (``kep run``) in a fresh directory (so the default SQLite
store is a new file there) with nothing set but the bootstrap servers, the topology, ``--metrics-port 0`` (no
HTTP server: trials must not fight over a port; metrics stay enabled) and, where a scenario is about another
store, ``--idempotency-store``. ``KEP_*`` variables of the calling environment are removed, so no setting is tuned.
The app (``bench/kep_app.py``) times its handler from the first to the last event and writes the figures to a
file; the process is then stopped with SIGTERM, as an operator would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kep.topology import KafkaSettings, admin
from kep.topology.loader import load_topology

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "examples" / "shop" / "schemas"
PARTITIONS = 6


@dataclass
class KepRunResult:
    count: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


def topology_file(directory: Path, topic: str, group: str, retry: dict[str, Any] | None) -> Path:
    group_spec: dict[str, Any] = {"name": group, "topics": [topic]}
    if retry is not None:
        group_spec["retry"] = retry
    data = {
        "schemas": str(SCHEMAS),
        "topics": [
            {
                "name": topic,
                "partitions": PARTITIONS,
                "value_schema": "kep.orders.OrderPlaced",
                "key_field": "order_id",
            }
        ],
        "groups": [group_spec],
    }
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class KepRun:
    """One ``kep run`` trial after another against ``bootstrap_servers``."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers

    def start(
        self,
        topic: str,
        count: int,
        *,
        store: str | None = None,
        retry: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> _Running:
        group = f"kep-{uuid.uuid4().hex[:8]}"
        directory = Path(tempfile.mkdtemp(prefix="kep-bench-"))
        path = topology_file(directory, topic, group, retry)
        kafka = KafkaSettings(bootstrap_servers=self.bootstrap_servers)
        admin.apply(admin.plan(load_topology(path), kafka), kafka)
        out = directory / "out.json"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("KEP_")}
        child_env.update(
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            BENCH_GROUP=group,
            BENCH_TOPIC=topic,
            BENCH_COUNT=str(count),
            BENCH_OUT=str(out),
            **(env or {}),
        )
        argv = [sys.executable, "-m", "kep.cli.main", "run", "bench.kep_app:app", "--topology", str(path)]
        argv += ["-b", self.bootstrap_servers, "--metrics-port", "0"]
        if store is not None:
            argv += ["--idempotency-store", store]
        log = (directory / "kep-run.log").open("wb")
        proc = subprocess.Popen(argv, cwd=directory, env=child_env, stdout=log, stderr=log)
        return _Running(proc, out, directory)

    def trial(self, topic: str, count: int, *, timeout_s: float = 600.0, **kwargs: Any) -> KepRunResult:
        return self.start(topic, count, **kwargs).result(timeout_s)

    def start_raw(self, topic: str, count: int, *, env: dict[str, str] | None = None) -> _Running:
        """The raw loop (``bench/raw_loop.py``) in a process of its own, reporting as the kep app does."""
        directory = Path(tempfile.mkdtemp(prefix="kep-bench-raw-"))
        out = directory / "out.json"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("KEP_")}
        child_env.update(
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            BENCH_BOOTSTRAP=self.bootstrap_servers,
            BENCH_TOPIC=topic,
            BENCH_COUNT=str(count),
            BENCH_OUT=str(out),
            **(env or {}),
        )
        log = (directory / "raw.log").open("wb")
        argv = [sys.executable, "-m", "bench.raw_loop"]
        proc = subprocess.Popen(argv, cwd=directory, env=child_env, stdout=log, stderr=log)
        return _Running(proc, out, directory)

    def raw_trial(self, topic: str, count: int, *, timeout_s: float = 600.0, **kwargs: Any) -> KepRunResult:
        return self.start_raw(topic, count, **kwargs).result(timeout_s)


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    out: Path
    directory: Path

    def result(self, timeout_s: float) -> KepRunResult:
        deadline = time.monotonic() + timeout_s
        try:
            while not self.out.exists():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"kep run exited with {self.proc.returncode}; see {self.directory}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"kep run did not finish in {timeout_s:.0f}s; see {self.directory}")
                time.sleep(0.05)
            data = json.loads(self.out.read_text())
        finally:
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)  # kept only when the trial failed, for its log
        return KepRunResult(
            data["count"], data["seconds"], data.get("latencies_ms", []), data.get("lateness_ms", [])
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
