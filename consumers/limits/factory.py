"""Open the limit store that lives beside the idempotency store of the same URL."""

from __future__ import annotations

from kep.consumers.errors import ConfigError
from kep.consumers.idempotency.factory import store_scheme
from kep.consumers.limits.store import Clock, LimitStore


def open_limit_store(url: str, namespace: str, *, clock: Clock | None = None) -> LimitStore:
    """``memory://``, ``sqlite:///path``, ``redis://...`` or ``postgresql://...``: the idempotency store's URL."""
    scheme = store_scheme(url)
    if scheme == "memory":
        from kep.consumers.limits.memory import MemoryLimitStore

        return MemoryLimitStore(namespace, clock=clock)
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        from kep.consumers.limits.sqlite import SqliteLimitStore

        return SqliteLimitStore(url[len("sqlite:///") :], namespace, clock=clock)
    if scheme in ("redis", "rediss"):
        from kep.consumers.limits.redis import RedisLimitStore

        return RedisLimitStore(url, namespace, clock=clock)
    if scheme in ("postgresql", "postgres"):
        from kep.consumers.limits.postgres import PostgresLimitStore

        return PostgresLimitStore(url, namespace, clock=clock)
    shown = url.split("@")[-1]  # never echo credentials
    raise ConfigError(f"limit store {shown!r}: use memory://, sqlite:///path, redis:// or postgresql://")
