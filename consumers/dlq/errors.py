"""Errors raised by the dead-letter tools.

Hierarchy::

    KepError
    └── ConsumerError (consumers.errors)
        └── DeadLetterError            reading or replaying a dead-letter topic failed
            ├── TopicNotFoundError     the topic does not exist on the cluster (names it)
            ├── InvalidFilterError     a replay filter that cannot be used (names the option and value)
            ├── NotADeadLetterTopicError  a topic the topology does not declare as a dead-letter topic
            ├── NoReplayPathError      the group has no retry topic to hand a dead letter back to
            └── ReadError              the broker answered a fetch with an error (names topic and partition)
"""

from __future__ import annotations

from kep.consumers.errors import ConsumerError


class DeadLetterError(ConsumerError):
    """Reading or replaying a dead-letter topic failed."""


class TopicNotFoundError(DeadLetterError):
    """The topic does not exist on the cluster."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist on the cluster")
        self.topic = topic


class InvalidFilterError(DeadLetterError):
    """A replay or show filter that cannot be used."""


class ReadError(DeadLetterError):
    """The broker answered a fetch with an error."""


class NotADeadLetterTopicError(DeadLetterError):
    """The topic is not a dead-letter topic of the topology (a main or retry topic, or unknown)."""


class NoReplayPathError(DeadLetterError):
    """The group that dead-lettered the records has no retry topic for their source (blocking mode, no delays)."""
