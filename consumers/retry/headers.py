"""Provenance headers: where a retry or dead-letter record came from and why it failed.

A record forwarded to a retry or dead-letter topic keeps its key, value and every original header, and carries
these headers (integers are ASCII decimal, text is UTF-8):

| header                      | value                                                                    |
| --------------------------- | ------------------------------------------------------------------------ |
| ``kep-original-topic``      | the source topic the record was first consumed from                      |
| ``kep-original-partition``  | its partition there                                                      |
| ``kep-original-offset``     | its offset there                                                         |
| ``kep-original-timestamp``  | its timestamp there (ms)                                                 |
| ``kep-consumer-group``      | the group whose handler failed                                           |
| ``kep-attempt``             | failed executions so far (1 on the first retry record)                   |
| ``kep-first-failure-time``  | when the first execution failed (ms)                                     |
| ``kep-last-failure-time``   | when the latest execution failed (ms)                                    |
| ``kep-exception-type``      | qualified class name, e.g. ``builtins.TimeoutError``                     |
| ``kep-exception-message``   | ``str(exc)``, at most 1 KiB (head kept)                                  |
| ``kep-exception-traceback`` | the formatted traceback, at most 4 KiB (tail kept: the raising frame)    |
| ``kep-due-time``            | when the retry may run (ms); absent on dead-letter records               |
| ``kep-idempotency-key``     | the event's idempotency key, when known                                  |

``kep-idempotency-key`` is also an ordinary header set by the producer; it is the one provenance header that a
replay keeps (:func:`strip_provenance`).
"""

from __future__ import annotations

import linecache
import traceback as _traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from kep.consumers.redact import scrub
from kep.producers.headers import (
    ATTEMPT,
    CONSUMER_GROUP,
    DUE_TIME,
    EXCEPTION_MESSAGE,
    EXCEPTION_TRACEBACK,
    EXCEPTION_TRACEBACK_MAX_BYTES,
    EXCEPTION_TYPE,
    FIRST_FAILURE_TIME,
    IDEMPOTENCY_KEY,
    INT64_MAX,
    LAST_FAILURE_TIME,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
    HeaderValue,
    parse_int,
)
from kep.schemas.errors import KepError

#: Headers that describe one failure; replaced on every forward, removed on replay.
PROVENANCE_HEADERS: Final = frozenset(
    {
        ORIGINAL_TOPIC,
        ORIGINAL_PARTITION,
        ORIGINAL_OFFSET,
        ORIGINAL_TIMESTAMP,
        CONSUMER_GROUP,
        ATTEMPT,
        FIRST_FAILURE_TIME,
        LAST_FAILURE_TIME,
        EXCEPTION_TYPE,
        EXCEPTION_MESSAGE,
        EXCEPTION_TRACEBACK,
        DUE_TIME,
    }
)

_READ: Final = PROVENANCE_HEADERS | {IDEMPOTENCY_KEY}  # what from_headers reads

MAX_TRACEBACK_BYTES: Final = EXCEPTION_TRACEBACK_MAX_BYTES
MAX_MESSAGE_BYTES: Final = 1024
_TRUNCATED_HEAD: Final = b"[truncated]\n"
_TRUNCATED_TAIL: Final = b" [truncated]"

#: Headers as confluent-kafka gives and takes them: a list of pairs (names may repeat) or a mapping.
Headers = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]


