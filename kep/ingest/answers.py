"""Idempotent answers: a request retried with the same ``Idempotency-Key`` gets the answer of the first one.

Answers that say the event was stored (2xx) are kept, per key, for ``ttl_s`` seconds and at most ``max_size``
keys (the oldest go first). A request whose key is being worked on right now waits for that work and shares
its answer, so concurrent retries publish once. Failures (503 and the like) are not kept: the retry publishes
again with the same event id, and consumers process that id once.

The same key with a different body is a client bug, answered 409: the key names one request.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, JSON body bytes."""

    status: int
    body: bytes

    @property
    def keep(self) -> bool:
        return 200 <= self.status < 300


class KeyReusedError(Exception):
    """The key was first used for a different request."""


def fingerprint(*parts: bytes) -> bytes:
    """What identifies a request under its key: a digest of its path and body."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


class Answers:
    """Answers per key, for one process. ``await answers.once(key, fingerprint, work)``."""

    def __init__(self, *, max_size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_size
        self._ttl = ttl_s
        self._clock = clock
        self._done: OrderedDict[str, tuple[bytes, float, Answer]] = OrderedDict()
        self._running: dict[str, tuple[bytes, asyncio.Future[Answer]]] = {}

    def cached(self, key: str, print_: bytes) -> Answer | None:
        """The kept answer for ``key``, or None; ``KeyReusedError`` when it was for another request."""
        entry = self._done.get(key)
        if entry is None:
            return None
        kept_print, expires, answer = entry
        if expires <= self._clock():
            del self._done[key]
            return None
        if kept_print != print_:
            raise KeyReusedError(key)
        return answer

    def remember(self, key: str, print_: bytes, answer: Answer) -> None:
        if not answer.keep or self._max == 0:
            return
        self._done[key] = (print_, self._clock() + self._ttl, answer)
        self._done.move_to_end(key)
        while len(self._done) > self._max:
            self._done.popitem(last=False)

    async def once(
        self, key: str, print_: bytes, work: Callable[[], Awaitable[Answer]]
    ) -> tuple[Answer, bool]:
        """``(answer, replayed)``: the kept or shared answer (``replayed`` True), or ``work()``'s."""
        kept = self.cached(key, print_)
        if kept is not None:
            return kept, True
        running = self._running.get(key)
        if running is not None:
            if running[0] != print_:
                raise KeyReusedError(key)
            return await asyncio.shield(running[1]), True
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._running[key] = (print_, future)
        try:
            answer = await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._running.pop(key, None)
        future.set_result(answer)
        self.remember(key, print_, answer)
        return answer, False

    def __len__(self) -> int:
        return len(self._done)
