"""Errors raised by the topology package.

Hierarchy::

    KepError (schemas.errors)
    ├── TopologyError              a topology file or model that is not valid: file, path, line, reason
    │   └── DurationError          a duration that does not parse ("10 sec", 60 without a unit)
    └── AdminError                 reading or changing the cluster failed; ``code``/``name`` of the KafkaError
        ├── ClusterUnreachableError  the cluster does not answer at its bootstrap address (names it)
        ├── PlanError              the cluster state could not be read for a plan
        └── ApplyError             a plan could not be carried out (and what it did was undone); names the topic
            ├── RefusedChangeError                the plan shrinks partitions or changes a replication factor
            └── PartitionGrowthUnsupportedError   the broker cannot add partitions (no CreatePartitions)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from kep.schemas.errors import KepError

__all__ = [
    "AdminError",
    "ApplyError",
    "ClusterUnreachableError",
    "DurationError",
    "PartitionGrowthUnsupportedError",
    "PlanError",
    "Problem",
    "RefusedChangeError",
    "TopologyError",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a topology: where (``groups[1].retry.delays[2]``, line) and why."""

    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        path = f"{self.path}: " if self.path else ""
        return f"{where}{path}{self.reason}"


class TopologyError(KepError):
    """A topology that is not valid. ``source`` is the file (if any), ``problems`` every problem found."""

    def __init__(self, message: str, *, source: str | None = None, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.source = source
        self.problems = tuple(problems)

    @classmethod
    def from_problems(cls, source: str | None, problems: Sequence[Problem]) -> TopologyError:
        """``file:line: path: reason`` for one problem; a header and one line per problem for several."""
        name = source or "topology"
        if len(problems) == 1:
            only = problems[0]
            line = f":{only.line}" if only.line is not None else ""
            path = f" {only.path}:" if only.path else ""
            return cls(f"{name}{line}:{path} {only.reason}", source=source, problems=problems)
        lines = "\n".join(f"  {problem}" for problem in problems)
        return cls(f"{name}: {len(problems)} problems:\n{lines}", source=source, problems=problems)


Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """``("groups", 1, "retry", "delays", 2)`` -> ``groups[1].retry.delays[2]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class Issue(NamedTuple):
    """One problem found by model validation: where, relative to the model, and why."""

    loc: Loc
    reason: str


class ValidationProblems(ValueError):
    """Raised inside model validation with every problem found, each located relative to the model.

    Pydantic keeps the exception in the error's context, so the loader reports each problem at its own
    path (``groups[0].topics[1]``) and line instead of at the model.
    """

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(f"{format_loc(i.loc)}: {i.reason}" for i in self.issues))


class DurationError(TopologyError, ValueError):
    """A duration that does not parse. Also a ``ValueError`` so model validation reports it with its path."""


class AdminError(KepError):
    """Talking to the cluster failed. ``code``/``name`` come from the ``KafkaError`` when there is one."""

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        code: int | None = None,
        name: str | None = None,
        retriable: bool = False,
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.code = code
        self.name = name
        self.retriable = retriable


class ClusterUnreachableError(AdminError):
    """The cluster did not answer at its bootstrap address within the connect timeout (the message names it)."""


class PlanError(AdminError):
    """The cluster's topics or configs could not be read."""


class ApplyError(AdminError):
    """An action of a plan failed, or would: ``apply`` checks before changing anything and undoes what it did
    when the broker refuses a change midway. ``completed`` lists what stays done (normally nothing: partitions
    already grown, or an undo that failed)."""

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        code: int | None = None,
        name: str | None = None,
        retriable: bool = False,
        completed: Sequence[str] = (),
    ) -> None:
        super().__init__(message, topic=topic, code=code, name=name, retriable=retriable)
        self.completed = tuple(completed)


class RefusedChangeError(ApplyError):
    """The plan asks for what kep will not do to a live topic (fewer partitions, other replication factor)."""


class PartitionGrowthUnsupportedError(ApplyError):
    """The broker does not implement CreatePartitions, so a topic's partition count cannot grow."""