class InvalidProvenanceError(KepError):
    """A provenance header is present but cannot be read (names the header and the value)."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a failed record came from, how often it failed, and why. Times are epoch milliseconds."""

    original_topic: str
    original_partition: int
    original_offset: int
    original_timestamp_ms: int
    consumer_group: str
    attempt: int
    first_failure_ms: int
    last_failure_ms: int
    exception_type: str
    exception_message: str
    exception_traceback: str
    idempotency_key: str | None = None
    due_ms: int | None = None

    @classmethod
    def first_failure(
        cls,
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        consumer_group: str,
        exc: BaseException,
        now_ms: int,
        idempotency_key: str | None = None,
        due_ms: int | None = None,
        traceback: bool = True,
    ) -> Provenance:
        """Provenance for a record consumed from its source topic whose first execution just failed.

        ``traceback=False`` leaves the traceback out (an empty ``kep-exception-traceback``)."""
        return cls(
            original_topic=topic,
            original_partition=partition,
            original_offset=offset,
            original_timestamp_ms=timestamp_ms,
            consumer_group=consumer_group,
            attempt=1,
            first_failure_ms=now_ms,
            last_failure_ms=now_ms,
            exception_type=qualified_name(type(exc)),
            exception_message=bounded_message(exc),
            exception_traceback=bounded_traceback(exc) if traceback else "",
            idempotency_key=idempotency_key,
            due_ms=due_ms,
        )

    def next_failure(
        self, exc: BaseException, *, now_ms: int, due_ms: int | None = None, traceback: bool = True
    ) -> Provenance:
        """Provenance after one more failed execution: origin and first failure kept, attempt + 1."""
        return replace(
            self,
            attempt=min(self.attempt + 1, INT64_MAX),
            last_failure_ms=now_ms,
            exception_type=qualified_name(type(exc)),
            exception_message=bounded_message(exc),
            exception_traceback=bounded_traceback(exc) if traceback else "",
            due_ms=due_ms,
        )

    def to_headers(self, original_headers: Headers | None = None) -> list[tuple[str, bytes | None]]:
        """``original_headers`` without earlier provenance, followed by this provenance.

        Every other original header is kept in order, repeated keys and ``None`` values included. An original
        ``kep-idempotency-key`` keeps its place; its value is replaced when this provenance carries a key.
        """
        out: list[tuple[str, bytes | None]] = []
        key_placed = False
        for name, value in _without_provenance(original_headers, drop_key=False):
            if name == IDEMPOTENCY_KEY and self.idempotency_key is not None:
                if not key_placed:
                    out.append((IDEMPOTENCY_KEY, self.idempotency_key.encode()))
                    key_placed = True
                continue
            out.append((name, _as_bytes(value)))
        ours: list[tuple[str, str | int | None]] = [
            (ORIGINAL_TOPIC, self.original_topic),
            (ORIGINAL_PARTITION, self.original_partition),
            (ORIGINAL_OFFSET, self.original_offset),
            (ORIGINAL_TIMESTAMP, self.original_timestamp_ms),
            (CONSUMER_GROUP, self.consumer_group),
            (ATTEMPT, self.attempt),
            (FIRST_FAILURE_TIME, self.first_failure_ms),
            (LAST_FAILURE_TIME, self.last_failure_ms),
            (EXCEPTION_TYPE, self.exception_type),
            (EXCEPTION_MESSAGE, self.exception_message),
            (EXCEPTION_TRACEBACK, self.exception_traceback),
            (DUE_TIME, self.due_ms),
            (IDEMPOTENCY_KEY, None if key_placed else self.idempotency_key),
        ]
        out.extend((name, str(value).encode()) for name, value in ours if value is not None)
        return out

    @classmethod
    def from_headers(cls, headers: Headers | None) -> Provenance | None:
        """The provenance in ``headers``, or ``None`` when the record has none (no ``kep-original-topic``).

        The first occurrence of each header wins. A present but unreadable header raises
        :class:`InvalidProvenanceError` naming it.
        """
        found = _first_values(_pairs(headers))
        if found.get(ORIGINAL_TOPIC) is None:
            return None
        return cls(
            original_topic=_text(found, ORIGINAL_TOPIC),
            original_partition=_int(found, ORIGINAL_PARTITION),
            original_offset=_int(found, ORIGINAL_OFFSET),
            original_timestamp_ms=_int(found, ORIGINAL_TIMESTAMP),
            consumer_group=_text(found, CONSUMER_GROUP),
            attempt=_count(found, ATTEMPT),
            first_failure_ms=_int(found, FIRST_FAILURE_TIME),
            last_failure_ms=_int(found, LAST_FAILURE_TIME),
            exception_type=_text(found, EXCEPTION_TYPE, default=""),
            exception_message=_text(found, EXCEPTION_MESSAGE, default=""),
            exception_traceback=_text(found, EXCEPTION_TRACEBACK, default=""),
            idempotency_key=_optional_text(found, IDEMPOTENCY_KEY),
            due_ms=_optional_int(found, DUE_TIME),
        )


def strip_provenance(headers: Headers | None) -> list[tuple[str, bytes | None]]:
    """``headers`` without provenance, as a replay republishes them: ``kep-idempotency-key`` is kept."""
    return [(name, _as_bytes(value)) for name, value in _without_provenance(headers, drop_key=False)]


def header_value(headers: Headers | None, name: str) -> bytes | None:
    """The first value of header ``name`` as bytes, or ``None`` (absent or a ``None`` value)."""
    for key, value in _pairs(headers):
        if key == name:
            return _as_bytes(value)
    return None


