"""Three scheduler replicas of a one-second schedule, one of them (at random) killed with SIGKILL and restarted
every few seconds, and a real ``kep run`` handling the events: every firing of the window is handled exactly
once, none missing (``missed: catch_up``), none twice."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kep.consumers.schedules import firing_id
from tests.schedules.support import (
    NAME,
    firing_times,
    handled,
    handler_worker,
    now,
    schedule_setup,
    scheduler,
)
from tests.support.kafka import read_topic
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHAOS_S = 45.0  # kills for this long: ~45 one-second firings, leaders killed several times
MIN_FIRINGS = 30


def baseline(bootstrap: str, state_topic: str) -> datetime:
    """Where the schedule started: the first leader's baseline record in the state topic."""
    for record in read_topic(bootstrap, state_topic):
        value = json.loads(record.value())
        if record.key() == f"fired/{NAME}".encode() and value.get("baseline"):
            return datetime.fromtimestamp(value["at_ms"] / 1000, UTC)
    raise AssertionError("no baseline record in the state topic")


def test_kill9_of_scheduler_replicas_fires_each_firing_once(kafka: str, tmp_path: Path) -> None:
    setup = schedule_setup(kafka, tmp_path, missed="catch_up", catch_up_limit=1000)
    worker, effects = handler_worker(setup, tmp_path, schedules=False)
    worker.start()
    replicas = [scheduler(setup, tmp_path, f"scheduler-{i}").start() for i in range(3)]
    rng = random.Random(11)
    kills = 0
    starts = Counter({replica.log_path: 1 for replica in replicas})
    try:
        wait_until(lambda: len(handled(effects)) >= 1, timeout=60, message="the first firing handled")
        chaos_ends = time.monotonic() + CHAOS_S
        while time.monotonic() < chaos_ends:
            next_kill = time.monotonic() + rng.uniform(2.0, 4.0)
            wait_until(
                lambda t=next_kill: time.monotonic() >= t, timeout=10, interval=0.2, message="next kill"
            )  # type: ignore[misc]
            victim = rng.choice(replicas)
            victim.kill9()
            victim.start()
            starts[victim.log_path] += 1
            kills += 1
        window_end = now()
        start = baseline(kafka, setup.state_topic)
        first = start.replace(microsecond=0) + timedelta(seconds=1)  # the first firing after the baseline
        expected = firing_times(first, window_end)
        wait_until(
            lambda: set(expected) <= set(handled(effects)),
            timeout=120,
            interval=0.5,
            message=f"all {len(expected)} firings of the window handled",
        )
        # A replica restarted just now may still be importing, before its SIGTERM handler exists: stop each
        # once it is up, or its exit code would say nothing about its shutdown.
        wait_until(
            lambda: all(
                r.log_path.read_text(errors="replace").count("schedules: started") >= starts[r.log_path]
                for r in replicas
            ),
            timeout=60,
            interval=0.2,
            message="every replica up again",
        )
    finally:
        codes = [replica.terminate(60) for replica in replicas]
        worker_code = worker.terminate(60)
    ids = handled(effects)
    known = firing_times(start - timedelta(seconds=1), now() + timedelta(seconds=5))
    twice = [known.get(i, i) for i, n in Counter(ids).items() if n > 1]
    published = read_topic(kafka, setup.topic)
    print(
        f"\nfirings in the window: {len(expected)}, kills: {kills}, records published: {len(published)}, "
        f"distinct: {len({dict(r.headers())['kep-idempotency-key'] for r in published})}"
    )
    assert kills >= 10
    assert len(expected) >= MIN_FIRINGS
    assert twice == [], f"handled twice: {twice}"
    assert set(ids) <= set(known), "an event that is no firing of the schedule was handled"
    assert firing_id(NAME, start) not in ids, "the baseline is no firing"
    assert codes == [0, 0, 0], [r.log() for r in replicas]
    assert worker_code == 0, worker.log()
    assert "schedules: started" not in worker.log_path.read_text(), "KEP_SCHEDULES=false did not turn it off"
