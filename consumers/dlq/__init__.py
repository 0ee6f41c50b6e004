"""Dead letters: list, show and replay the records of dead-letter topics."""

from kep.consumers.dlq.errors import (
    DeadLetterError,
    InvalidFilterError,
    NoReplayPathError,
    NotADeadLetterTopicError,
    ReadError,
    TopicNotFoundError,
)
from kep.consumers.dlq.filters import ReplayFilter
from kep.consumers.dlq.progress import start_replay_progress
from kep.consumers.dlq.reader import TopicReader
from kep.consumers.dlq.records import DeadLetterRecord, ReplayMarker
from kep.consumers.dlq.replay import ReplayResult, replay, replay_group
from kep.consumers.dlq.route import ReplayRoute, dead_letter_owner, refuse_other_topics, replay_route
from kep.consumers.dlq.show import describe, fetch_records
from kep.consumers.dlq.summary import DeadLetterSummary, DeadLetterTopic, dead_letter_topics, summarize

__all__ = [
    "DeadLetterError",
    "DeadLetterRecord",
    "DeadLetterSummary",
    "DeadLetterTopic",
    "InvalidFilterError",
    "NoReplayPathError",
    "NotADeadLetterTopicError",
    "ReadError",
    "ReplayFilter",
    "ReplayMarker",
    "ReplayResult",
    "ReplayRoute",
    "TopicNotFoundError",
    "TopicReader",
    "dead_letter_owner",
    "dead_letter_topics",
    "describe",
    "fetch_records",
    "refuse_other_topics",
    "replay",
    "replay_group",
    "replay_route",
    "start_replay_progress",
    "summarize",
]
