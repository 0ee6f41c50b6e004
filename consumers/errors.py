"""Errors raised by the consumer runtime.

Hierarchy::

    KepError
    └── ConsumerError
        ├── ConfigError           bad worker settings (names the file and key)
        ├── AppError              an app declaration that cannot run
        │                         (no handler, unknown topic, bad import path)
        ├── HandlerError          wraps a handler's exception with the message's coordinates
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


class IdempotencyStoreError(ConsumerError):
    """The idempotency store is unreachable or failed."""
