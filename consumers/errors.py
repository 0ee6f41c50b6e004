"""Errors raised by the consumer runtime.

Hierarchy::

    KepError
    └── ConsumerError
        ├── ConfigError           bad worker settings (names the file and key)
        ├── AppError              an app declaration that cannot run
        │                         (no handler, unknown topic, bad import path)
        ├── HandlerError          wraps a handler's exception with the message's coordinates
        ├── RecordError           a record the runtime cannot read (a header, its key); fatal: dead-lettered
        └── IdempotencyStoreError the dedupe store cannot be reached or answered nonsense
"""

from __future__ import annotations

from kep.schemas.errors import KepError


class ConsumerError(KepError):
    """Root of the consumer runtime's errors."""


class ConfigError(ConsumerError):
    """Worker settings that cannot be used."""


class AppError(ConsumerError):
    """An app declaration that cannot run."""


class HandlerError(ConsumerError):
    """A handler raised; keeps the original exception as ``__cause__``."""


class RecordError(ConsumerError):
    """Something about one record the runtime could not deal with (its headers, its key, a step of its path):
    fatal, so the record goes to the dead-letter topic with this error."""


class IdempotencyStoreError(ConsumerError):
    """The idempotency store is unreachable or failed."""


def exception_name(exc: BaseException) -> str:
    """The exception's class as logs, metrics, event states and errors name it: ``ValueError`` for a builtin,
    ``module.Class`` otherwise."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
