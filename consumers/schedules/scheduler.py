"""``Scheduler``: publishes the topology's schedules' firings while this replica leads; see docs/schedules.md.

Every replica runs one (``kep run`` with ``schedules:``, or ``kep schedules run``). One thread calls ``run``;
it polls the group (``Membership``) and the producer, so the delivery callbacks run on it too. While leading it:

1. starts each schedule after its recorded last firing (or after its resume, when later); a schedule never seen
   gets a baseline record at the current time, so a later leader catches up from there;
2. publishes the firings due (``due_firings``: all of them with ``catch_up``, bounded by ``catch_up_limit``; only
   those within ``grace`` with ``skip``), each with its deterministic id as event id and idempotency key;
3. records a firing in the state topic once the broker acknowledged its event and every earlier one of its
   schedule; a firing the broker refused is published again (same id).

A firing published twice (a new leader after a crash, a leader that lost its partition while publishing)
carries the same id, so consumers handle it once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from kep.consumers.schedules.firings import due_firings, firing_id
from kep.consumers.schedules.membership import Membership
from kep.consumers.schedules.metrics import SchedulerMetrics
from kep.consumers.schedules.state import fired_record
from kep.producers.producer import EventProducer
from kep.schemas.events import Event
from kep.schemas.registry import LocalSchemaRegistry
from kep.topology.loader import check_schedules, schema_registry
from kep.topology.model import ScheduleSpec, Topology
from kep.topology.settings import KafkaSettings

__all__ = ["Scheduler"]

log = structlog.get_logger(__name__)
POLL_S = 0.2


@dataclass
class _Flight:
    at: datetime
    event_id: str
    done: bool = False


@dataclass
class _Progress:
    """One schedule's firings as the leader sees them: published through ``after``; ``recorded`` the last one
    written to the state topic; ``flights`` those not yet acknowledged (oldest first)."""

    after: datetime
    recorded: datetime
    flights: deque[_Flight] = field(default_factory=deque)
    epoch: int = 0  # grows when the flights are abandoned (a refused firing): late callbacks are ignored


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class Scheduler:
    """The schedules of ``topology`` on this replica. ``run()`` until ``stop()``; metrics on ``metrics``."""

    def __init__(
        self,
        topology: Topology,
        kafka: KafkaSettings,
        *,
        registry: LocalSchemaRegistry | None = None,
        metrics: SchedulerMetrics | None = None,
        clock: Callable[[], float] = time.time,
        beat: Callable[[], None] | None = None,
    ) -> None:
        registry = registry if registry is not None else schema_registry(topology)
        check_schedules(topology, registry)  # the same check as `kep topology validate`
        self.topology, self.kafka, self.metrics = topology, kafka, metrics or SchedulerMetrics()
        self._models: dict[str, type[Event]] = {s.name: registry.model(s.event) for s in topology.schedules}
        self._clock = clock
        self._beat = beat or (lambda: None)  # each round of the loop (``Health.beat`` for /healthz)
        self._stop = threading.Event()
        self._progress: dict[str, _Progress] = {}
        self._membership: Membership | None = None
        self._producer: EventProducer | None = None

    @property
    def leading(self) -> bool:
        return self._membership is not None and self._membership.leading

    def stop(self) -> None:
        """Ask ``run`` to return (any thread, a signal handler too)."""
        self._stop.set()

    def run(self) -> None:
        """Take part in the group and publish while leading, until ``stop()``; then flush and leave."""
        self._producer = EventProducer(self.kafka, self.topology)
        self._membership = Membership(self.kafka, self.topology.schedule_state, on_change=self._leadership)
        log.info("schedules: started", schedules=[s.name for s in self.topology.schedules])
        try:
            while not self._stop.is_set():
                self._beat()
                self._membership.poll(POLL_S)
                self._producer.poll(0)
                if self._membership.leading:
                    self._fire_due()
        finally:
            self._producer.flush(10)  # acknowledged firings get their state record
            self._membership.close()
            self._producer.close(10)
            self.metrics.leader.set(0)

    # -- leadership -------------------------------------------------------------------------------------------
    def _leadership(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        self._progress = {}
        if leading:
            self._start_progress()

    def _start_progress(self) -> None:
        assert self._membership is not None and self._producer is not None
        now = _at(round(self._clock() * 1000))
        for spec in self.topology.schedules:
            state = self._membership.view.get(spec.name)
            if state.last_fired_ms is None:
                key, value = fired_record(spec.name, _ms(now), None)
                self._producer.produce_raw(
                    self._membership.topic, key, value, on_delivery=self._state_written
                )
                after = now
                log.info("schedules: first run of a schedule; it starts now", schedule=spec.name)
            else:
                after = _at(state.last_fired_ms)
            self._progress[spec.name] = _Progress(after=after, recorded=after)

    # -- firing -------------------------------------------------------------------------------------------
    def _fire_due(self) -> None:
        assert self._membership is not None
        now = datetime.fromtimestamp(self._clock(), UTC)
        for spec in self.topology.schedules:
            progress = self._progress.get(spec.name)
            state = self._membership.view.get(spec.name)
            if progress is None or state.paused:
                continue
            after = progress.after
            resumed = state.resumed_ms()
            if resumed is not None and _at(resumed) > after:
                after = _at(resumed)  # firings of the pause are never fired
            due = due_firings(spec, after, now)
            if due.skipped:
                self._skipped(spec, due.skipped, due.skipped_more)
            for at in due.fire:
                if not self._publish(spec, progress, at):
                    break
            else:
                if due.skipped and not due.fire:
                    progress.after = now - timedelta(seconds=spec.grace)

    def _skipped(self, spec: ScheduleSpec, count: int, more: bool) -> None:
        self.metrics.skipped.labels(spec.name).inc(count)
        log.warning(
            "schedules: missed firings skipped",
            schedule=spec.name,
            skipped=f"{count}+" if more else count,
            missed=spec.missed,
            limit=spec.catch_up_limit if spec.missed == "catch_up" else f"grace {spec.grace}s",
        )

    def _publish(self, spec: ScheduleSpec, progress: _Progress, at: datetime) -> bool:
        assert self._producer is not None
        event_id = firing_id(spec.name, at)
        flight = _Flight(at, event_id)
        epoch = progress.epoch
        try:
            event = spec.event_for(self._models[spec.name], event_id, at)
            self._producer.publish(
                event,
                topic=spec.topic,
                key=spec.key,
                on_delivery=lambda _report, error: self._delivered(spec, progress, flight, epoch, error),
            )
        except Exception as exc:  # noqa: BLE001 - tried again on the next round; the loop must go on
            log.error(
                "schedules: cannot publish a firing", schedule=spec.name, at=at.isoformat(), error=str(exc)
            )
            self.metrics.failures.labels(spec.name).inc()
            return False
        progress.flights.append(flight)
        progress.after = at
        return True

    def _delivered(
        self, spec: ScheduleSpec, progress: _Progress, flight: _Flight, epoch: int, error: object
    ) -> None:
        if epoch != progress.epoch or self._progress.get(spec.name) is not progress:
            return  # abandoned: published again, or leadership changed (the next leader decides)
        if error is not None:
            log.error(
                "schedules: firing not acknowledged; publishing it again",
                schedule=spec.name,
                error=str(error),
            )
            self.metrics.failures.labels(spec.name).inc()
            progress.epoch += 1
            progress.flights.clear()
            progress.after = progress.recorded
            return
        flight.done = True
        last: _Flight | None = None
        while progress.flights and progress.flights[0].done:
            last = progress.flights.popleft()
            self.metrics.firings.labels(spec.name).inc()
            self.metrics.last_firing.labels(spec.name).set(last.at.timestamp())
        if last is not None:
            self._record(spec, progress, last)

    def _record(self, spec: ScheduleSpec, progress: _Progress, flight: _Flight) -> None:
        assert self._producer is not None and self._membership is not None
        key, value = fired_record(spec.name, _ms(flight.at), flight.event_id)
        self._producer.produce_raw(self._membership.topic, key, value, on_delivery=self._state_written)
        progress.recorded = flight.at

    @staticmethod
    def _state_written(_report: object, error: object) -> None:
        if error is not None:
            log.error(
                "schedules: state record not written (the firing may be published again)", error=str(error)
            )
