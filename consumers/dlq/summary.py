"""``kep dlq ls``: how many dead letters each topic holds, why, and how old they are.

Counting reads every record to the end of each partition (markers excluded). A size from offsets alone
(log end - log start) would count replay markers, and on some brokers ListOffsets "latest" is wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from kep.consumers.dlq.errors import TopicNotFoundError
from kep.consumers.dlq.reader import BEGINNING, TopicReader
from kep.consumers.dlq.records import DeadLetterRecord, marker_from, record_from
from kep.topology.model import Topology
from kep.topology.settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class DeadLetterTopic:
    """The dead-letter topic of one consumer group and source topic."""

    group: str
    source: str
    topic: str


@dataclass(slots=True)
class DeadLetterSummary:
    """What a dead-letter topic holds. Times are the dead-lettering times (last failure), epoch ms."""

    topic: str
    exists: bool = True
    partitions: int = 0
    count: int = 0
    replayed: int = 0
    by_exception: Counter[str] = field(default_factory=Counter)
    oldest_ms: int | None = None
    newest_ms: int | None = None

    @property
    def pending(self) -> int:
        """Dead letters not replayed yet."""
        return self.count - self.replayed


def dead_letter_topics(topology: Topology, group: str | None = None) -> list[DeadLetterTopic]:
    """Every dead-letter topic of ``topology`` (or of one ``group``), per group and source topic."""
    groups = [topology.group(group)] if group is not None else list(topology.groups)
    found = []
    for spec in groups:
        for source in spec.topics:
            topic = spec.dlq_topic(source)
            if topic is not None:
                found.append(DeadLetterTopic(group=spec.name, source=source, topic=topic))
    return found


def summarize(
    kafka: KafkaSettings, topics: Sequence[str], *, idle_timeout: float = 30.0
) -> list[DeadLetterSummary]:
    """A summary per topic, in the order given; a topic missing on the cluster has ``exists=False``."""
    summaries = {topic: DeadLetterSummary(topic=topic) for topic in topics}
    replayed: dict[str, set[tuple[int, int]]] = {topic: set() for topic in topics}
    with TopicReader(kafka, idle_timeout=idle_timeout) as reader:
        starts = {}
        for topic in summaries:
            try:
                partitions = reader.partitions(topic)
            except TopicNotFoundError:
                summaries[topic].exists = False
                continue
            summaries[topic].partitions = len(partitions)
            starts.update({(topic, p): BEGINNING for p in partitions})
        for msg in reader.read(starts):
            topic = msg.topic() or ""
            marker = marker_from(msg)
            if marker is not None:
                replayed[topic].add((marker.partition, marker.target_offset))
                continue
            _add(summaries[topic], record_from(msg))
    for topic, summary in summaries.items():
        summary.replayed = len(replayed[topic])
    return list(summaries.values())


def _add(summary: DeadLetterSummary, record: DeadLetterRecord) -> None:
    summary.count += 1
    summary.by_exception[record.exception_type] += 1
    when = record.dead_lettered_ms
    summary.oldest_ms = when if summary.oldest_ms is None else min(summary.oldest_ms, when)
    summary.newest_ms = when if summary.newest_ms is None else max(summary.newest_ms, when)
