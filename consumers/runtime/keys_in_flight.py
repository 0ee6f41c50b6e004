"""``KeysInFlight``: the idempotency keys this worker process's lanes are running, one message at a time per key.

A store's claim belongs to the process that made it (its ``owner``): a claim the process holds already answers
``NEW`` again, so that a message run again in place keeps its own claim. Two lanes of one process holding copies
of one event (key-ordered lanes with other message keys, or two partitions) would then both run it. So each
message takes its key here too, after the store's claim: a key another message of this process holds is busy,
and the message waits in place as it would for another process's claim (then, once the first is completed, it is
a duplicate). A key is given back only once the store has its completion or its release, never before: until
then the store still shows the process's claim, and the next message would run on it.

An entry outlives its message only when its lane stops mid-batch (a revoke, a store outage given up): it lapses
after the store's lease, as the store's own claim does. Shared by the lanes; one lock, held for a dictionary
operation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable

from kep.consumers.idempotency.base import Key

#: Entries kept before lapsed ones are swept out (they are dropped when their message settles otherwise).
SWEEP_ABOVE = 100_000


class KeysInFlight:
    __slots__ = ("lease_s", "_clock", "_held", "_lock")

    def __init__(self, lease_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_s = lease_s
        self._clock = clock
        self._held: dict[Key, tuple[Hashable, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: Key, holder: Hashable) -> bool:
        """Hold ``key`` for ``holder`` (a message); False when another holder has it and its lease runs."""
        now = self._clock()
        with self._lock:
            held = self._held
            entry = held.get(key)
            if entry is not None and entry[0] != holder and entry[1] > now:
                return False
            held[key] = (holder, now + self.lease_s)
            if len(held) > SWEEP_ABOVE:
                for lapsed in [k for k, (_, until) in held.items() if until <= now]:
                    del held[lapsed]
            return True

    def drop(self, keys: Iterable[Key]) -> None:
        """Give ``keys`` back: their completion or release is stored."""
        with self._lock:
            held = self._held
            for key in keys:
                held.pop(key, None)

    def __contains__(self, key: Key) -> bool:
        entry = self._held.get(key)
        return entry is not None and entry[1] > self._clock()

    def __len__(self) -> int:
        return len(self._held)
