"""The consumer group runtime: apps, handlers, at-least-once processing with idempotency keys, retries and
dead letters, metrics and lag."""

from kep.consumers.app import App, load_app
from kep.consumers.context import MessageContext
from kep.consumers.errors import AppError, ConfigError, ConsumerError, HandlerError, IdempotencyStoreError
from kep.consumers.retry.classify import NonRetryableError, RetryableError
from kep.consumers.settings import ConsumerSettings, load_schema_registry_settings, load_settings

__all__ = [
    "App",
    "AppError",
    "ConfigError",
    "ConsumerError",
    "ConsumerSettings",
    "HandlerError",
    "IdempotencyStoreError",
    "MessageContext",
    "NonRetryableError",
    "RetryableError",
    "load_app",
    "load_schema_registry_settings",
    "load_settings",
]
