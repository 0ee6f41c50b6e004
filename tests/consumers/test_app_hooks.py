"""An app's startup and shutdown hooks: run in each worker process (never in the supervisor of several), startup
before the worker joins the group and shutdown after its last handler, ``async def`` ones on the async handlers'
event loop; a startup hook that raises keeps the worker from starting, with an error that names it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.consumers.errors import AppError
from shop.orders import OrderPlaced
from tests.apps.hooks import SECRET_URL
from tests.support.processes import WorkerProcess, worker_env, write_topology
from tests.support.runtime import Setup, applied_topology, produce_orders, running
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_hooks_run_in_order_around_the_handlers_and_async_ones_on_the_handlers_loop(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=1)
    produce_orders(setup, 5)
    app = App(setup.group, topics=[setup.topic])
    steps: list[str] = []
    loops: dict[str, asyncio.AbstractEventLoop] = {}

    @app.on_startup
    def first() -> None:
        steps.append("startup 1")

    @app.on_startup
    async def second() -> None:
        loops["startup"] = asyncio.get_running_loop()
        steps.append("startup 2")

    @app.on_shutdown
    async def closed_last() -> None:
        loops["shutdown"] = asyncio.get_running_loop()
        steps.append("shutdown 1")

    @app.on_shutdown
    def closed_first() -> None:
        steps.append("shutdown 2")

    @app.handler(setup.topic)
    async def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        loops["handler"] = asyncio.get_running_loop()
        steps.append("handle")

    with running(app, setup):
        wait_until(lambda: steps.count("handle") == 5, timeout=60, message="every event handled")
        assert "shutdown 1" not in steps and "shutdown 2" not in steps
    assert steps == ["startup 1", "startup 2", *["handle"] * 5, "shutdown 2", "shutdown 1"]
    assert loops["startup"] is loops["handler"] is loops["shutdown"]


def test_a_startup_hook_that_raises_keeps_the_worker_out_of_the_group_and_names_the_hook(kafka: str) -> None:
    setup = applied_topology(kafka, partitions=1)
    produce_orders(setup, 3)
    app = App(setup.group, topics=[setup.topic])
    handled: list[str] = []
    closed: list[str] = []

    @app.on_startup
    def connect() -> None:
        raise ConnectionError("the pool is down")

    @app.on_shutdown
    def disconnect() -> None:
        closed.append("shutdown")

    @app.handler(setup.topic)
    def handle(event: OrderPlaced, ctx: MessageContext) -> None:
        handled.append(event.event_id)

    with pytest.raises(AppError) as raised, running(app, setup):
        pass
    assert str(raised.value) == (
        f"startup hook {__name__}.test_a_startup_hook_that_raises_keeps_the_worker_out_of_the_group_and_names_"
        "the_hook.<locals>.connect failed: ConnectionError: the pool is down"
    )
    assert handled == [] and closed == []  # never joined; shutdown hooks only follow a complete startup


def test_a_callable_is_required() -> None:
    with pytest.raises(AppError, match="a hook must be callable"):
        App("g").on_startup("connect")  # type: ignore[type-var]


# -- kep run, as real processes -----------------------------------------------------------------------------
def _hooks_worker(setup: Setup, tmp_path: Path, log: Path, **env: object) -> WorkerProcess:
    topology = write_topology(setup.topology, tmp_path / "topology.yaml")
    args = ["--topology", str(topology), "-b", setup.kafka.bootstrap_servers]
    variables = worker_env(
        KEP_TEST_TOPIC=setup.topic,
        KEP_TEST_GROUP=setup.group,
        KEP_TEST_HOOKS_LOG=log,
        KEP_IDEMPOTENCY_STORE=f"sqlite:///{tmp_path / 'idem.db'}",
        **env,
    )
    return WorkerProcess("tests.apps.hooks:app", args, variables, tmp_path / "worker.log")


def _steps(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    return [(step, int(pid)) for step, pid in (line.split() for line in log.read_text().splitlines())]


def test_with_two_processes_only_the_worker_processes_run_the_hooks(kafka: str, tmp_path: Path) -> None:
    setup = applied_topology(kafka, partitions=2)
    produce_orders(setup, 40)
    log = tmp_path / "hooks.log"
    worker = _hooks_worker(setup, tmp_path, log, KEP_PROCESSES=2).start()
    assert worker.proc is not None
    supervisor = worker.proc.pid

    def count(wanted: str) -> int:
        return sum(step == wanted for step, _ in _steps(log))

    wait_until(lambda: count("startup") == 2, timeout=120, message=f"two workers started\n{worker.log()}")
    wait_until(lambda: count("handle") >= 40, timeout=120, message=f"every event handled\n{worker.log()}")
    assert worker.terminate(60) == 0, worker.log()
    steps = _steps(log)
    imported = {pid for step, pid in steps if step == "import"}
    workers = imported - {supervisor}
    assert supervisor in imported and len(workers) == 2  # the supervisor imports the app to check it
    assert {pid for step, pid in steps if step == "handle"} <= workers
    assert sorted(pid for step, pid in steps if step == "startup") == sorted(workers)  # not the supervisor
    assert sorted(pid for step, pid in steps if step == "shutdown") == sorted(workers)
    for pid in workers:  # startup before that process's first event, shutdown after its last
        own = [step for step, who in steps if who == pid and step != "import"]
        assert own[0] == "startup" and own[-1] == "shutdown" and own.count("shutdown") == 1, own


def test_kep_run_with_a_failing_startup_hook_exits_with_the_error_and_no_secret(
    kafka: str, tmp_path: Path
) -> None:
    setup = applied_topology(kafka, partitions=1)
    produce_orders(setup, 3)
    log = tmp_path / "hooks.log"
    worker = _hooks_worker(setup, tmp_path, log, KEP_PROCESSES=1, KEP_TEST_HOOK_FAIL=1).start()
    assert worker.proc is not None
    assert worker.proc.wait(120) == 2, worker.log()
    output = worker.log()
    assert "error: startup hook tests.apps.hooks.connect failed: RuntimeError: pool refused:" in output
    assert "hunter2" not in output and "hunter2" in SECRET_URL
    assert "Traceback" not in output
    assert [step for step, _ in _steps(log)] == ["import"]  # no event handled, no shutdown hook
