"""Load a topology from YAML. Every error names the file, the path inside it, the line and the reason.

``load_topology(path)`` reads ``path``, or ``$KEP_TOPOLOGY`` when no path is given; kep ships no topology, so
with neither it raises ``TopologyError`` saying so. The topology's ``schemas:`` paths are resolved against
the file's directory and must exist; ``schema_registry(topology)`` reads them together with ``KEP_SCHEMAS``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from kep.schemas.errors import SchemaError
from kep.schemas.registry import KEP_SCHEMA_DIR, LocalSchemaRegistry, kep_schema_names, schema_paths_from_env
from kep.schemas.yaml_guard import yaml_hazard
from kep.topology._delays import DelaySpec
from kep.topology.errors import Issue, Loc, Problem, TopologyError, ValidationProblems, format_loc
from kep.topology.model import (
    ConsumerGroupSpec,
    RetrySpec,
    ScheduleSpec,
    ScheduleStateSpec,
    TopicSpec,
    Topology,
)
from kep.topology.schedule_check import schedule_issues

__all__ = [
    "ENV_VAR",
    "NO_TOPOLOGY",
    "check_schedules",
    "check_schema_names",
    "default_topology_path",
    "load_topology",
    "parse_topology",
    "schema_registry",
]

ENV_VAR = "KEP_TOPOLOGY"
NO_TOPOLOGY = (
    "no topology: pass --topology FILE or set KEP_TOPOLOGY (kep ships none; a topology lists your topics, "
    "consumer groups and where your .avsc schemas are)"
)

_MODELS = (Topology, TopicSpec, ConsumerGroupSpec, RetrySpec, DelaySpec, ScheduleSpec, ScheduleStateSpec)
_KNOWN_KEYS = sorted({f for m in _MODELS for f in m.model_fields})


def default_topology_path() -> Path | None:
    """``$KEP_TOPOLOGY`` when set, else None: there is no default topology."""
    configured = os.environ.get(ENV_VAR)
    return Path(configured) if configured else None


def load_topology(path: str | Path | None = None, *, check_schemas: bool = False) -> Topology:
    """Read and validate a topology file (``None``: ``$KEP_TOPOLOGY``; ``TopologyError`` when unset).

    Relative ``schemas:`` paths are resolved against the file's directory. ``check_schemas`` also checks every
    ``value_schema`` against the topology's schemas and ``KEP_SCHEMAS``. Raises ``TopologyError``.
    """
    source = Path(path) if path is not None else default_topology_path()
    if source is None:
        raise TopologyError(NO_TOPOLOGY)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError(f"{source}: no such topology file", source=str(source)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError(f"{source}: cannot read topology file: {exc}", source=str(source)) from exc
    topology = parse_topology(text, source=str(source), base=source.parent)
    if check_schemas:
        registry = schema_registry(topology, source=str(source))
        check_schema_names(topology, registry.names(), source=str(source))
        check_schedules(topology, registry, source=str(source), text=text)
    return topology


def schema_registry(topology: Topology | None = None, *, source: str | None = None) -> LocalSchemaRegistry:
    """kep's own schemas (``KEP_SCHEMA_DIR``), then those of ``topology`` (its ``schemas:`` paths) and of
    ``KEP_SCHEMAS``.

    A schema file that cannot be read or parsed is a ``TopologyError`` naming the file (``source`` names the
    topology in it).
    """
    paths = [
        KEP_SCHEMA_DIR,
        *(Path(p) for p in (topology.schemas if topology is not None else ())),
        *schema_paths_from_env(),
    ]
    try:
        return LocalSchemaRegistry(*paths)
    except SchemaError as exc:
        where = f"{source}: " if source else ""
        raise TopologyError(f"{where}schemas: {exc}", source=source) from exc


def parse_topology(text: str, *, source: str = "<string>", base: Path | None = None) -> Topology:
    """Validate YAML text as a topology; ``source`` names it in errors.

    With ``base``, relative ``schemas:`` paths are resolved against it and must exist.
    """
    node = _compose(text, source)
    if node is None:
        empty = Problem("", "the file is empty; expected 'topics' and 'groups'")
        raise TopologyError.from_problems(source, [empty])
    duplicates = list(_duplicate_keys(node, ()))
    if duplicates:
        raise TopologyError.from_problems(source, duplicates)
    data = yaml.SafeLoader("").construct_document(node)
    if not isinstance(data, dict):
        reason = f"expected a mapping with 'topics' and 'groups', got {type(data).__name__}"
        problem = Problem("", reason, node.start_mark.line + 1)
        raise TopologyError.from_problems(source, [problem])
    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        raise TopologyError.from_problems(source, _problems(exc, node)) from exc
    return topology if base is None else _with_schema_paths(topology, base, source, node)


def _with_schema_paths(topology: Topology, base: Path, source: str, root: yaml.Node) -> Topology:
    """``topology`` with its ``schemas:`` resolved against ``base``; each path must exist."""
    resolved = [base / path for path in topology.schemas]
    missing = [
        Problem(
            format_loc(("schemas", index) if len(resolved) > 1 else ("schemas",)),
            f"{path} does not exist (schema paths are relative to the topology file)",
            _line(root, ("schemas", index) if len(resolved) > 1 else ("schemas",)),
        )
        for index, path in enumerate(resolved)
        if not path.exists()
    ]
    if missing:
        raise TopologyError.from_problems(source, missing)
    return topology.model_copy(update={"schemas": tuple(str(path) for path in resolved)})


def check_schema_names(topology: Topology, known: Iterable[str], *, source: str | None = None) -> None:
    """Raise ``TopologyError`` naming each ``topics[i].value_schema[j]`` that is not in ``known``."""
    names = set(known)
    services = sorted(names - kep_schema_names())  # a service's own; kep's events need no listing
    listing = ", ".join(services) or "none: list schema paths under 'schemas:' or in KEP_SCHEMAS"
    problems = [
        Problem(format_loc(("topics", t, "value_schema", s)), f"unknown schema {name!r} (known: {listing})")
        for t, spec in enumerate(topology.topics)
        for s, name in enumerate(spec.value_schema)
        if name not in names
    ]
    if problems:
        raise TopologyError.from_problems(source, problems)


def check_schedules(
    topology: Topology, registry: LocalSchemaRegistry, *, source: str | None = None, text: str | None = None
) -> None:
    """Raise ``TopologyError`` naming each schedule whose event is unknown, whose ``fields`` do not make a valid
    event of the service's schema (the field and why), or that has no key on a keyed topic. ``text``: the
    file's YAML, for line numbers."""
    issues = schedule_issues(topology, registry)
    if not issues:
        return
    root = _compose(text, source or "topology") if text is not None else None
    problems = [
        Problem(format_loc(i.loc), i.reason, _line(root, i.loc) if root is not None else None) for i in issues
    ]
    raise TopologyError.from_problems(source, problems)


