"""Replay progress from the first dead letter on: the replay group of each dead-letter topic exists from the start.

``kep dlq replay`` keeps its progress in the group ``kep-dlq-replay.<dead-letter topic>``. Its lag is the number
of dead letters still waiting for a replay, which is what the dashboard shows as a dead-letter topic's depth. A
group only exists once it has committed, so :func:`start_replay_progress` commits the log start for a topic whose
replay group has nothing committed yet (``kep run`` calls it for its group's dead-letter topics): from then on the
lag exporter, watching the replay groups with the groups, reports every dead letter. Committing the log start
marks nothing as replayed, and a replay that already committed is never touched.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from kep.consumers.dlq.errors import TopicNotFoundError
from kep.consumers.dlq.reader import TopicReader
from kep.consumers.dlq.replay import replay_group
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)


def start_replay_progress(
    kafka: KafkaSettings, dlq_topics: Iterable[str], *, timeout_s: float = 10.0
) -> list[str]:
    """Commit the log start for the replay group of each topic that has no committed offset yet.

    Returns the topics started. Missing topics are skipped; other failures are logged, never raised (a worker
    must start without it).
    """
    started = []
    for topic in dlq_topics:
        group = replay_group(topic)
        try:
            with TopicReader(kafka, group_id=group, idle_timeout=timeout_s) as reader:
                partitions = reader.partitions(topic)
                if any(offset is not None for offset in reader.committed(topic, partitions).values()):
                    continue
                reader.commit(topic, reader.log_starts(topic, partitions))
        except TopicNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - best effort: the worker starts without it
            log.warning("cannot start the replay progress group", group=group, error=str(exc))
            continue
        log.info("replay progress group started at the log start", group=group, topic=topic)
        started.append(topic)
    return started
