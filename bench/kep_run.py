"""A ``kep run`` process for the consumer benchmarks, at its shipped defaults.

``KepRun.trial`` writes a topology (the topic, one group of the given retry settings), applies it, starts
``python -m kep.cli.main run bench.kep_app:app`` (``kep run``) in a fresh directory (so the default SQLite
store is a new file there) with nothing set but the bootstrap servers, the topology, ``--metrics-port 0`` (no
HTTP server: trials must not fight over a port; metrics stay enabled) and, where a scenario is about another
store, ``--idempotency-store``. ``KEP_*`` variables of the calling environment are removed, so no setting is tuned.
The app (``bench/kep_app.py``) counts in each worker process; the trial is over when their counts add up to
the events (and the retries) it waits for. Their tallies are then merged (the time from the first event any
process handled to the last) and ``kep run`` is stopped with SIGTERM, as an operator would.
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
    cpu_s: float = 0.0  # CPU time of the processes that counted (every thread), first event to last
    latencies_ms: list[float] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s / self.count * 1e6 if self.count else float("nan")


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
        fail_every = int(child_env.get("BENCH_FAIL_EVERY", "0"))
        return _Running(proc, out, directory, count, count // fail_every if fail_every else 0)

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
        return _Running(proc, out, directory, count)

    def raw_trial(self, topic: str, count: int, *, timeout_s: float = 600.0, **kwargs: Any) -> KepRunResult:
        return self.start_raw(topic, count, **kwargs).result(timeout_s)


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    out: Path
    directory: Path
    count: int
    retries: int = 0

    def _marks(self, pattern: str) -> list[dict[str, Any]]:
        found = []
        for path in self.directory.glob(f"{self.out.name}.{pattern}"):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):  # being replaced: the next look reads it
                continue
        return found

    def consuming(self) -> bool:
        """Every worker process (or the raw loop) has handled a warm-up event."""
        if self.out.with_suffix(".started").exists():  # the raw loop
            return True
        started = self._marks("started.*[0-9]")
        return bool(started) and len(started) >= started[0]["processes"]

    def _counted(self) -> bool:
        counts = self._marks("*.count")
        seen = sum(c["seen"] for c in counts)
        return seen >= self.count and sum(c["retried"] for c in counts) >= self.retries

    def result(self, timeout_s: float) -> KepRunResult:
        deadline = time.monotonic() + timeout_s

        def waiting(what: str) -> None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kep run exited with {self.proc.returncode}; see {self.directory}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"kep run did not {what} in {timeout_s:.0f}s; see {self.directory}")
            time.sleep(0.05)  # sleep-ok: polling the trial's files, under a deadline

        try:
            while not self.out.exists() and not self._counted():
                waiting("finish")
            if self.out.exists():  # the raw loop
                data = json.loads(self.out.read_text())
                result = KepRunResult(
                    data["count"], data["seconds"], data.get("cpu_s", 0.0), data.get("latencies_ms", [])
                )
            else:
                self.out.with_name(f"{self.out.name}.done").touch()
                processes = len(self._marks("*.count"))
                while len(tallies := self._marks("*[0-9].json")) < processes:
                    waiting("report")
                result = _merged(tallies)
        finally:
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)  # kept only when the trial failed, for its log
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _merged(tallies: list[dict[str, Any]]) -> KepRunResult:
    """The worker processes' tallies as one: every event, from the first any handled to the last."""
    busy = [t for t in tallies if t["count"]]
    seconds = max(t["last"] for t in busy) - min(t["first"] for t in busy) if busy else 0.0
    return KepRunResult(
        sum(t["count"] for t in tallies),
        seconds,
        sum(t.get("cpu_s", 0.0) for t in tallies),
        [x for t in tallies for x in t["latencies_ms"]],
        [x for t in tallies for x in t["lateness_ms"]],
    )
