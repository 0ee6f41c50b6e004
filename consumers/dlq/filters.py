"""Which dead letters a replay takes: exception type, dead-lettering time window, key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kep.consumers.dlq.errors import InvalidFilterError
from kep.consumers.dlq.records import DeadLetterRecord


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    """Which dead letters to replay; ``None`` fields match everything.

    ``exception_type`` matches the qualified name (``builtins.TimeoutError``) or the class name alone
    (``TimeoutError``). ``since_ms`` (inclusive) and ``until_ms`` (exclusive) bound the dead-lettering time
    (``kep-last-failure-time``). ``key`` is the exact record key.
    """

    exception_type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    key: bytes | None = None

    @classmethod
    def build(
        cls,
        *,
        exception_type: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        key: str | bytes | None = None,
    ) -> ReplayFilter:
        """A filter from command-line style values: ISO 8601 times (naive = UTC), a text key."""
        since_ms = None if since is None else _epoch_ms(since, "--since")
        until_ms = None if until is None else _epoch_ms(until, "--until")
        if since_ms is not None and until_ms is not None and until_ms <= since_ms:
            raise InvalidFilterError(f"--until {until} is not after --since {since}")
        return cls(
            exception_type=exception_type or None,
            since_ms=since_ms,
            until_ms=until_ms,
            key=key.encode() if isinstance(key, str) else key,
        )

    def matches(self, record: DeadLetterRecord) -> bool:
        if self.exception_type is not None:
            actual = record.exception_type
            if self.exception_type != actual and self.exception_type != actual.rsplit(".", 1)[-1]:
                return False
        when = record.dead_lettered_ms
        if self.since_ms is not None and when < self.since_ms:
            return False
        if self.until_ms is not None and when >= self.until_ms:
            return False
        return self.key is None or record.key == self.key


def _epoch_ms(value: str | datetime, option: str) -> int:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            expected = "expected an ISO 8601 time, e.g. 2024-05-01T12:00:00Z"
            raise InvalidFilterError(f"{option} {value!r}: {expected}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)
