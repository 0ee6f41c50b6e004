"""Schedule tests: a topology with one schedule of shop orders, applied; schedulers and workers as real processes;
the firings a handler recorded, mapped back to their times."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kep.consumers.schedules import firing_id
from kep.topology import admin
from kep.topology.model import ConsumerGroupSpec, ScheduleSpec, ScheduleStateSpec, TopicSpec, Topology
from kep.topology.settings import KafkaSettings
from tests.support import processes
from tests.support.kafka import unique
from tests.support.processes import ROOT, WorkerProcess, worker_env, write_topology

ORDER_FIELDS: dict[str, Any] = {
    "order_id": "nightly-sync",
    "customer_id": "crm",
    "items": [{"sku": "SKU-SYNC", "quantity": 1, "unit_price_cents": 100}],
    "amount_cents": 100,
    "currency": "EUR",
}
NAME = "tick"


@dataclass(frozen=True)
class ScheduleSetup:
    kafka: KafkaSettings
    topology: Topology
    path: Path
    topic: str
    group: str

    @property
    def state_topic(self) -> str:
        return self.topology.schedule_state.topic


def schedule_setup(bootstrap: str, tmp_path: Path, **schedule: Any) -> ScheduleSetup:
    """A unique orders topic, a group reading it, one schedule ``tick`` publishing orders there every second
    (``schedule`` overrides its keys) and a unique state topic and leader group; applied to the cluster and
    written to ``tmp_path/topology.yaml``."""
    topic, group = unique("sched-orders"), unique("sched-grp")
    spec = ScheduleSpec.model_validate(
        {
            "name": NAME,
            "cron": "* * * * * *",
            "timezone": "Europe/Paris",
            "event": "kep.orders.OrderPlaced",
            "topic": topic,
            "fields": ORDER_FIELDS,
            **schedule,
        }
    )
    topology = Topology(
        topics=(
            TopicSpec(name=topic, partitions=3, value_schema="kep.orders.OrderPlaced", key_field="order_id"),
        ),
        groups=(ConsumerGroupSpec(name=group, topics=(topic,)),),
        schedules=(spec,),
        schedule_state=ScheduleStateSpec(topic=unique("sched-state"), group=unique("sched-leader")),
    )
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    admin.apply(admin.plan(topology, kafka), kafka)
    path = write_topology(topology, tmp_path / "topology.yaml")
    return ScheduleSetup(kafka, topology, path, topic, group)


class SchedulerProcess(WorkerProcess):
    """``kep schedules run`` as a real process (killed like a worker)."""

    def start(self) -> SchedulerProcess:
        env = {**os.environ, "KEP_LOG_FORMAT": "json", "KEP_LOG_LEVEL": "INFO", **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kep.cli.main", "schedules", "run", *self.args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        processes._started.append(self)
        return self


def scheduler(setup: ScheduleSetup, tmp_path: Path, name: str) -> SchedulerProcess:
    args = ["--topology", str(setup.path), "-b", setup.kafka.bootstrap_servers]
    return SchedulerProcess("", args, {}, tmp_path / f"{name}.log")


def handler_worker(setup: ScheduleSetup, tmp_path: Path, *, schedules: bool) -> tuple[WorkerProcess, Path]:
    """A ``kep run tests.apps.effects:app`` worker appending each handled event's id to a file (returned),
    with a SQLite idempotency store; ``schedules``: whether it also runs the scheduler."""
    effects = tmp_path / "handled.txt"
    env = worker_env(
        KEP_TEST_TOPIC=setup.topic,
        KEP_TEST_GROUP=setup.group,
        KEP_TEST_PLAIN_EFFECTS=effects,
        KEP_IDEMPOTENCY_STORE=f"sqlite:///{tmp_path / 'idem.db'}",
        KEP_SCHEDULES="true" if schedules else "false",
        KEP_LOG_LEVEL="INFO",
    )
    args = ["--topology", str(setup.path), "-b", setup.kafka.bootstrap_servers]
    return WorkerProcess("tests.apps.effects:app", args, env, tmp_path / "worker.log"), effects


def handled(effects: Path) -> list[str]:
    """The event ids the handler recorded, one per execution, in order."""
    if not effects.exists():
        return []
    return [line.split()[0] for line in effects.read_text().splitlines() if line.strip()]


def firing_times(start: datetime, end: datetime, name: str = NAME) -> dict[str, datetime]:
    """id -> time of every one-second firing of ``name`` in ``[start, end]``."""
    at = start.replace(microsecond=0)
    found = {}
    while at <= end:
        found[firing_id(name, at)] = at
        at += timedelta(seconds=1)
    return found


def now() -> datetime:
    return datetime.now(UTC)
