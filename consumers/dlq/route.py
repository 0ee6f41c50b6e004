"""Where a dead-letter topic's records go back to, taken from the topology alone, never from a record's headers.

A dead-letter topic ``{source}.{group}.dlq`` belongs to one group and one source topic (``Topology.derived_topics``).
A replay hands its records back to **that group only**, through the group's first retry topic for that source
(``{source}.{group}.retry.{first delay}``): the group's worker consumes it, runs the handler at once (the copy is
due when it is written) and, if it fails again, retries it with the full budget. Other groups reading the source
topic never see the copy, so none of them handles the event a second time once its own idempotency key expired.

Sending elsewhere is an explicit choice (``kep dlq replay --to TOPIC``): then every group reading ``TOPIC``
receives the copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from kep.consumers.dlq.errors import NoReplayPathError, NotADeadLetterTopicError
from kep.topology.model import Topology


@dataclass(frozen=True, slots=True)
class ReplayRoute:
    """The dead-letter topic, the group and source topic it belongs to, and where its records are sent.

    ``explicit`` is true when the operator named ``target`` (``--to``): the records then go there as they were
    first published, without provenance.
    """

    dlq_topic: str
    source: str
    group: str
    target: str
    explicit: bool = False


def dead_letter_owner(topology: Topology, topic: str) -> tuple[str, str]:
    """``(source topic, group)`` of the dead-letter topic ``topic``; ``NotADeadLetterTopicError`` saying what the
    topic is otherwise (a main topic, a retry topic, or unknown to the topology)."""
    derived = topology.derived_topics()
    for d in derived:
        if d.kind == "dlq" and d.spec.name == topic:
            return d.source, d.group
    dead_letter_topics = sorted(d.spec.name for d in derived if d.kind == "dlq")
    listing = ", ".join(dead_letter_topics) or "none"
    if any(t.name == topic for t in topology.topics):
        own = [name for name in dead_letter_topics if name.startswith(f"{topic}.")]
        return _refuse(
            f"{topic!r} is a main topic, not a dead-letter topic: the dead letters of its groups are in "
            f"{', '.join(own) or 'no dead-letter topic (no group reading it keeps dead letters)'}"
        )
    for d in derived:
        if d.kind == "retry" and d.spec.name == topic:
            own_dlq = next((n for n in dead_letter_topics if n == f"{d.source}.{d.group}.dlq"), None)
            where = f"its dead letters are in {own_dlq}" if own_dlq else "it keeps no dead letters"
            return _refuse(
                f"{topic!r} is a retry topic of group {d.group!r}, not a dead-letter topic; {where}"
            )
    return _refuse(
        f"{topic!r} is not a dead-letter topic of the topology (its dead-letter topics: {listing})"
    )


def refuse_other_topics(topology: Topology, topic: str) -> None:
    """``NotADeadLetterTopicError`` when the topology knows ``topic`` as a main or retry topic; a topic it does
    not know at all passes (it may be a dead-letter topic of another topology)."""
    known = {t.name for t in topology.topics} | {d.spec.name for d in topology.derived_topics()}
    if topic in known:
        dead_letter_owner(topology, topic)


def _refuse(message: str) -> tuple[str, str]:
    raise NotADeadLetterTopicError(message)


def replay_route(topology: Topology, dlq_topic: str, to: str | None = None) -> ReplayRoute:
    """Where the records of ``dlq_topic`` go: the first retry topic of the group that dead-lettered them, or
    ``to`` when given. Raises ``NotADeadLetterTopicError`` or ``NoReplayPathError``."""
    source, group = dead_letter_owner(topology, dlq_topic)
    if to is not None:
        return ReplayRoute(dlq_topic, source, group, to, explicit=True)
    tiers = topology.group(group).retry_tiers(source)
    if not tiers:
        raise NoReplayPathError(
            f"group {group!r} has no retry topic for {source!r} (it retries in place, or has no delays), so "
            f"its dead letters cannot be handed back to it alone; send them elsewhere with --to TOPIC "
            f"(every group reading that topic receives them; --to {source} reaches every group of {source})"
        )
    return ReplayRoute(dlq_topic, source, group, tiers[0].topic)