def qualified_name(cls: type) -> str:
    """``module.QualName`` of an exception class, e.g. ``schemas.errors.DecodeError``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def bounded_message(exc: BaseException, limit: int = MAX_MESSAGE_BYTES) -> str:
    """``str(exc)`` with secrets masked (``consumers.redact``), cut to ``limit`` UTF-8 bytes, keeping the
    start. Never raises (an exception's own ``__str__`` may)."""
    try:
        text = scrub(str(exc))
    except Exception:  # noqa: BLE001 - a broken __str__ must not stop the record
        text = f"<unprintable {type(exc).__name__}>"
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data.decode()
    return (data[: limit - len(_TRUNCATED_TAIL)] + _TRUNCATED_TAIL).decode("utf-8", "ignore")


def bounded_traceback(exc: BaseException, limit: int = MAX_TRACEBACK_BYTES) -> str:
    """The formatted traceback of ``exc`` cut to ``limit`` UTF-8 bytes, keeping the end (raising frame).

    Formatted here rather than with ``traceback.format_exception``, which stats every source file of the
    stack on each call: on the failure path of a busy worker that was the most expensive step. Chained
    causes are formatted newest first and only until the limit is reached. Secrets are masked
    (``consumers.redact``): in the messages and in the source lines shown. Never raises.
    """
    try:
        blocks: list[str] = []
        size = 0
        current: BaseException | None = exc
        seen: set[int] = set()
        while current is not None and id(current) not in seen and size <= limit:
            seen.add(id(current))
            block = "".join(_format_one(current))
            cause = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
            if cause is not None:
                joint = "direct cause of" if current.__cause__ is not None else "raised while handling"
                block = f"\nThe above exception was the {joint} the following exception:\n\n" + block
            blocks.append(block)
            size += len(block)
            current = cause
        return bound_tail(scrub("".join(reversed(blocks)).lstrip("\n")), limit)
    except Exception as error:  # noqa: BLE001
        return f"<traceback unavailable: {type(error).__name__}>"


def _format_one(exc: BaseException) -> list[str]:
    frames = [(frame, frame.f_code, lineno) for frame, lineno in _traceback.walk_tb(exc.__traceback__)]
    where = tuple((code, lineno) for _, code, lineno in frames)
    stack = _stacks.get(where)
    if stack is None:  # a failure that keeps coming fails at the same lines: formatted once
        lines = ["Traceback (most recent call last):\n"]
        for frame, code, lineno in frames:
            lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
            source = linecache.getline(code.co_filename, lineno, frame.f_globals).strip()
            if source:
                lines.append(f"    {source}\n")
        stack = "".join(lines)
        if len(_stacks) >= _STACKS_MAX:
            _stacks.clear()
        _stacks[where] = stack
    return [stack, *_exception_only(exc)]


#: Formatted stacks by the code and line of each frame (the lines shown depend on nothing else).
_stacks: dict[tuple[tuple[object, int], ...], str] = {}
_STACKS_MAX: Final = 256


def _exception_only(exc: BaseException) -> list[str]:
    """The last line of a traceback, as ``traceback.format_exception_only`` writes it, without building a
    ``TracebackException`` (which walks the stack again: a fifth of the failure path's time). Syntax errors
    and exceptions with notes, rare on this path, are left to the standard library."""
    if isinstance(exc, SyntaxError) or getattr(exc, "__notes__", None) is not None:
        return _traceback.format_exception_only(type(exc), exc)
    cls = type(exc)
    name = (
        cls.__qualname__
        if cls.__module__ in ("builtins", "__main__")
        else f"{cls.__module__}.{cls.__qualname__}"
    )
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - what the standard library writes for a broken __str__
        text = "<exception str() failed>"
    return [f"{name}: {text}\n" if text else f"{name}\n"]


def bound_tail(text: str, limit: int = MAX_TRACEBACK_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, keeping the end and marking the cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    tail = data[len(data) - (limit - len(_TRUNCATED_HEAD)) :]
    return (_TRUNCATED_HEAD + tail).decode("utf-8", "ignore")


def _as_bytes(value: HeaderValue) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _pairs(headers: Headers | None) -> Iterable[tuple[str, HeaderValue]]:
    if headers is None:
        return ()
    if type(headers) is list:  # as the client gives them: no abstract-class check
        return headers
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def _without_provenance(headers: Headers | None, *, drop_key: bool) -> Iterable[tuple[str, HeaderValue]]:
    for name, value in _pairs(headers):
        if name in PROVENANCE_HEADERS or (drop_key and name == IDEMPOTENCY_KEY):
            continue
        yield name, value


def _first_values(headers: Iterable[tuple[str, HeaderValue]]) -> dict[str, bytes | None]:
    """The first value of each provenance header (and the idempotency key), as bytes."""
    found: dict[str, bytes | None] = {}
    wanted = _READ
    for name, value in headers:
        if name in wanted and name not in found:
            found[name] = _as_bytes(value)
    return found


def _optional_text(found: Mapping[str, bytes | None], name: str) -> str | None:
    raw = found.get(name)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidProvenanceError(f"header {name}: not UTF-8 ({raw[:40]!r})") from exc


def _text(found: Mapping[str, bytes | None], name: str, default: str | None = None) -> str:
    value = _optional_text(found, name)
    if value is None:
        if default is None:
            raise InvalidProvenanceError(f"header {name}: missing")
        return default
    return value


def _optional_int(found: Mapping[str, bytes | None], name: str) -> int | None:
    raw = found.get(name)
    if raw is None:
        return None
    value = parse_int(raw)
    if value is None:
        shown = raw[:40].decode("ascii", "backslashreplace")
        raise InvalidProvenanceError(
            f"header {name}: not an ASCII decimal integer within 64 bits ({shown!r})"
        )
    return value


def _count(found: Mapping[str, bytes | None], name: str) -> int:
    value = _int(found, name)
    if value < 0:
        raise InvalidProvenanceError(f"header {name}: a count cannot be negative ({value})")
    return value


def _int(found: Mapping[str, bytes | None], name: str) -> int:
    value = _optional_int(found, name)
    if value is None:
        raise InvalidProvenanceError(f"header {name}: missing")
    return value
