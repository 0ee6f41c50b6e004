"""Reconcile the cluster with a topology: ``plan`` compares, ``apply`` creates, grows and reconfigures.

Idempotent: after ``apply``, a new ``plan`` is empty. kep never deletes topics it did not just create, never
removes partitions, never changes a replication factor and never unsets configs that the topology does not
mention. A topic without a replication factor is created with the broker's default (``-1``) and its factor is
never compared. Metadata requests name the topology's topics (``describe_topics``), never the whole cluster.

All or nothing: ``apply`` checks every change before making any (refusals, a replication factor above the
number of brokers, partition growth through the broker's own validate-only CreatePartitions), then creates
topics, sets configs and grows partitions last (the one change Kafka cannot undo). When the broker refuses a
change midway, what this ``apply`` did is undone (topics it created deleted, configs it set put back) and the
error says so.

>>> result = apply(plan(topology, settings), settings)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # the package has no __all__
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from kep.topology._actions import (
    KEY_REMAPPING,
    Action,
    AlterConfigs,
    ApplyResult,
    ConfigChange,
    CreateTopic,
    IncreasePartitions,
    Plan,
    Refusal,
)
from kep.topology.errors import ApplyError, PartitionGrowthUnsupportedError, PlanError, RefusedChangeError
from kep.topology.model import TopicSpec, Topology
from kep.topology.settings import KafkaSettings

__all__ = ["apply", "plan"]

log = structlog.get_logger(__name__)

_LIST_VALUED = frozenset({"cleanup.policy"})
_GRACE_SECONDS = 2.0


def plan(topology: Topology, settings: KafkaSettings, *, timeout: float = 15.0) -> Plan:
    """Compare ``topology.all_topic_specs()`` with the cluster; ``PlanError`` when it cannot be read."""
    admin = _admin(settings)
    desired = topology.all_topic_specs()
    topics = _describe_topics(admin, settings, [spec.name for spec in desired], timeout)
    existing = [spec for spec in desired if spec.name in topics]
    current_configs = _describe_configs(admin, [spec.name for spec in existing], timeout)
    actions: list[Action] = []
    refusals: list[Refusal] = []
    unchanged: list[str] = []
    for spec in desired:
        topic = topics.get(spec.name)
        if topic is None:
            actions.append(CreateTopic(spec))
            continue
        found = _compare(spec, topic, current_configs.get(spec.name, {}))
        actions += [item for item in found if not isinstance(item, Refusal)]
        refusals += [item for item in found if isinstance(item, Refusal)]
        if not found:
            unchanged.append(spec.name)
    return Plan(actions=tuple(actions), refusals=tuple(refusals), unchanged=tuple(unchanged))


def _compare(spec: TopicSpec, topic: Any, configs: dict[str, str | None]) -> list[Action | Refusal]:
    """``topic``: a ``TopicDescription`` (``partitions`` is a list of ``TopicPartitionInfo``)."""
    found: list[Action | Refusal] = []
    partitions = len(topic.partitions)
    if partitions > spec.partitions:
        found.append(Refusal(spec.name, "shrink_partitions", partitions, spec.partitions))
    elif partitions < spec.partitions:
        found.append(IncreasePartitions(spec.name, partitions, spec.partitions))
    replicas = {len(p.replicas) for p in topic.partitions}
    if spec.replication_factor is not None and replicas and spec.replication_factor not in replicas:
        found.append(Refusal(spec.name, "replication_factor", max(replicas), spec.replication_factor))
    changes = tuple(
        ConfigChange(key, configs.get(key), value)
        for key, value in sorted(spec.configs.items())
        if not _same_config(key, configs.get(key), value)
    )
    if changes:
        found.append(AlterConfigs(spec.name, changes))
    return found


def _same_config(key: str, current: str | None, desired: str) -> bool:
    if current is None:
        return False
    if key in _LIST_VALUED:
        return {v.strip() for v in current.split(",")} == {v.strip() for v in desired.split(",")}
    return current.strip() == desired.strip()


def apply(plan: Plan, settings: KafkaSettings, *, timeout: float = 30.0) -> ApplyResult:
    """Carry out ``plan``, all or nothing: check every change, then create topics, set configs, grow partitions.

    Raises, before changing anything, ``RefusedChangeError`` when the plan has refusals,
    ``PartitionGrowthUnsupportedError`` when the broker cannot add partitions and ``ApplyError`` for any other
    change the checks find the cluster would refuse. A change the broker refuses midway raises
    ``ApplyError`` naming the topic and the broker's error, after undoing what this call did; ``completed``
    lists what could not be undone (partitions already grown, a failed undo), normally nothing.
    """
    if plan.refusals:
        first = plan.refusals[0]
        lines = "; ".join(refusal.describe() for refusal in plan.refusals)
        raise RefusedChangeError(
            f"refusing to apply the plan: {lines}; nothing was changed", topic=first.topic
        )
    admin = _admin(settings)
    creates = [a for a in plan.actions if isinstance(a, CreateTopic)]
    grows = [a for a in plan.actions if isinstance(a, IncreasePartitions)]
    alters = [a for a in plan.actions if isinstance(a, AlterConfigs)]
    _check_before_changing(admin, creates, grows, timeout)
    done: list[Action] = []
    try:
        created, already = _create_topics(admin, creates, timeout, done)
        _alter_configs(admin, alters, timeout, done)
        _grow_partitions(admin, grows, timeout, done)
    except ApplyError as exc:
        raise _undone(admin, exc, done, timeout) from exc
    _await_visible(admin, [*created, *grows], alters, timeout)
    result = ApplyResult(done=tuple(done), already_existed=tuple(already))
    if result.changed or result.already_existed:
        log.info(
            "topology applied",
            created=list(result.created),
            grown=list(result.grown),
            altered=list(result.altered),
            already_existed=list(result.already_existed),
        )
    return result


def _check_before_changing(
    admin: AdminClient, creates: Sequence[CreateTopic], grows: Sequence[IncreasePartitions], timeout: float
) -> None:
    """Raise, having changed nothing, for a change the cluster would refuse: a replication factor above the
    number of brokers, or partitions the broker cannot add (its validate-only CreatePartitions says so)."""
    explicit = [a for a in creates if a.spec.replication_factor is not None]  # else the broker's default
    if explicit:
        brokers = _broker_count(admin, explicit, timeout)
        too_wide = [a for a in explicit if (a.spec.replication_factor or 0) > brokers]
        if too_wide:
            listing = ", ".join(
                f"{a.topic} (replication factor {a.spec.replication_factor})" for a in too_wide
            )
            raise ApplyError(
                f"cannot create {listing}: the cluster has {brokers} broker(s); nothing was changed",
                topic=too_wide[0].topic,
            )
    if not grows:
        return
    requests = [NewPartitions(a.topic, a.desired) for a in grows]
    futures = admin.create_partitions(
        requests, validate_only=True, operation_timeout=timeout, request_timeout=timeout
    )
    unsupported: list[IncreasePartitions] = []
    failures: list[ApplyError] = []
    for action in grows:
        refused = _result(futures[action.topic], timeout)
        if isinstance(refused, KafkaError) and refused.code() == KafkaError._UNSUPPORTED_FEATURE:
            unsupported.append(action)
        elif refused is not None:
            what = f"the broker refuses to grow {action.topic} from {action.current} to {action.desired} partitions"
            failures.append(_apply_error(what, refused, action.topic, ()))
    if unsupported:
        raise _growth_unsupported(unsupported, ())
    if failures:
        raise _nothing_changed(_combined(failures, ()))


def _broker_count(admin: AdminClient, creates: Sequence[CreateTopic], timeout: float) -> int:
    try:  # DescribeCluster: the brokers, without the metadata of every topic of the cluster
        return len(admin.describe_cluster(request_timeout=timeout).result(timeout=timeout).nodes)
    except KafkaException as exc:
        reason = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else exc
        names = ", ".join(a.topic for a in creates)
        what = f"cannot create topic {names}" if len(creates) == 1 else f"cannot create topics {names}"
        failed = _apply_error(what, reason, creates[0].topic, ())
        raise _nothing_changed(failed, " (reading the cluster's brokers)") from exc


def _nothing_changed(error: ApplyError, detail: str = "") -> ApplyError:
    """``error`` saying that nothing was changed (``completed`` empty)."""
    return type(error)(
        f"{error}{detail}; nothing was changed", topic=error.topic, code=error.code, name=error.name,
        retriable=error.retriable, completed=(),
    )  # fmt: skip


def _undone(admin: AdminClient, error: ApplyError, done: list[Action], timeout: float) -> ApplyError:
    """``error``, after undoing ``done``: delete the topics created, put back the configs set. Partitions
    cannot be removed, so grown ones (and anything whose undo failed) stay in ``completed``."""
    if not done:
        return _nothing_changed(error)
    alters = [a for a in reversed(done) if isinstance(a, AlterConfigs)]
    creates = [a for a in done if isinstance(a, CreateTopic)]
    outcomes: list[tuple[Action, str, KafkaError | Exception | None]] = [
        *((a, f"configs of {a.topic} put back", failed) for a, failed in _put_back(admin, alters, timeout)),
        *((a, f"{a.topic} deleted", failed) for a, failed in _delete(admin, creates, timeout)),
    ]
    undone = [what for _, what, failed in outcomes if failed is None]
    problems = [
        f"not undone: {a.describe()}: {_reason(failed)}" for a, _, failed in outcomes if failed is not None
    ]
    grown = [a for a in done if isinstance(a, IncreasePartitions)]
    left = [*(a for a, _, failed in outcomes if failed is not None), *grown]
    message = f"{error}; undone: {', '.join(undone) or 'nothing'}"
    if grown:
        message += "; partitions cannot be removed: " + ", ".join(a.describe() for a in grown)
    if problems:
        message += "; " + "; ".join(problems)
    log.warning("topology apply undone", error=str(error), undone=undone, left=[a.describe() for a in left])
    return type(error)(
        message, topic=error.topic, code=error.code, name=error.name, retriable=error.retriable,
        completed=[a.describe() for a in left],
    )  # fmt: skip


def _put_back(
    admin: AdminClient, alters: Sequence[AlterConfigs], timeout: float
) -> list[tuple[AlterConfigs, KafkaError | Exception | None]]:
    """Set each changed config back to its value before (delete it where it had none)."""
    outcomes = []
    for action in alters:
        entries = [
            ConfigEntry(c.key, c.current, incremental_operation=AlterConfigOpType.SET)
            if c.current is not None
            else ConfigEntry(c.key, None, incremental_operation=AlterConfigOpType.DELETE)
            for c in action.changes
        ]
        resource = ConfigResource(ResourceType.TOPIC, action.topic, incremental_configs=entries)
        futures = admin.incremental_alter_configs([resource], request_timeout=timeout)
        outcomes.append((action, _result(next(iter(futures.values())), timeout)))
    return outcomes


def _delete(
    admin: AdminClient, creates: Sequence[CreateTopic], timeout: float
) -> list[tuple[CreateTopic, KafkaError | Exception | None]]:
    """Delete the topics this apply created."""
    if not creates:
        return []
    futures = admin.delete_topics(
        [a.topic for a in creates], operation_timeout=timeout, request_timeout=timeout
    )
    return [(action, _result(futures[action.topic], timeout)) for action in creates]


def _reason(error: KafkaError | Exception) -> str:
    return f"{error.name()}: {error.str()}" if isinstance(error, KafkaError) else str(error)


def _create_topics(
    admin: AdminClient, creates: Sequence[CreateTopic], timeout: float, done: list[Action]
) -> tuple[list[CreateTopic], list[str]]:
    if not creates:
        return [], []
    new_topics = [
        NewTopic(
            a.spec.name,
            num_partitions=a.spec.partitions,
            replication_factor=-1 if a.spec.replication_factor is None else a.spec.replication_factor,
            config=dict(a.spec.configs),
        )
        for a in creates
    ]
    futures = admin.create_topics(new_topics, operation_timeout=timeout, request_timeout=timeout)
    created: list[CreateTopic] = []
    already: list[str] = []
    failures: list[ApplyError] = []
    for action in creates:
        error = _result(futures[action.topic], timeout)
        if error is None:
            created.append(action)
            done.append(action)
        elif isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            already.append(action.topic)  # created by someone else since the plan; a new plan shows any drift
        else:
            failures.append(_apply_error(f"cannot create topic {action.topic}", error, action.topic, done))
    if failures:
        raise _combined(failures, done)
    return created, already


def _grow_partitions(
    admin: AdminClient, grows: Sequence[IncreasePartitions], timeout: float, done: list[Action]
) -> None:
    if not grows:
        return
    for a in grows:
        log.warning(
            "growing partitions",
            topic=a.topic,
            partitions_from=a.current,
            partitions_to=a.desired,
            warning=KEY_REMAPPING,
        )
    requests = [NewPartitions(a.topic, a.desired) for a in grows]
    futures = admin.create_partitions(requests, operation_timeout=timeout, request_timeout=timeout)
    unsupported: list[IncreasePartitions] = []
    failures: list[ApplyError] = []
    for action in grows:
        error = _result(futures[action.topic], timeout)
        if error is None:
            done.append(action)
        elif isinstance(error, KafkaError) and error.code() == KafkaError._UNSUPPORTED_FEATURE:
            unsupported.append(action)
        else:
            failures.append(
                _apply_error(f"cannot grow partitions of {action.topic}", error, action.topic, done)
            )
    if unsupported:
        raise _growth_unsupported(unsupported, done)
    if failures:
        raise _combined(failures, done)


def _growth_unsupported(
    actions: Sequence[IncreasePartitions], done: Sequence[Action]
) -> PartitionGrowthUnsupportedError:
    why = "the broker does not support CreatePartitions (_UNSUPPORTED_FEATURE)"
    if len(actions) == 1:
        a = actions[0]
        message = (
            f"the broker cannot grow partitions: topic {a.topic} has {a.current} and the topology asks for "
            f"{a.desired}, but {why}; recreate the topic with the new count or keep {a.current}"
        )
    else:
        listing = ", ".join(f"{a.topic} {a.current} -> {a.desired}" for a in actions)
        message = (
            f"the broker cannot grow partitions: {why}; topics: {listing}; recreate them with the new "
            "counts or keep the current ones"
        )
    if not done:
        message += "; nothing was changed"
    return PartitionGrowthUnsupportedError(
        message,
        topic=actions[0].topic,
        code=KafkaError._UNSUPPORTED_FEATURE,
        name="_UNSUPPORTED_FEATURE",
        completed=[a.describe() for a in done],
    )


def _alter_configs(
    admin: AdminClient, alters: Sequence[AlterConfigs], timeout: float, done: list[Action]
) -> None:
    for action in alters:  # one resource per request: a broker error names exactly one topic
        entries = [
            ConfigEntry(c.key, c.desired, incremental_operation=AlterConfigOpType.SET) for c in action.changes
        ]
        resource = ConfigResource(ResourceType.TOPIC, action.topic, incremental_configs=entries)
        futures = admin.incremental_alter_configs([resource], request_timeout=timeout)
        error = _result(next(iter(futures.values())), timeout)
        if error is not None:
            raise _apply_error(f"cannot alter configs of {action.topic}", error, action.topic, done)
        done.append(action)


def _await_visible(
    admin: AdminClient,
    sized: Sequence[CreateTopic | IncreasePartitions],
    alters: Sequence[AlterConfigs],
    timeout: float,
) -> None:
    """Wait until the cluster reports what was just done, so that a plan made right after is empty."""
    want = {a.topic: (a.spec.partitions if isinstance(a, CreateTopic) else a.desired) for a in sized}
    deadline = time.monotonic() + timeout
    while want and time.monotonic() < deadline:
        topics = _visible_topics(admin, want, max(0.1, deadline - time.monotonic()))
        want = {name: n for name, n in want.items() if name not in topics or len(topics[name].partitions) < n}
        if want:
            time.sleep(0.05)  # metadata propagates within milliseconds on one broker
    pending = [a for a in alters if a.changes]
    while pending and time.monotonic() < deadline:
        current = _describe_configs(admin, [a.topic for a in pending], max(0.1, deadline - time.monotonic()))
        pending = [
            a
            for a in pending
            if any(not _same_config(c.key, current[a.topic].get(c.key), c.desired) for c in a.changes)
        ]
        if pending:
            time.sleep(0.05)
    if want or pending:
        log.warning("cluster has not caught up", topics=sorted(want) + [a.topic for a in pending])


def _admin(settings: KafkaSettings) -> AdminClient:
    return AdminClient(settings.as_librdkafka_dict())


def _describe_topics(
    admin: AdminClient, settings: KafkaSettings, names: Sequence[str], timeout: float
) -> dict[str, Any]:
    """``TopicDescription`` of each of ``names`` that exists (one metadata request naming them); a
    ``PlanError`` when the cluster cannot be read."""
    if not names:
        return {}
    futures = admin.describe_topics(TopicCollection(list(names)), request_timeout=timeout)
    out: dict[str, Any] = {}
    for name, future in futures.items():
        description, error = _outcome(future, timeout)
        if error is None:
            out[name] = description
            continue
        kafka = error if isinstance(error, KafkaError) else None
        if kafka is not None and kafka.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            continue
        reason = f"{kafka.name()}: {kafka.str()}" if kafka is not None else str(error)
        raise PlanError(
            f"cannot read topics from {settings.bootstrap_servers}: {reason}",
            code=kafka.code() if kafka is not None else None,
            name=kafka.name() if kafka is not None else None,
            retriable=bool(kafka.retriable()) if kafka is not None else False,
        )
    return out


def _visible_topics(admin: AdminClient, names: Iterable[str], timeout: float) -> dict[str, Any]:
    """The descriptions of ``names`` the cluster reports now (errors and missing topics left out)."""
    futures = admin.describe_topics(TopicCollection(list(names)), request_timeout=timeout)
    out: dict[str, Any] = {}
    for name, future in futures.items():
        description, error = _outcome(future, timeout)
        if error is None:
            out[name] = description
    return out


def _describe_configs(
    admin: AdminClient, topics: Iterable[str], timeout: float
) -> dict[str, dict[str, str | None]]:
    names = list(topics)
    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources, request_timeout=timeout)
    configs: dict[str, dict[str, str | None]] = {}
    for resource, future in futures.items():
        entries, error = _outcome(future, timeout)
        if error is not None:
            kafka = error if isinstance(error, KafkaError) else None
            reason = f"{kafka.name()}: {kafka.str()}" if kafka else str(error)
            raise PlanError(
                f"cannot read configs of topic {resource.name}: {reason}",
                topic=resource.name,
                code=kafka.code() if kafka else None,
                name=kafka.name() if kafka else None,
            )
        configs[resource.name] = {key: entry.value for key, entry in entries.items()}
    return configs


def _result(future: Future[Any], timeout: float) -> KafkaError | Exception | None:
    """None when the admin operation succeeded, else its ``KafkaError`` (or the exception if none)."""
    return _outcome(future, timeout)[1]


def _outcome(future: Future[Any], timeout: float) -> tuple[Any, KafkaError | Exception | None]:
    # Wait a little longer than the request timeout so librdkafka's own timeout error (with its code) wins.
    try:
        return future.result(timeout + _GRACE_SECONDS), None
    except KafkaException as exc:
        return None, exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else exc
    except FutureTimeout:
        return None, TimeoutError(f"no answer within {timeout + _GRACE_SECONDS:.0f}s")


def _apply_error(what: str, error: KafkaError | Exception, topic: str, done: Sequence[Action]) -> ApplyError:
    completed = [a.describe() for a in done]
    if isinstance(error, KafkaError):
        return ApplyError(
            f"{what}: {error.name()}: {error.str()}",
            topic=topic,
            code=error.code(),
            name=error.name(),
            retriable=bool(error.retriable()),
            completed=completed,
        )
    return ApplyError(f"{what}: {error}", topic=topic, completed=completed)


def _combined(failures: Sequence[ApplyError], done: Sequence[Action]) -> ApplyError:
    if len(failures) == 1:
        return failures[0]
    first = failures[0]
    message = "; ".join(str(f) for f in failures)
    return type(first)(
        message, topic=first.topic, code=first.code, name=first.name, completed=[a.describe() for a in done]
    )
