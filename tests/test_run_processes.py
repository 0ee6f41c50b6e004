"""``kep run``'s supervisor without a broker: how many processes ``auto`` means, and what it does when a worker
process exits unasked (restart it) or before it was ever up (stop, with its exit code). The worker processes
here are small Python scripts that say they are up as ``kep run`` does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from kep.cli import supervise
from kep.cli.supervise import Supervisor, process_count
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit

#: A worker process: says it is up (unless ``FAKE_SILENT``), then exits with ``FAKE_EXIT`` after
#: ``FAKE_LIFE_S`` seconds, or waits for SIGTERM and exits 0.
FAKE = textwrap.dedent(
    """
    import json, os, signal, sys, threading, time
    from pathlib import Path
    index = os.environ["KEP_PROCESS_INDEX"]
    Path(os.environ["FAKE_LOG"]).open("a").write(f"{index} {os.getpid()}\\n")
    if not os.environ.get("FAKE_SILENT"):
        Path(os.environ["KEP_SUPERVISOR_DIR"], index + ".json").write_text(json.dumps({"port": None}))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    life = os.environ.get("FAKE_LIFE_S")
    if life is not None and not Path(os.environ["FAKE_LOG"] + ".lived").exists():
        time.sleep(float(life))  # sleep-ok: how long this fake worker process lives
        Path(os.environ["FAKE_LOG"] + ".lived").touch()
        sys.exit(int(os.environ.get("FAKE_EXIT", "3")))
    stop.wait(60)
    """
)


def starts(log: Path) -> list[str]:
    return log.read_text().split("\n")[:-1] if log.exists() else []


def supervisor(log: Path, count: int, **env: str) -> Supervisor:
    return Supervisor(
        count,
        lambda _index: [sys.executable, "-c", FAKE],
        lambda index: {"FAKE_LOG": str(log), **(env if index == 0 else {})},
        stop_timeout_s=30,
    )


def running(sup: Supervisor) -> threading.Thread:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(sup.run()), daemon=True)
    thread.start()
    return thread


def test_auto_is_one_process_per_usable_core_but_no_more_than_the_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervise, "CGROUP_V2_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(supervise, "CGROUP_V1_DIR", tmp_path / "v1")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert process_count("auto", None) == 4
    assert process_count("auto", 3) == 3
    assert process_count(2, 6) == 2
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a limit of 1.5 cores
    assert process_count("auto", 12) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert process_count("auto", 12) == 4
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "v1" / "cpu.cfs_period_us").write_text("100000\n")
    assert process_count("auto", 12) == 1


def test_a_process_that_exits_unasked_is_restarted_and_the_rest_stop_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    sup = supervisor(log, 2, FAKE_LIFE_S="0.5")  # process 0 exits with 3 once, half a second after its start
    thread = running(sup)
    wait_until(lambda: len(starts(log)) >= 3, timeout=20, message="process 0 started again")
    assert sorted(line.split()[0] for line in starts(log)) == ["0", "0", "1"]
    assert sup.registry.get_sample_value("kep_worker_process_restarts_total", {"process": "0"}) == 1
    wait_until(lambda: sup.ready()[0] or None, timeout=20, message="both processes up again")
    assert sup.live()[0]
    sup.stop()
    thread.join(30)
    assert not thread.is_alive()


def test_a_process_that_fails_before_it_is_up_stops_them_all_with_its_code(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    sup = supervisor(log, 2, FAKE_SILENT="1", FAKE_LIFE_S="0", FAKE_EXIT="2")
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(sup.run()), daemon=True)
    thread.start()
    thread.join(30)
    assert codes == [2]
    assert len(starts(log)) == 2, "a process that never came up is not restarted"


def test_stop_waits_for_every_process_and_says_0_when_all_drained(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    sup = supervisor(log, 3)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(sup.run()), daemon=True)
    thread.start()
    wait_until(lambda: sup.ready()[0] or None, timeout=20, message="every process up")
    assert sup.ready() == (True, "3 worker processes")
    pids = [int(line.split()[1]) for line in starts(log)]
    sup.stop()
    thread.join(30)
    assert codes == [0]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_auto_runs_one_process_with_the_memory_store_whose_keys_and_limits_live_in_a_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kep.cli.run import _processes
    from kep.consumers.app import load_app
    from kep.consumers.settings import ConsumerSettings
    from kep.topology.loader import load_topology
    from tests.support.shop import SHOP_TOPOLOGY

    monkeypatch.setattr(supervise, "_cgroup_quota", lambda: None)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)))
    app, spec = load_app("shop.billing:app"), load_topology(SHOP_TOPOLOGY)
    partitions = spec.topic("orders").partitions
    auto = ConsumerSettings(processes="auto")  # the default, but the suite's environment says 1
    assert _processes(app, auto, spec) == min(64, partitions)  # SQLite: shared by the processes of a host
    in_memory = ConsumerSettings(processes="auto", idempotency_store="memory://")
    assert _processes(app, in_memory, spec) == 1
    assert _processes(app, in_memory.model_copy(update={"idempotency_store": "MEMORY://"}), spec) == 1
    assert _processes(app, ConsumerSettings(idempotency_store="memory://", processes=3), spec) == 3


#: Calls ``die_with_supervisor`` with ``KEP_SUPERVISOR_PID`` as given, then says whether SIGTERM came.
CHECK_PARENT = textwrap.dedent(
    """
    import os, signal, threading
    from kep.cli.supervise import die_with_supervisor
    got = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: got.set())
    die_with_supervisor()
    print("stopped" if got.wait(2) else "running")
    """
)


@pytest.mark.parametrize(("parent", "expected"), [("mine", "running"), ("another", "stopped")])
def test_a_worker_process_whose_supervisor_is_already_gone_stops(parent: str, expected: str) -> None:
    """The supervisor may be PID 1 (a container's entry point): only a parent other than the one named in
    ``KEP_SUPERVISOR_PID`` means it is gone."""
    pid = os.getpid() if parent == "mine" else os.getpid() + 1_000_000
    env = {**os.environ, "KEP_SUPERVISOR_PID": str(pid)}
    proc = subprocess.run(
        [sys.executable, "-c", CHECK_PARENT], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip() == expected, proc.stderr
