"""``KeysInFlight``: the idempotency keys this worker process's lanes are running, one message at a time per key.

A store's claim belongs to the process that made it (its ``owner``): a claim the process holds already answers
``NEW`` again, so that a message run again in place keeps its own claim. Two lanes of one process holding copies
of one event (key-ordered lanes with other message keys, or two partitions) would then both run it. So each
message takes its key here too, after the store's claim: a key another message of this process holds is busy,
and the message waits in place as it would for another process's claim (then, once the first is completed, it is
a duplicate). A key is given back only once the store has its completion or its release, never before: until
then the store still shows the process's claim, and the next message would run on it.

An entry outlives its message only when its lane stops mid-batch (a revoke, a store outage given up): it lapses
after the store's lease, as the store's own claim does. Shared by the lanes; each step is a dictionary
operation (atomic under the interpreter lock, as in the memory store).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kep.consumers.idempotency.base import Key

#: Entries kept before lapsed ones are swept out (they are dropped when their message settles otherwise).
SWEEP_ABOVE = 100_000


class KeysInFlight:
    __slots__ = ("lease_s", "_clock", "_held")

    def __init__(self, lease_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_s = lease_s
        self._clock = clock
        self._held: dict[Key, tuple[object, float]] = {}

    def take(self, key: Key, holder: object) -> bool:
        """Hold ``key`` for ``holder`` (a message, or a lane batch); False when another holder has it and its
        lease runs. Each step is one dictionary operation, atomic under the interpreter lock (no lock here:
        this runs for every message)."""
        now = self._clock()
        held = self._held
        mine = (holder, now + self.lease_s)
        entry = held.setdefault(key, mine)
        if entry is mine:
            if len(held) > SWEEP_ABOVE:
                self._sweep(now)
            return True
        if entry[0] is not holder and entry[1] > now:
            return False
        held[key] = mine  # its own again (run again in place), or one left behind whose lease ran out
        return True

    def drop(self, keys: Iterable[Key]) -> None:
        """Give ``keys`` back: their completion or release is stored."""
        pop = self._held.pop
        for key in keys:
            pop(key, None)

    def drop_one(self, key: Key) -> None:
        self._held.pop(key, None)

    def _sweep(self, now: float) -> None:
        held = self._held
        for key in [k for k, entry in list(held.items()) if entry[1] <= now]:
            held.pop(key, None)

    def __len__(self) -> int:
        return len(self._held)
