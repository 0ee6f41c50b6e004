"""Open a store from a URL: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
``redis://host:port/db``, ``postgresql://user@host/db``."""

from __future__ import annotations

from kep.consumers.errors import ConfigError
from kep.consumers.idempotency.base import IdempotencyStore


def store_scheme(url: str) -> str:
    """The scheme of a store URL, lower case (``memory``, ``sqlite``, ``redis``, ...), or "" without one. The
    idempotency, limit and status stores of one URL are chosen by it."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def open_store(
    url: str, namespace: str, *, ttl_s: float = 7 * 24 * 3600, lease_s: float = 60.0
) -> IdempotencyStore:
    scheme = store_scheme(url)
    if scheme == "memory":
        from kep.consumers.idempotency.memory import MemoryStore

        return MemoryStore(namespace, ttl_s=ttl_s, lease_s=lease_s)
    if scheme == "sqlite":
        from kep.consumers.idempotency.sqlite import SqliteStore

        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(
                f"idempotency store {url!r}: expected sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        return SqliteStore(path, namespace, ttl_s=ttl_s, lease_s=lease_s)
    if scheme in ("redis", "rediss"):
        from kep.consumers.idempotency.redis import RedisStore

        return RedisStore(url, namespace, ttl_s=ttl_s, lease_s=lease_s)
    if scheme in ("postgresql", "postgres"):
        from kep.consumers.idempotency.postgres import PostgresStore

        return PostgresStore(url, namespace, ttl_s=ttl_s, lease_s=lease_s)
    shown = url.split("@")[-1] if "@" in url else url  # never echo credentials
    raise ConfigError(
        f"idempotency store {shown!r}: unknown scheme {scheme!r}; use memory://, sqlite:///, redis:// or postgresql://"
    )
