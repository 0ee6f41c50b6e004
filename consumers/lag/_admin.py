"""Admin reads for lag, each bounded by a timeout and wrapped in a ``LagReadError`` naming what failed.

Requests for many groups are sent together and then awaited, so a poll of 50 groups costs about one round
trip per kind of request, not 50.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from kep.consumers.lag.errors import LagReadError

TopicPartitionKey = tuple[str, int]

_INACTIVE = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD}
_ACTIVE = {
    ConsumerGroupState.STABLE,
    ConsumerGroupState.PREPARING_REBALANCING,
    ConsumerGroupState.COMPLETING_REBALANCING,
}


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """What ``describe_consumer_groups`` says about a group.

    ``members`` is the member count the broker lists (the embedded broker always lists none);
    ``active`` is ``False`` for an Empty or Dead group, ``True`` for a Stable or rebalancing one, ``None``
    when the broker does not know.
    """

    state: str
    members: int
    active: bool | None
    assigned: frozenset[TopicPartitionKey]


def _reason(exc: object) -> str:
    """``CODE: description`` for Kafka errors (``_TIMED_OUT: Local: Timed out``), else the exception."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return f"{type(exc).__name__}: {exc}"


def _result(future: Future[Any], what: str, timeout_s: float) -> Any:
    try:
        return future.result(timeout=timeout_s + 1.0)
    except Exception as exc:  # KafkaException, TimeoutError, or a client-side error
        raise LagReadError(f"cannot read {what}: {_reason(exc)}") from exc


def list_group_ids(admin: AdminClient, timeout_s: float) -> list[str]:
    """Every consumer group id the cluster lists (filters are applied by the caller).

    A broker that did not answer fails the whole listing: its groups would otherwise vanish silently."""
    listing = _result(admin.list_consumer_groups(request_timeout=timeout_s), "the consumer groups", timeout_s)
    if listing.errors:
        raise LagReadError(f"cannot read the consumer groups: {_reason(listing.errors[0])}")
    return sorted({group.group_id for group in listing.valid})


def describe_groups(
    admin: AdminClient, groups: Iterable[str], timeout_s: float
) -> dict[str, GroupInfo | LagReadError]:
    wanted = list(groups)
    if not wanted:
        return {}
    futures = admin.describe_consumer_groups(wanted, request_timeout=timeout_s)
    out: dict[str, GroupInfo | LagReadError] = {}
    for group, future in futures.items():
        try:
            description = _result(future, f"group {group!r}", timeout_s)
        except LagReadError as exc:
            out[group] = exc
            continue
        assigned = {
            (tp.topic, tp.partition)
            for member in description.members
            if member.assignment is not None
            for tp in member.assignment.topic_partitions
        }
        state = description.state
        active = False if state in _INACTIVE else True if state in _ACTIVE else None
        out[group] = GroupInfo(state.name, len(description.members), active, frozenset(assigned))
    return out


def committed_offsets(
    admin: AdminClient,
    groups: Iterable[str],
    timeout_s: float,
    partitions: Iterable[TopicPartitionKey] | None = None,
) -> dict[str, dict[TopicPartitionKey, int] | LagReadError]:
    """Per group, its committed offsets (partitions that have one); a ``LagReadError`` where it failed."""
    wanted = [TopicPartition(t, p) for t, p in partitions] if partitions is not None else None
    if wanted is not None and not wanted:
        return {group: {} for group in groups}
    futures = {
        group: admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, wanted)], request_timeout=timeout_s
        )[group]
        for group in groups
    }
    out: dict[str, dict[TopicPartitionKey, int] | LagReadError] = {}
    for group, future in futures.items():
        try:
            answer = _result(future, f"the committed offsets of group {group!r}", timeout_s)
        except LagReadError as exc:
            out[group] = exc
            continue
        failed = [tp for tp in answer.topic_partitions if tp.error is not None]
        if failed:
            tp = failed[0]
            where = f"group {group!r} on {tp.topic}[{tp.partition}]"
            out[group] = LagReadError(f"cannot read the committed offset of {where}: {_reason(tp.error)}")
            continue
        out[group] = {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions if tp.offset >= 0}
    return out


def _send_list_offsets(
    admin: AdminClient,
    keys: Iterable[TopicPartitionKey],
    spec: Any,
    timeout_s: float,
    isolation: IsolationLevel | None = None,
) -> Mapping[TopicPartition, Future[Any]]:
    request = {TopicPartition(t, p): spec for t, p in set(keys)}
    if not request:
        return {}
    extra = {} if isolation is None else {"isolation_level": isolation}
    futures: Mapping[TopicPartition, Future[Any]] = admin.list_offsets(
        request, request_timeout=timeout_s, **extra
    )
    return futures


def _collect_offsets(
    futures: Mapping[TopicPartition, Future[Any]], what: str, timeout_s: float
) -> dict[TopicPartitionKey, int]:
    out: dict[TopicPartitionKey, int] = {}
    for tp, future in futures.items():
        try:
            info = _result(future, f"the {what} of {tp.topic}[{tp.partition}]", timeout_s)
        except LagReadError:
            continue
        out[(tp.topic, tp.partition)] = int(info.offset)
    return out


def _isolation(read_committed: bool) -> IsolationLevel:
    return IsolationLevel.READ_COMMITTED if read_committed else IsolationLevel.READ_UNCOMMITTED


def log_ends(
    admin: AdminClient, keys: Iterable[TopicPartitionKey], read_committed: bool, timeout_s: float
) -> dict[TopicPartitionKey, int]:
    """ListOffsets latest at an isolation level: the last stable offset under read_committed, else the high
    watermark. One request per partition leader; failures are absent. Wrong on the embedded broker (it
    answers the start of the last batch + 1): ``LagProbe`` checks it against a fetch before trusting it."""
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    futures = _send_list_offsets(admin, keys, latest, timeout_s, _isolation(read_committed))
    return _collect_offsets(futures, "log end", timeout_s)


def log_starts_and_ends(
    admin: AdminClient, keys: Iterable[TopicPartitionKey], read_committed: bool | None, timeout_s: float
) -> tuple[dict[TopicPartitionKey, int], dict[TopicPartitionKey, int] | None]:
    """The log starts (ListOffsets earliest, right on any broker) and ``log_ends``, both requests in flight
    together (librdkafka sends one per partition leader); failures are absent; no ends when
    ``read_committed`` is ``None``."""
    wanted = set(keys)
    earliest = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    starts = _send_list_offsets(admin, wanted, earliest, timeout_s)
    ends = (
        None
        if read_committed is None
        else _send_list_offsets(admin, wanted, latest, timeout_s, _isolation(read_committed))
    )
    return (
        _collect_offsets(starts, "log start", timeout_s),
        None if ends is None else _collect_offsets(ends, "log end", timeout_s),
    )


def partition_counts(admin: AdminClient, topics: Iterable[str], timeout_s: float) -> dict[str, int]:
    """Partition count of each of ``topics`` (a metadata request naming them, not the whole cluster).

    Topics that do not exist (deleted) or could not be described are absent."""
    names = sorted(set(topics))
    if not names:
        return {}
    futures = admin.describe_topics(TopicCollection(names), request_timeout=timeout_s)
    out: dict[str, int] = {}
    for name, future in futures.items():
        try:
            description = _result(future, f"topic {name!r}", timeout_s)
        except LagReadError:
            continue
        out[name] = len(description.partitions)
    return out
