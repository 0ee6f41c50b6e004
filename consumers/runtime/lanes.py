"""Serial lanes on a shared thread pool.

A lane runs its work items one after another, in order; different lanes run in parallel on the pool. One lane
per partition gives "one message at a time per partition"; one lane per (partition, key hash) gives key-ordered
parallelism. Items submitted while the lane is behind may be merged into the last queued one (``merge``), so a
lane that fell behind catches up in bigger batches. Lanes of a partition share its cancellation token: once
cancelled, queued items are dropped and the running one stops at its next message.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import structlog

from kep.consumers.runtime.cancel import CancelToken

T = TypeVar("T")
log = structlog.get_logger(__name__)


class Lane(Generic[T]):
    __slots__ = ("_pool", "_run", "_merge", "_queue", "_batch", "_lock", "_running", "_token", "_idle")

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        run: Callable[[T], None],
        token: CancelToken | None = None,
        merge: Callable[[T, T], bool] | None = None,
    ) -> None:
        self._pool = pool
        self._run = run
        # merge(queued, new): fold ``new`` into the last queued item (not started); False when it cannot
        self._merge = merge
        self._queue: deque[T] = deque()
        self._batch: deque[T] = deque()  # taken from the queue, being run
        self._lock = threading.Lock()
        self._running = False
        self._token = token if token is not None else CancelToken()
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, items: Iterable[T]) -> None:
        with self._lock:
            if self._token.cancelled:
                return
            queue, merge = self._queue, self._merge
            if merge is None:
                queue.extend(items)
            else:
                for item in items:
                    if not (queue and merge(queue[-1], item)):
                        queue.append(item)
            if self._running or not self._queue:
                return
            self._running = True
            self._idle.clear()
        self._pool.submit(self._drain)

    def _drain(self) -> None:
        run, token = self._run, self._token
        while True:
            with self._lock:
                if token.cancelled or not self._queue:
                    self._running = False
                    self._idle.set()
                    return
                batch, self._queue = self._queue, deque()
                self._batch = batch
            while batch and not token.cancelled:
                item = batch.popleft()
                try:
                    run(item)
                except Exception:  # the runner settles every message itself; this is a last resort
                    log.exception("lane item failed unexpectedly")

    def cancel(self) -> int:
        """Cancel the lane's token and drop queued items; return how many were not yet taken. The item being
        run, if any, stops at its next message; the rest of the batch the lane had taken is dropped too."""
        self._token.cancel()
        with self._lock:
            dropped = len(self._queue) + len(self._batch)
            self._queue.clear()
            if not self._running:
                self._idle.set()
            return dropped

    def wait_idle(self, timeout: float | None) -> bool:
        return self._idle.wait(timeout)

    @property
    def backlog(self) -> int:
        return len(self._queue)
