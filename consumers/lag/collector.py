"""``LagCollector``: the exporter's Prometheus metrics, built from the latest poll only (a scrape never waits
for the cluster). Metric names are in ``LAG_METRIC_NAMES``; ``docs/lag.md`` describes each one.

The families are built once per poll and reused by every scrape until the next one. ``kep_group_status`` has
one series per status (1 for the current one, 0 for the others); ``kep_partition_status`` only the current
status's series (value 1), so a partition costs one status series, not five.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from kep.consumers.lag.snapshot import GroupLag, LagSnapshot
from kep.consumers.lag.status import STATUSES

GROUP_LAG_MESSAGES: Final = "kep_group_lag_messages"
GROUP_LAG_SECONDS: Final = "kep_group_lag_seconds"
GROUP_LAG_MESSAGES_SUM: Final = "kep_group_lag_messages_sum"
GROUP_MAX_LAG_SECONDS: Final = "kep_group_max_lag_seconds"
GROUP_COMMITTED_OFFSET: Final = "kep_group_committed_offset"
GROUP_LOG_END_OFFSET: Final = "kep_group_log_end_offset"
GROUP_COMMITTED_BELOW_LOG_START: Final = "kep_group_committed_below_log_start"
GROUP_MEMBERS: Final = "kep_group_members"
GROUP_STATUS: Final = "kep_group_status"
PARTITION_STATUS: Final = "kep_partition_status"
EXPORTER_LAST_POLL_TIMESTAMP: Final = "kep_exporter_last_poll_timestamp_seconds"
EXPORTER_POLL_DURATION: Final = "kep_exporter_poll_duration_seconds"
EXPORTER_POLL_ERRORS: Final = "kep_exporter_poll_errors_total"
BUILD_INFO: Final = "kep_build_info"

LAG_METRIC_NAMES: Final[frozenset[str]] = frozenset(
    {
        GROUP_LAG_MESSAGES,
        GROUP_LAG_SECONDS,
        GROUP_LAG_MESSAGES_SUM,
        GROUP_MAX_LAG_SECONDS,
        GROUP_COMMITTED_OFFSET,
        GROUP_LOG_END_OFFSET,
        GROUP_COMMITTED_BELOW_LOG_START,
        GROUP_MEMBERS,
        GROUP_STATUS,
        PARTITION_STATUS,
        EXPORTER_LAST_POLL_TIMESTAMP,
        EXPORTER_POLL_DURATION,
        EXPORTER_POLL_ERRORS,
        BUILD_INFO,
    }
)

_PARTITION = ["group", "topic", "partition"]


@dataclass(frozen=True, slots=True)
class PollState:
    """What the poll thread publishes after each poll; replaced as a whole, never mutated."""

    snapshot: LagSnapshot | None = None
    last_poll_at: float | None = None
    last_duration_s: float | None = None
    errors_total: int = 0
    last_success_at: float | None = None


def _kep_version() -> str:
    try:
        return version("kep-kafka")
    except PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "0.0.0"


class _Families:
    def __init__(self) -> None:
        def part(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*_PARTITION, *extra])

        self.lag = part(GROUP_LAG_MESSAGES, "Records left between the group's position and the log end.")
        self.lag_seconds = part(GROUP_LAG_SECONDS, "Age of the oldest unprocessed record; 0 when caught up.")
        self.committed = part(
            GROUP_COMMITTED_OFFSET, "The group's committed offset (absent without a commit)."
        )
        self.log_end = part(GROUP_LOG_END_OFFSET, "Log end offset at the group's isolation level.")
        self.below_start = part(
            GROUP_COMMITTED_BELOW_LOG_START,
            "1 where the committed offset is below the log start (records deleted unprocessed), else 0.",
        )
        self.partition_status = part(
            PARTITION_STATUS, "1, labelled with the partition's current status.", ("status",)
        )
        self.topic_sum = GaugeMetricFamily(
            GROUP_LAG_MESSAGES_SUM,
            "Lag in messages summed over a topic's partitions.",
            labels=["group", "topic"],
        )
        self.max_seconds = GaugeMetricFamily(
            GROUP_MAX_LAG_SECONDS, "Largest lag in seconds over the group's partitions.", labels=["group"]
        )
        self.members = GaugeMetricFamily(
            GROUP_MEMBERS, "Members the broker lists for the group.", labels=["group"]
        )
        self.group_status = GaugeMetricFamily(
            GROUP_STATUS,
            "1 for the group's current status (its worst partition's), 0 for the others.",
            labels=["group", "status"],
        )

    def add_group(self, group: GroupLag) -> None:
        name = group.group
        for p in group.partitions:
            labels = [name, p.topic, str(p.partition)]
            if p.lag_messages is not None:
                self.lag.add_metric(labels, p.lag_messages)
            if p.lag_seconds is not None:
                self.lag_seconds.add_metric(labels, p.lag_seconds)
            if p.committed is not None:
                self.committed.add_metric(labels, p.committed)
                if p.log_end is not None:
                    self.below_start.add_metric(labels, 1.0 if p.below_log_start else 0.0)
            if p.log_end is not None:
                self.log_end.add_metric(labels, p.log_end)
            self.partition_status.add_metric([*labels, p.status.value], 1.0)
        for topic, total in sorted(group.topic_lag().items()):
            self.topic_sum.add_metric([name, topic], total)
        self.max_seconds.add_metric([name], group.max_lag_seconds)
        if group.members is not None:
            self.members.add_metric([name], group.members)
        for status in STATUSES:
            self.group_status.add_metric([name, status.value], 1.0 if group.status is status else 0.0)

    def all(self) -> list[Metric]:
        return [
            self.lag,
            self.lag_seconds,
            self.topic_sum,
            self.max_seconds,
            self.committed,
            self.log_end,
            self.below_start,
            self.members,
            self.group_status,
            self.partition_status,
        ]


class LagCollector(Collector):
    """Yields the lag metrics of the latest ``PollState`` that ``source()`` returns."""

    def __init__(self, source: Callable[[], PollState]) -> None:
        self._source = source
        self._version = _kep_version()
        self._cache: tuple[PollState, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        state = self._source()
        cached = self._cache
        if cached is not None and cached[0] is state:
            yield from cached[1]
            return
        metrics = list(self._build(state))
        self._cache = (state, metrics)
        yield from metrics

    def _build(self, state: PollState) -> Iterator[Metric]:
        families = _Families()
        if state.snapshot is not None:
            for group in state.snapshot.groups:
                families.add_group(group)
        yield from families.all()
        last = GaugeMetricFamily(EXPORTER_LAST_POLL_TIMESTAMP, "Unix time the last poll finished.")
        if state.last_poll_at is not None:
            last.add_metric([], state.last_poll_at)
        yield last
        duration = GaugeMetricFamily(EXPORTER_POLL_DURATION, "How long the last poll took.")
        if state.last_duration_s is not None:
            duration.add_metric([], state.last_duration_s)
        yield duration
        yield CounterMetricFamily(
            EXPORTER_POLL_ERRORS, "Polls that failed as a whole.", value=state.errors_total
        )
        yield InfoMetricFamily(
            BUILD_INFO.removesuffix("_info"), "kep version.", value={"version": self._version}
        )