def _refuse_aliases_and_depth(text: str, source: str) -> None:
    """Refuse YAML aliases and over-deep nesting (``kep.schemas.yaml_guard``) with the file and the line."""
    hazard = yaml_hazard(text, "a topology file")
    if hazard is not None:
        raise TopologyError.from_problems(source, [Problem("", hazard.reason, hazard.line)])


def _compose(text: str, source: str) -> yaml.Node | None:
    _refuse_aliases_and_depth(text, source)
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        context = exc.context or ""
        if context and exc.context_mark is not None and exc.context_mark is not mark:
            context += f" (from line {exc.context_mark.line + 1})"
        reason = ", ".join(part for part in (context, exc.problem) if part) or "invalid YAML"
        raise TopologyError.from_problems(source, [Problem("", f"invalid YAML: {reason}", line)]) from exc
    except yaml.YAMLError as exc:
        raise TopologyError.from_problems(source, [Problem("", f"invalid YAML: {exc}")]) from exc


def _duplicate_keys(node: yaml.Node, loc: Loc) -> Iterable[Problem]:
    """PyYAML keeps the last of two equal keys silently; a topology file with one is a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                reason = f"duplicate key {key!r} (first on line {seen[key]})"
                yield Problem(format_loc(loc), reason, key_node.start_mark.line + 1)
            seen.setdefault(key, key_node.start_mark.line + 1)
            yield from _duplicate_keys(value_node, (*loc, str(key)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, index))


def _problems(exc: ValidationError, root: yaml.Node) -> list[Problem]:
    issues: list[Issue] = []
    for error in exc.errors(include_url=False):
        loc = _clean_loc(error["loc"])
        found = error.get("ctx", {}).get("error")
        if isinstance(found, ValidationProblems):
            issues += [Issue((*loc, *issue.loc), issue.reason) for issue in found.issues]
        else:
            issues.append(Issue(loc, _reason(error, loc)))
    problems = [Problem(format_loc(i.loc), i.reason, _line(root, i.loc)) for i in issues]
    return sorted(problems, key=lambda p: p.line or 0)


def _clean_loc(loc: tuple[str | int, ...]) -> Loc:
    # pydantic marks dict-key errors with a trailing "[key]"; the key itself is already in the path.
    return tuple(part for part in loc if part != "[key]")


def _reason(error: ErrorDetails, loc: Loc) -> str:
    kind, message = error["type"], error["msg"].replace("valid tuple", "list")
    last = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(last), _KNOWN_KEYS, n=1)
        return f"unknown key {last!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    if kind == "missing":
        return f"missing required key {last!r}"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        return f"{message} (got {value!r})"
    return f"{message} (got a {type(value).__name__})"


def _line(root: yaml.Node, loc: Loc) -> int | None:
    """The line of the deepest node that ``loc`` reaches in the YAML tree."""
    node: Any = root
    parts = list(loc)
    while parts:
        child = _child(node, parts)
        if child is None:
            break
        node, consumed = child
        del parts[:consumed]
    return int(node.start_mark.line) + 1


def _child(node: Any, parts: list[str | int]) -> tuple[Any, int] | None:
    if isinstance(node, yaml.SequenceNode) and isinstance(parts[0], int) and parts[0] < len(node.value):
        return node.value[parts[0]], 1
    if isinstance(node, yaml.MappingNode):
        keys = {str(k.value): (k, v) for k, v in node.value}
        for size in range(1, len(parts) + 1):  # config keys have dots: ("configs", "retention.ms")
            joined = ".".join(str(p) for p in parts[:size])
            if joined in keys:
                key_node, value_node = keys[joined]
                return (key_node if size == len(parts) else value_node), size  # a key's own line
    return None
