"""The interface of the stores that keep limits: shared by every replica of a group.

Keys are already digests (``gate.py`` hashes the limit's name and the ``per`` value); each store scopes them
by its namespace (the consumer group).

* ``take(key, interval, tolerance)``: one start of a rate limit (``gcra.py``), atomic in the store. Returns
  0.0 when allowed, else the seconds until it may be.
* ``enter(key, slots, lease_s, holder)``: take one of ``slots`` concurrency slots for ``lease_s`` seconds,
  as ``holder``. Returns 0.0 when taken, else the seconds until the first lease ends (slots are usually
  given back sooner, by ``leave``). A slot whose holder died comes back when its lease ends.
* ``leave(key, holder)``: give the slot back.

Times come from the store's own clock where it has one (Redis ``TIME``, PostgreSQL ``clock_timestamp()``),
so replicas on other hosts agree; ``clock`` replaces it (tests). A store that cannot answer raises
``LimitStoreError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

Clock = Callable[[], float]


class LimitStore(ABC):
    def __init__(self, namespace: str, *, clock: Clock | None = None) -> None:
        self.namespace = namespace
        self.clock = clock

    @abstractmethod
    def take(self, key: str, interval: float, tolerance: float) -> float: ...

    @abstractmethod
    def enter(self, key: str, slots: int, lease_s: float, holder: str) -> float: ...

    @abstractmethod
    def leave(self, key: str, holder: str) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.namespace!r})"
