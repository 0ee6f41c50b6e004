"""``Room``: how lanes wake the poll thread waiting at the in-flight bound.

At the bound the poll thread does not fetch: it waits on the room for up to its consume timeout. Every lane calls
``made()`` when it finished a batch of work; that is a flag test unless the poll thread is waiting, so the hot
path pays nothing for it. The poll thread then counts what is running and fetches as much as fits, at once,
instead of sitting out a timeout with nothing to do (and without pausing partitions, which would drop what
librdkafka had already fetched for them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Room:
    __slots__ = ("_event", "_waiting")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._waiting = False

    def made(self) -> None:
        """Some work finished (lane threads)."""
        if self._waiting:
            self._event.set()

    def wait(self, timeout: float, full: Callable[[], bool]) -> bool:
        """Wait up to ``timeout`` seconds for ``made()`` while ``full()`` (the poll thread only): ``full`` is asked
        again once this thread is known to be waiting, so work finished just before is not missed. True when
        woken or no longer full."""
        self._event.clear()
        self._waiting = True
        try:
            if not full():
                return True
            return self._event.wait(timeout)
        finally:
            self._waiting = False
