"""PostgreSQL and Redis for the shared idempotency stores.

``make test`` starts both (``scripts/services.sh``). A test that needs one skips with the reason when it is
absent, unless ``KEP_REQUIRE_SERVICES=1`` (``make test`` under CI), where an absent service is a failure.
"""

from __future__ import annotations

import os

import pytest

POSTGRES_DSN = os.environ.get("KEP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KEP_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _absent(reason: str) -> None:
    if os.environ.get("KEP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (KEP_REQUIRE_SERVICES=1: these tests must not skip here)")
    pytest.skip(reason)


def require_postgres() -> str:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        _absent(f"PostgreSQL not reachable at {POSTGRES_DSN.split('@')[-1]}: {exc}")
    return POSTGRES_DSN


def require_redis() -> str:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001
        _absent(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL
