"""Refuse the YAML that would hang or crash a loader, before anything is built.

An alias (``*name``) repeats a node without copying it, so a few lines of aliases to aliases stand for billions
of nodes: building or walking them hangs. Deep nesting makes PyYAML's recursive composer fail with a
``RecursionError``. ``yaml_hazard`` finds both in the parser's event stream, which is flat and never expands an
alias; every kep file that is YAML (a topology, a worker config) is checked with it first.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

__all__ = ["MAX_DEPTH", "YamlHazard", "yaml_hazard"]

MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class YamlHazard:
    """Why a YAML text is refused, and the 1-based line where it was found (``None`` when unknown)."""

    reason: str
    line: int | None


def yaml_hazard(text: str, what: str) -> YamlHazard | None:
    """The first alias or over-deep nesting in ``text`` (``what`` names the file's kind in the reason).

    Syntax errors are not reported here: the loader that composes the text reports them with its own words.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                reason = f"YAML aliases (*{event.anchor}) are not allowed in {what}; write the value out"
                return YamlHazard(reason, _line_of(event))
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    reason = f"nested more than {MAX_DEPTH} levels deep; {what} needs a few"
                    return YamlHazard(reason, _line_of(event))
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _line_of(event: yaml.Event) -> int | None:
    mark = event.start_mark
    return None if mark is None else int(mark.line) + 1
