"""Dead letters: list, show and replay the records of dead-letter topics."""

from kep.consumers.dlq.errors import DeadLetterError, InvalidFilterError, ReadError, TopicNotFoundError
from kep.consumers.dlq.filters import ReplayFilter
from kep.consumers.dlq.reader import TopicReader
from kep.consumers.dlq.records import DeadLetterRecord, ReplayMarker
from kep.consumers.dlq.replay import ReplayResult, replay, replay_group
from kep.consumers.dlq.show import describe, fetch_records
from kep.consumers.dlq.summary import DeadLetterSummary, DeadLetterTopic, dead_letter_topics, summarize

__all__ = [
    "DeadLetterError",
    "DeadLetterRecord",
    "DeadLetterSummary",
    "DeadLetterTopic",
    "InvalidFilterError",
    "ReadError",
    "ReplayFilter",
    "ReplayMarker",
    "ReplayResult",
    "TopicNotFoundError",
    "TopicReader",
    "dead_letter_topics",
    "describe",
    "fetch_records",
    "replay",
    "replay_group",
    "summarize",
]
