"""Child processes for benchmarks that measure memory: run one and read its peak resident set size."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    seconds: float
    peak_rss_bytes: int


def peak_rss_of_pid(pid: int) -> int | None:
    """``VmHWM`` (peak resident set) of a live process from ``/proc``, in bytes; ``None`` if unavailable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def run_child(argv: Sequence[str], *, timeout: float = 300.0, env: dict[str, str] | None = None) -> ChildRun:
    """Run ``argv`` to completion and return its exit code, wall time and peak RSS (from ``wait4`` rusage)."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    return ChildRun(proc.returncode, seconds, int(usage.ru_maxrss) * 1024)  # ru_maxrss is KiB on Linux
