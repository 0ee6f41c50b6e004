"""Structured logs: JSON lines (orjson) for machines, a readable console format for people.

``configure_logging`` sets up structlog and routes the standard library's ``logging`` (third-party libraries)
through the same renderer, so every line of a process has one format. Context bound with
``structlog.contextvars.bind_contextvars`` (or the ``bound_contextvars`` context manager) is merged into every
event: the runtime binds the event id, group, topic, partition, offset, attempt and trace id per message.
Secrets are masked in every line (``kep.consumers.redact``): connection URLs' passwords, ``password=...``, and
the values the worker registered from its configuration.

>>> configure_logging("json", "INFO")
>>> structlog.get_logger("kep.demo").info("handled", topic="orders", offset=42)  # doctest: +SKIP
{"topic":"orders","offset":42,"event":"handled","level":"info","logger":"kep.demo","timestamp":"..."}
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Literal, TextIO, cast

import orjson
import structlog
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from kep.consumers.redact import scrub
from kep.schemas.errors import KepError

LogFormat = Literal["auto", "console", "json"]
FORMATS: tuple[str, ...] = ("auto", "console", "json")
_HANDLER_NAME = "kep-structlog"


class LoggingConfigError(KepError):
    """An unknown log format or level; the message names the value and the accepted ones."""


def _orjson_dumps(event: EventDict, **_kwargs: Any) -> str:
    """One JSON line. orjson refuses integers beyond 64 bits and strings with lone surrogates (both can come
    from a record's headers): such values are then written as text, so a log line is never lost to them."""
    try:
        return orjson.dumps(event, default=repr).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(_portable(event), default=repr, separators=(",", ":"), ensure_ascii=False)


def _portable(value: Any) -> Any:
    """``value`` with integers beyond 64 bits as decimal text and lone surrogates backslash-escaped."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_portable(str(key)): _portable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(item) for item in value]
    return _portable(repr(value))


_FIRST_KEYS = ("timestamp", "level", "logger", "event")


def _ordered(renderer: Processor) -> Processor:
    """Put ``timestamp``, ``level``, ``logger`` and ``event`` first in each JSON line, the context after."""

    def render(logger: WrappedLogger, method_name: str, event: EventDict) -> Any:
        head = {key: event.pop(key) for key in _FIRST_KEYS if key in event}
        return renderer(logger, method_name, {**head, **event})

    return render


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item) for item in value]
    return value


def _scrub_event(logger: WrappedLogger, method_name: str, event: EventDict) -> EventDict:
    """Mask secrets (``kep.consumers.redact``) in every value of the event, exceptions included."""
    return {key: _scrubbed(value) if not key.startswith("_") else value for key, value in event.items()}


def _scrub_output(renderer: Processor) -> Processor:
    """Mask secrets in the rendered line too: the console renderer formats tracebacks itself."""

    def render(logger: WrappedLogger, method_name: str, event: EventDict) -> Any:
        out = renderer(logger, method_name, event)
        return scrub(out) if isinstance(out, str) else out

    return render


def _add_logger_name(logger: WrappedLogger, method_name: str, event: EventDict) -> EventDict:
    """The stdlib record's logger name, or the name structlog was asked for."""
    record = event.get("_record")
    if record is not None:
        event["logger"] = record.name
    return event


class _CurrentStderr:
    """``sys.stderr`` as it is when a line is written, not as it was when logging was configured.

    Test runners (pytest's capture, typer's ``CliRunner``) swap ``sys.stderr`` for a stream they close when
    they are done; a logger that kept that stream would fail later with "I/O operation on closed file".
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    @property
    def name(self) -> str:
        return str(getattr(sys.stderr, "name", "<stderr>"))


# One instance: structlog keeps a write lock per stream object.
_STDERR = cast(TextIO, _CurrentStderr())


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise LoggingConfigError(f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return number


def resolve_format(format: str, stream: TextIO) -> Literal["console", "json"]:
    """``auto`` becomes ``console`` when ``stream`` is a terminal and ``json`` otherwise."""
    if format not in FORMATS:
        raise LoggingConfigError(f"log format {format!r} is not one of {', '.join(FORMATS)}")
    if format == "auto":
        isatty = getattr(stream, "isatty", None)
        return "console" if callable(isatty) and isatty() else "json"
    return "json" if format == "json" else "console"


def configure_logging(
    format: LogFormat | str = "auto", level: str = "INFO", *, stream: TextIO | None = None
) -> Literal["console", "json"]:
    """Configure structlog and the stdlib root logger; returns the format chosen.

    ``format``: ``json`` (one JSON object per line: ``timestamp`` in ISO 8601 UTC, ``level``, ``event``,
    ``logger`` and the bound context), ``console`` (aligned, coloured on a terminal) or ``auto``.
    ``stream``: where lines go; by default standard error, looked up at each write, so a ``sys.stderr``
    swapped in later is followed. Safe to call again: the last call wins.
    """
    out = stream if stream is not None else _STDERR
    chosen = resolve_format(format, out)
    number = _level_number(level)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *_process_index(),
    ]
    renderer: Processor
    if chosen == "json":
        # Tracebacks as data, without local variables: locals may hold secrets.
        shared += [ExceptionRenderer(ExceptionDictTransformer(show_locals=False))]
        renderer = _ordered(structlog.processors.JSONRenderer(serializer=_orjson_dumps))
    else:
        isatty = getattr(out, "isatty", None)
        renderer = _scrub_output(structlog.dev.ConsoleRenderer(colors=bool(callable(isatty) and isatty())))
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            _scrub_event,
            _named_renderer(renderer),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=_NamedPrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(out, number, shared, renderer)
    return chosen


def _process_index() -> list[Processor]:
    """In a worker process of ``kep run``'s supervisor (``KEP_PROCESS_INDEX`` set): a processor that adds
    ``process`` (its index) to every line, so the lines of the processes, written to one stream, tell apart."""
    value = os.environ.get("KEP_PROCESS_INDEX", "")
    if not (value.isascii() and value.isdigit()):
        return []
    index = int(value)

    def add(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
        event.setdefault("process", index)
        return event

    return [add]


class _NamedPrintLogger(structlog.PrintLogger):
    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedPrintLoggerFactory:
    """A ``PrintLogger`` per call that remembers the name given to ``structlog.get_logger(name)``."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedPrintLogger:
        return _NamedPrintLogger(self._file, str(args[0]) if args else None)


def _named_renderer(renderer: Processor) -> Processor:
    def render(logger: WrappedLogger, method_name: str, event: EventDict) -> Any:
        name = getattr(logger, "name", None)
        if name and "logger" not in event:
            event["logger"] = name
        return renderer(logger, method_name, event)

    return render


def _route_stdlib(out: TextIO, level: int, shared: list[Processor], renderer: Processor) -> None:
    """Render records of the stdlib ``logging`` module (librdkafka wrappers, httpx, ...) like structlog's."""
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, _add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _scrub_event, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
