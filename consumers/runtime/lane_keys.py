"""``LaneKeys``: a lane batch's idempotency keys, claimed in one store call and completed in one.

Per message the processor claims the event's key before the handler and completes it after; with a store that
batches (``IdempotencyStore.batches``), a lane does both once per batch of messages instead:

* **Claims ahead.** Before the batch runs, the keys that can be read without decoding (the idempotency-key
  header, or the record's coordinates) are claimed with one ``claim_many``. Each message's claim then takes
  its answer from there. An answer older than half the lease is not trusted (the claim is made again), a key
  that appears twice in the batch is claimed ahead only once, and claims the batch did not use (a revoke
  stopped it, a record failed before its claim) are released at the end, so no claim outlives the batch but
  by a crash, after which its lease expires as before.
* **Releases with them.** The claim of a failed handler is given up with the next flush of completions, in
  the same store call (``settle_many``: one SQLite transaction, one Redis pipeline), or at the end of the
  batch, or before the lane waits: its retry comes a retry delay later, or runs in place under the same claim.
* **Completions after.** A key is completed only after its handler succeeded, as before; the message's offset
  is finished only after that completion is stored, as before. What changes is that completions wait for the
  end of the batch (or ``FLUSH_EVERY`` messages, or ``FLUSH_AFTER_S``) and go to the store together with
  ``complete_many``; a key claimed again in the same batch is completed first, so a repeated event is a
  duplicate, not run twice. A store that does not answer is waited out (on the partition's token), never
  skipped; a revoke meanwhile leaves those offsets unfinished, so the next owner gets them again.

Handlers that write through ``ctx.transaction()`` complete their key in their own transaction and are settled
at once. Lane threads only; one ``LaneKeys`` per lane batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog
from confluent_kafka import Message

from kep.consumers.idempotency.base import ClaimState, IdempotencyStore, Key
from kep.consumers.outcome import HANDLED
from kep.consumers.runtime.keys_in_flight import KeysInFlight
from kep.consumers.runtime.partition import PartitionState

log = structlog.get_logger(__name__)

FLUSH_EVERY = 1000
"""Completions held at most before they are written (and their offsets finished): as many as a lane batch holds
(``worker.MERGED_BATCH``). In SQLite, where each completed key dirties a page of a big table and every dirty page
is written whole to the log, 1,000 keys a transaction cost about a third less per key than 200 (measured on a
table of 200,000 keys); ``FLUSH_AFTER_S`` keeps the wait short when messages come slowly."""
FLUSH_AFTER_S = 0.05
"""How long the oldest held completion waits at most for more to join it (checked as messages finish)."""
_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class LaneKeys:
    def __init__(
        self,
        store: IdempotencyStore,
        state: PartitionState,
        settle: Callable[[PartitionState, Message, object], object],
        *,
        clock: Callable[[], float] = time.monotonic,
        in_flight: KeysInFlight | None = None,
    ) -> None:
        self.store = store
        self._in_flight = in_flight
        self.state = state
        self._settle = settle
        self._clock = clock
        self._ahead: dict[Key, ClaimState] = {}
        self._claimed_at = 0.0
        self._fresh_s = store.lease_s / 2
        self._keys: list[Key] = []  # completions held, and their messages, in order
        self._held: list[Message] = []
        self._held_keys: set[Key] = set()
        self._held_since = 0.0
        self._deferred: Message | None = None
        self._releases: list[Key] = []  # claims of failed handlers, given up with the next flush

    # -- claims ---------------------------------------------------------------------------------------------
    def claim_ahead(self, keys: Sequence[Key | None]) -> None:
        """Claim the distinct ``keys`` (None: not known before decoding) in one call. A store that does not
        answer is left for the messages' own claims to wait out."""
        distinct = list(dict.fromkeys(k for k in keys if k is not None))
        in_flight = self._in_flight
        if in_flight is not None:
            # held by this batch from now on; a key another message of the process holds is claimed later
            distinct = [key for key in distinct if in_flight.take(key, self)]
        if not distinct:
            return
        try:
            answers = self.store.claim_many(distinct)
        except Exception:  # noqa: BLE001 - each message claims its key itself, and waits if it must
            self._give_back(distinct)
            return
        self._claimed_at = self._clock()
        self._ahead = dict(zip(distinct, answers, strict=True))
        self._give_back([key for key, answer in self._ahead.items() if answer is not ClaimState.NEW])

    def claim(self, key: Key) -> ClaimState:
        """The claim of ``key`` for the message being processed."""
        if key in self._held_keys:  # run again in this batch: its completion must be stored first
            self.flush()
        answer = self._ahead.pop(key, None)
        if answer is not None and self._clock() - self._claimed_at < self._fresh_s:
            return answer
        return self.store.claim(key)  # not claimed ahead, or too long ago (our own claim is renewed)

    def release_later(self, key: Key) -> None:
        """``key``'s handler failed: give its claim up with the next flush (a retry of it comes later)."""
        self._releases.append(key)

    def release_unused(self) -> None:
        """Give up the claims made ahead that no message used (end of the batch, or a revoke), and those of
        failed handlers not given up yet."""
        unused = [key for key, answer in self._ahead.items() if answer is ClaimState.NEW]
        self._ahead = {}
        unused += self._releases
        self._releases = []
        if unused:
            try:
                self.store.release_many(unused)
            except Exception as exc:  # noqa: BLE001 - their leases expire by themselves
                log.warning("cannot release unused claims", count=len(unused), error=str(exc))
                return
            self._give_back(unused)

    def _release_failed(self) -> None:
        """Give up the claims of failed handlers (before completions: a key in both ends done either way)."""
        releases, self._releases = self._releases, []
        try:
            self.store.release_many(releases)
        except Exception as exc:  # noqa: BLE001 - their leases expire by themselves
            log.warning("cannot release claims", count=len(releases), error=str(exc))
            return
        self._give_back(releases)

    def _give_back(self, keys: Sequence[Key]) -> None:
        """The store has these keys' completion or release: other messages of this process may take them."""
        if self._in_flight is not None and keys:
            self._in_flight.drop(keys)

    # -- completions ---------------------------------------------------------------------------------------
    def defer(self, key: Key, msg: Message) -> None:
        """``msg``'s handler succeeded: complete ``key`` with the batch, then finish the message."""
        if not self._keys:
            self._held_since = self._clock()
        self._keys.append(key)
        self._held.append(msg)
        self._held_keys.add(key)
        self._deferred = msg

    def took(self, msg: Message) -> bool:
        """Whether ``msg``'s outcome was held by ``defer`` (it is then settled by ``flush``); flushes when
        enough is held."""
        if self._deferred is not msg:
            return False
        self._deferred = None
        if len(self._keys) >= FLUSH_EVERY or self._clock() - self._held_since >= FLUSH_AFTER_S:
            self.flush()
        return True

    def flush(self) -> None:
        """Store the held completions in one call, then finish their messages. Tried also when the partition
        was revoked meanwhile (what was handled is then committed by the revoke); waits while the store does not
        answer, unless the partition is given up: then they are left unfinished and delivered again."""
        if not self._keys:
            if self._releases:
                self._release_failed()
            return
        # the failed handlers' claims go in the same call, given up first: a key in both ends done
        releases, self._releases = self._releases, []
        token = self.state.token
        waits = 0
        while True:
            try:
                self.store.settle_many(self._keys, releases)
                break
            except Exception as exc:  # noqa: BLE001 - a store error, or one it cannot tell apart: wait
                if waits == 0:
                    log.warning("idempotency store unavailable; waiting to complete keys", error=str(exc))
                if token.wait(_BACKOFF_S[min(waits, len(_BACKOFF_S) - 1)]):
                    return
                waits += 1
        self._give_back(self._keys)
        self._give_back(releases)
        held, self._held = self._held, []
        self._keys, self._held_keys = [], set()
        state, settle = self.state, self._settle
        for msg in held:
            settle(state, msg, HANDLED)
