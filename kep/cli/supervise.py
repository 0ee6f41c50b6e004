"""``kep run`` on several processes: one supervisor, N worker processes in the same consumer group.

A worker process spends about one core: its Python code runs under one interpreter lock, whatever the number
of threads. ``processes`` (``--processes``, ``KEP_PROCESSES``) runs that many worker processes under a
supervisor; ``auto``, the default, one per usable core (the CPU affinity, bounded by a cgroup CPU quota) but no
more than the partitions of the group's topics, and one with the ``memory://`` store (its keys and limits live
in one process). Each worker process is a whole ``kep run`` (its own consumer,
lanes and store connections) and the group spreads the partitions over them, as it would over pods.

What the supervisor does:
- starts worker process ``i`` as ``kep run`` with ``KEP_PROCESS_INDEX=i`` and ``KEP_PROCESS_COUNT=N`` in its
  environment (an app may read them); only process 0 runs the companions (delay forwarder, scheduler, outbox
  relay);
- serves ``/metrics``, ``/healthz`` and ``/readyz`` on the configured port: every worker process's metrics
  with a ``process`` label, live while every process is live (or being restarted), ready while every process
  is ready; each worker process serves its own on a loopback port it picks;
- restarts a worker process that exits unasked (after 1 s, doubling to 30 s while it keeps failing within a
  minute of its start); one that fails before it is first up (a setting, the app, the cluster) stops them all
  with its exit code, since its siblings would fail the same way;
- on SIGTERM or SIGINT, passes SIGTERM on, waits for every process to drain and commit, and exits 0 when they
  all did.

A worker process whose supervisor dies gets SIGTERM from the kernel (Linux), so it drains and leaves the group.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = structlog.get_logger("kep.run")

#: Set by the supervisor in a worker process's environment: its index (0 .. N-1), N, and the directory where it
#: says it is up (``<index>.json``: its metrics port).
INDEX_ENV = "KEP_PROCESS_INDEX"
COUNT_ENV = "KEP_PROCESS_COUNT"
SUPERVISOR_ENV = "KEP_SUPERVISOR_DIR"
SUPERVISOR_PID_ENV = "KEP_SUPERVISOR_PID"  # the supervisor may be PID 1 (a container's entry point)
#: Restart back-off: first wait, longest wait, and how long a process must have run for the wait to reset.
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
RESTART_RESET_S = 60.0
#: Seconds a scrape or probe of one worker process may take.
PROBE_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1
#: Where cgroup v2 and v1 say the container's CPU limit.
CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_DIR = Path("/sys/fs/cgroup/cpu")


def usable_cpus() -> int:
    """Cores this process may use: its CPU affinity, bounded by a cgroup (v2 or v1) CPU quota, at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def _cgroup_quota() -> float | None:
    """The container's CPU limit in cores, or None when there is none (or no cgroup file to say so)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        limit, period = CGROUP_V2_MAX.read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(period)
    with contextlib.suppress(OSError, ValueError):
        v1_quota = int((CGROUP_V1_DIR / "cpu.cfs_quota_us").read_text())
        v1_period = int((CGROUP_V1_DIR / "cpu.cfs_period_us").read_text())
        return v1_quota / v1_period if v1_quota > 0 and v1_period > 0 else None
    return None


def process_count(setting: int | str, partitions: int | None) -> int:
    """Worker processes for ``setting`` (a number, or ``auto``: one per usable core, no more than
    ``partitions`` when known)."""
    if setting != "auto":
        return int(setting)
    cpus = usable_cpus()
    return max(1, min(cpus, partitions) if partitions else cpus)


def supervised_index() -> int | None:
    """This process's index when a supervisor started it, else None."""
    value = os.environ.get(INDEX_ENV)
    return int(value) if value is not None and value.isdigit() else None


