"""Events from a JSON-lines file: each non-blank line is one event, validated into its model.

A bad line does not stop the reading: it comes out as a ``BadLine`` naming the file, the line number and the
field, and the lines after it are still read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from pydantic import ValidationError

from kep.schemas.events import Event


@dataclass(frozen=True)
class BadLine:
    """A line that is not a valid event: ``path:line: field: reason``."""

    path: str
    line: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"field {self.field}: " if self.field else ""
        return f"{self.path}:{self.line}: {where}{self.reason}"


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _bad_line(path: str, number: int, model: type[Event], error: ValidationError) -> BadLine:
    errors = error.errors(include_url=False)
    first = errors[0]
    field = _location(tuple(first["loc"])) or None
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    reason = f"{first['msg']} for {model.avro_name}{more}"
    return BadLine(path, number, field, reason)


def read_events(path: Path, model: type[Event]) -> Iterator[tuple[int, Event | BadLine]]:
    """``(line number, event or BadLine)`` for every non-blank line of ``path``, in order."""
    name = str(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield number, BadLine(name, number, None, f"not JSON: {exc}")
                continue
            if not isinstance(data, dict):
                yield (
                    number,
                    BadLine(name, number, None, f"expected a JSON object, got {type(data).__name__}"),
                )
                continue
            try:
                yield number, model.model_validate(data)
            except ValidationError as exc:
                yield number, _bad_line(name, number, model, exc)
