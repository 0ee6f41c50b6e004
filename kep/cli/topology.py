"""``kep topology``: validate and show the topology file, plan and apply it to the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kep.cli._common import (
    BootstrapOption,
    JsonOption,
    TopologyOption,
    cluster_settings,
    console,
    fail,
    print_json,
)
from kep.topology import (
    AdminError,
    AlterConfigs,
    CreateTopic,
    IncreasePartitions,
    Plan,
    TopicSpec,
    Topology,
    TopologyError,
    apply,
    default_topology_path,
    format_duration,
    load_topology,
    plan,
    schema_registry,
)
from kep.topology._actions import KEY_REMAPPING
from kep.topology._limits import describe_limit
from kep.topology.loader import NO_TOPOLOGY

app = typer.Typer(
    help="Topics, consumer groups and their retry and dead-letter topics: validate, show, plan, apply.",
    no_args_is_help=True,
)


def _load(path: Path | None, *, check_schemas: bool = True) -> tuple[Topology, Path]:
    """The topology at ``path`` (or ``$KEP_TOPOLOGY``); exit 2 naming the problem when there is none or it is
    not valid. ``check_schemas``: every ``value_schema`` must name a schema of the topology's ``schemas:`` or
    ``KEP_SCHEMAS``, as ``validate`` checks (``plan`` and ``apply`` check exactly the same)."""
    source = path or default_topology_path()
    if source is None:
        fail(NO_TOPOLOGY, 2)
    try:
        return load_topology(source, check_schemas=check_schemas), source
    except TopologyError as exc:
        fail(str(exc), 2)


@app.command("validate")
def validate_command(topology: TopologyOption = None, as_json: JsonOption = False) -> None:
    """Check the topology file offline: syntax, types, names, durations, references and schema names."""
    spec, source = _load(topology)
    registry = schema_registry(spec)  # already read once by _load: valid
    derived = len(spec.derived_topics())
    if as_json:
        print_json(
            {
                "file": str(source),
                "valid": True,
                "topics": len(spec.topics),
                "groups": len(spec.groups),
                "derived_topics": derived,
                "schema_names": len(registry.names()),
            }
        )
        return
    console.print(
        f"{source}: valid: {len(spec.topics)} topics, {len(spec.groups)} groups, "
        f"{derived} retry and dead-letter topics; schema names checked against {len(registry.names())} "
        f"schema(s) in {registry.where}",
        highlight=False,
    )


@app.command("show")
def show_command(topology: TopologyOption = None, as_json: JsonOption = False) -> None:
    """List every topic the topology implies, including derived retry and dead-letter topics."""
    spec, _ = _load(topology, check_schemas=False)
    if as_json:
        print_json(_show_dict(spec))
        return
    table = Table(title="topics", title_justify="left")
    table.add_column("topic", overflow="fold")  # a narrow terminal wraps names, never cuts them
    for column in ("kind", "partitions", "rf", "group", "delay"):
        table.add_column(column, overflow="fold")
    for topic in spec.topics:
        table.add_row(topic.name, "topic", str(topic.partitions), _rf(topic), "", "")
    for derived in spec.derived_topics():
        delay = format_duration(derived.tier.delay_seconds) if derived.tier else ""
        item, replication = derived.spec, _rf(derived.spec)
        table.add_row(item.name, derived.kind, str(item.partitions), replication, derived.group, delay)
    for state in spec.schedule_state_topics():  # the schedules' state (docs/schedules.md)
        table.add_row(
            state.name, "schedule-state", str(state.partitions), _rf(state), spec.schedule_state.group, ""
        )
    console.print(table)
    for group in spec.groups:
        for source in group.topics:
            retry = group.retry_for(source)
            console.print(
                f"group {group.name} on {source}: {retry.attempts} attempts, mode {retry.mode}, "
                f"dead letters {'on' if retry.dead_letter else 'off'}",
                highlight=False,
            )
        for key, limit in group.limits.items():  # docs/limits.md
            console.print(
                f"group {group.name} limits {key}: {describe_limit(limit)}", highlight=False, markup=False
            )


def _rf(topic: TopicSpec) -> str:
    """The replication factor, or ``default`` (the broker's ``default.replication.factor``)."""
    return "default" if topic.replication_factor is None else str(topic.replication_factor)


def _show_dict(spec: Topology) -> dict[str, Any]:
    topics: list[dict[str, Any]] = [
        {
            "name": t.name,
            "kind": "topic",
            "partitions": t.partitions,
            "replication_factor": t.replication_factor,
        }
        for t in spec.topics
    ]
    for derived in spec.derived_topics():
        topics.append(
            {
                "name": derived.spec.name,
                "kind": derived.kind,
                "partitions": derived.spec.partitions,
                "replication_factor": derived.spec.replication_factor,
                "group": derived.group,
                "source": derived.source,
                "delay": format_duration(derived.tier.delay_seconds) if derived.tier else None,
            }
        )
    topics += [
        {
            "name": t.name,
            "kind": "schedule-state",
            "partitions": t.partitions,
            "replication_factor": t.replication_factor,
        }
        for t in spec.schedule_state_topics()
    ]
    groups = [
        {
            "group": group.name,
            "topic": source,
            "attempts": group.retry_for(source).attempts,
            "mode": group.retry_for(source).mode,
            "dead_letters": group.retry_for(source).dead_letter,
        }
        for group in spec.groups
        for source in group.topics
    ]
    limits = [
        {"group": group.name, "for": key, **limit.model_dump(exclude_none=True)}
        for group in spec.groups
        for key, limit in group.limits.items()
    ]
    return {"topics": topics, "groups": groups, "limits": limits}


def _plan_dict(result: Plan) -> dict[str, Any]:
    return {
        "changes": [{"topic": a.topic, "change": a.describe()} for a in result.actions],
        "refused": [{"topic": r.topic, "reason": r.describe()} for r in result.refusals],
        "unchanged": list(result.unchanged),
    }


def _configs(topic: TopicSpec) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(topic.configs.items()))


