"""Open a status store from the idempotency store's URL: the same database or Redis, tables of its own."""

from __future__ import annotations

from kep.consumers.errors import ConfigError
from kep.consumers.idempotency.factory import store_scheme
from kep.consumers.status.store import MemoryStatusStore, StatusStore

DEFAULT_TTL_S = 7 * 24 * 3600.0


def open_status_store(url: str, *, ttl_s: float = DEFAULT_TTL_S) -> StatusStore:
    scheme = store_scheme(url)
    if scheme == "memory":
        return MemoryStatusStore(ttl_s=ttl_s)
    if scheme == "sqlite":
        from kep.consumers.status.sql import SqlStatusStore

        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(
                f"status store {url!r}: expected sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        return SqlStatusStore(path, dialect="sqlite", ttl_s=ttl_s)
    if scheme in ("redis", "rediss"):
        from kep.consumers.status.redis import RedisStatusStore

        return RedisStatusStore(url, ttl_s=ttl_s)
    if scheme in ("postgresql", "postgres"):
        from kep.consumers.status.sql import SqlStatusStore

        return SqlStatusStore(url, dialect="postgres", ttl_s=ttl_s)
    shown = url.split("@")[-1] if "@" in url else url
    raise ConfigError(
        f"status store {shown!r}: unknown scheme {scheme!r}; use memory://, sqlite:///, redis:// or postgresql://"
    )