def die_with_supervisor() -> None:
    """Ask the kernel for SIGTERM when the supervisor goes (Linux; elsewhere nothing), then check it has not
    gone already."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
    if supervisor.isdigit() and os.getppid() != int(supervisor):  # it went before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def announce(port: int | None) -> None:
    """Tell the supervisor this worker process is up (built, metrics served on ``port`` when not None)."""
    directory, index = os.environ.get(SUPERVISOR_ENV), supervised_index()
    if directory is None or index is None:
        return
    path = Path(directory) / f"{index}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"port": port}))
    tmp.replace(path)


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    up: bool = False  # announced itself since its last start
    ever_up: bool = False
    port: int | None = None
    backoff_s: float = RESTART_FIRST_S
    restart_at: float | None = None


class Supervisor:
    """Runs ``count`` worker processes (``argv(i)`` and ``env(i)`` each) until ``stop``; see the module."""

    def __init__(
        self,
        count: int,
        argv: Callable[[int], Sequence[str]],
        env: Callable[[int], dict[str, str]],
        *,
        stop_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.count = count
        self._argv, self._env = argv, env
        self._stop_timeout_s = stop_timeout_s
        self._clock = clock
        self._stopping = threading.Event()
        self._dir = Path(tempfile.mkdtemp(prefix="kep-run-"))
        self._children = [_Child(i) for i in range(count)]
        self.registry = CollectorRegistry()
        self.registry.register(_ChildrenMetrics(self))
        Gauge("kep_worker_processes", "Worker processes the supervisor runs.", registry=self.registry).set(
            count
        )
        self._restarts = Counter(
            "kep_worker_process_restarts",
            "Worker processes restarted after exiting unasked.",
            ["process"],
            registry=self.registry,
        )

    # -- the loop -------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin a drain of every worker process (safe from a signal handler)."""
        self._stopping.set()

    def run(self) -> int:
        """Start the worker processes and look after them until ``stop``; the exit code for ``kep run``."""
        log.info("starting worker processes", processes=self.count)
        for child in self._children:
            self._start(child)
        code = 0
        while not self._stopping.wait(0.2):
            fatal = self._look_after()
            if fatal is not None:
                code = fatal
                break
        return max(code, self._stop_all())

    def _start(self, child: _Child) -> None:
        (self._dir / f"{child.index}.json").unlink(missing_ok=True)
        child.up, child.port, child.restart_at = False, None, None
        env = {**os.environ, **self._env(child.index)}
        env.update({INDEX_ENV: str(child.index), COUNT_ENV: str(self.count), SUPERVISOR_ENV: str(self._dir)})
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        child.proc = subprocess.Popen(list(self._argv(child.index)), env=env)  # noqa: S603 - our own argv
        child.started = self._clock()

    def _look_after(self) -> int | None:
        """One round: note who came up, restart who is due, react to who exited. An exit code to stop with."""
        now = self._clock()
        for child in self._children:
            if child.proc is None:
                if child.restart_at is not None and now >= child.restart_at:
                    log.info("restarting worker process", process=child.index)
                    self._restarts.labels(str(child.index)).inc()
                    self._start(child)
                continue
            if not child.up:
                self._read_announcement(child)
            code = child.proc.poll()
            if code is None:
                continue
            child.proc = None
            if not child.ever_up:
                log.error(
                    "worker process failed before it was up; stopping", process=child.index, exit_code=code
                )
                return code if code > 0 else 1
            ran_s = now - child.started
            child.backoff_s = RESTART_FIRST_S if ran_s >= RESTART_RESET_S else child.backoff_s
            child.restart_at = now + child.backoff_s
            log.warning(
                "worker process exited unasked; restarting it",
                process=child.index,
                exit_code=code,
                ran_s=round(ran_s, 1),
                restart_in_s=child.backoff_s,
            )
            child.backoff_s = min(child.backoff_s * 2, RESTART_MAX_S)
        return None

    def _read_announcement(self, child: _Child) -> None:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((self._dir / f"{child.index}.json").read_text())
            child.port = data.get("port")
            child.up = child.ever_up = True

    def _stop_all(self) -> int:
        """SIGTERM to every running worker process, wait for their drain, SIGKILL what outlives it. 0 when
        every process drained (or was stopped before it started)."""
        running = [c for c in self._children if c.proc is not None]
        log.info("stopping worker processes", processes=len(running))
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = self._clock() + self._stop_timeout_s
        code = 0
        for child in running:
            proc = child.proc
            assert proc is not None
            try:
                exit_code = proc.wait(max(0.0, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                log.error("worker process did not drain in time; killing it", process=child.index)
                proc.kill()
                exit_code = proc.wait()
            child.proc = None
            # SIGTERM before it had its handler (still starting) ends it at once, with nothing in flight
            code = max(code, 0 if exit_code in (0, -signal.SIGTERM) else 1)
        with contextlib.suppress(OSError):
            for path in self._dir.iterdir():
                path.unlink()
            self._dir.rmdir()
        return code

    # -- what the HTTP server asks ---------------------------------------------------------------------------

    def ports(self) -> list[tuple[int, int]]:
        """``(index, metrics port)`` of the worker processes that are up and serve metrics."""
        return [(c.index, c.port) for c in self._children if c.up and c.proc is not None and c.port]

    def live(self) -> tuple[bool, str]:
        """Live while every worker process is live or waiting for its restart."""
        return self._probe("/healthz", restarting_ok=True)

    def ready(self) -> tuple[bool, str]:
        """Ready while every worker process is up and ready."""
        if self._stopping.is_set():
            return False, "stopping"
        return self._probe("/readyz", restarting_ok=False)

    def _probe(self, path: str, *, restarting_ok: bool) -> tuple[bool, str]:
        problems: list[str] = []
        for child in self._children:
            if child.proc is None or not child.up:
                if not (restarting_ok and (child.restart_at is not None or child.proc is not None)):
                    problems.append(f"process {child.index}: not up")
                continue
            if child.port is None:
                continue
            try:
                status, body = _get(child.port, path)
            except OSError as exc:
                problems.append(f"process {child.index}: {exc}")
                continue
            if status != 200:
                problems.append(f"process {child.index}: {body.strip()}")
        if problems:
            return False, "; ".join(problems)
        return True, f"{self.count} worker processes"


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


class _ChildrenMetrics(Collector):
    """Every worker process's metrics, each sample labelled with its ``process`` index."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for index, port in self._supervisor.ports():
            try:
                status, text = _get(port, "/metrics")
            except OSError:
                continue  # restarting: its series come back with it
            if status != 200:
                continue
            for family in text_string_to_metric_families(text):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                merged.samples.extend(
                    sample._replace(labels={**sample.labels, "process": str(index)})
                    for sample in family.samples
                )
        yield from families.values()