@app.command("plan")
def plan_command(
    topology: TopologyOption = None, bootstrap_servers: BootstrapOption = None, as_json: JsonOption = False
) -> None:
    """Show what 'apply' would change on the cluster (exit 1 when the plan holds refused changes)."""
    spec, _ = _load(topology)
    settings = cluster_settings(bootstrap_servers)
    try:
        result = plan(spec, settings)
    except AdminError as exc:
        fail(str(exc), 1)
    if as_json:
        print_json(_plan_dict(result))
    else:
        _print_plan(result)
    if result.refusals:
        raise typer.Exit(1)


@app.command("apply")
def apply_command(
    topology: TopologyOption = None, bootstrap_servers: BootstrapOption = None, as_json: JsonOption = False
) -> None:
    """Create missing topics, grow partitions and set configs so the cluster matches the topology."""
    spec, _ = _load(topology)
    settings = cluster_settings(bootstrap_servers)
    try:
        planned = plan(spec, settings)
        if planned.is_empty:
            if as_json:
                print_json({"done": [], "created": [], "grown": [], "altered": [], "already_existed": []})
            else:
                console.print("no changes: the cluster matches the topology")
            return
        if planned.refusals and not as_json:
            _print_plan(planned)
        result = apply(planned, settings)
    except AdminError as exc:
        fail(str(exc), 1)
    if as_json:
        print_json(
            {
                "done": [a.describe() for a in result.done],
                "created": list(result.created),
                "grown": list(result.grown),
                "altered": list(result.altered),
                "already_existed": list(result.already_existed),
                "refused": [r.describe() for r in planned.refusals],
            }
        )
        return
    for action in result.done:
        console.print(f"done: {action.describe()}", highlight=False)
    for topic in result.already_existed:
        console.print(
            f"skipped: {topic} was created by someone else meanwhile; run plan again", highlight=False
        )
    console.print(
        f"applied: {len(result.created)} created, {len(result.grown)} grown, {len(result.altered)} altered",
        highlight=False,
    )


def _print_plan(result: Plan) -> None:
    if result.is_empty:
        console.print("no changes: the cluster matches the topology")
        return
    table = Table(title="plan", title_justify="left")
    table.add_column("action", no_wrap=True)
    table.add_column("topic", overflow="fold")
    table.add_column("details", overflow="fold", ratio=1)
    for action in result.actions:
        if isinstance(action, CreateTopic):
            details = f"{action.spec.partitions} partitions, replication {_rf(action.spec)}"
            configs = _configs(action.spec)
            table.add_row("create", action.topic, f"{details}; {configs}" if configs else details)
        elif isinstance(action, IncreasePartitions):
            table.add_row(
                "grow", action.topic, f"partitions {action.current} -> {action.desired}; {KEY_REMAPPING}"
            )
        elif isinstance(action, AlterConfigs):
            table.add_row("alter", action.topic, ", ".join(c.describe() for c in action.changes))
    for refusal in result.refusals:
        table.add_row("[red]refused[/red]", refusal.topic, refusal.describe())
    console.print(table)
    summary = f"{len(result.actions)} to change, {len(result.unchanged)} unchanged"
    if result.refusals:
        summary += f", {len(result.refusals)} refused"
    console.print(summary, highlight=False)
