"""The one place the consumer runtime reports what became of a message: ``Outcomes``.

The processor calls ``started``, ``handled`` and ``duplicate``; the retry router calls ``retrying`` and
``dead_lettered``. ``NO_OUTCOMES`` does nothing (event status off); ``consumers.status.recorder.StatusRecorder``
records them. Calls come from lane threads; ``handled``, ``duplicate`` and ``dead_lettered`` may block (a batch
member is counted before its offset can be committed) until ``cancelled`` is set.
"""

from __future__ import annotations

from typing import Protocol

from confluent_kafka import Message

from kep.consumers.context import MessageContext


class Cancelled(Protocol):
    """The partition's cancellation (``runtime.cancel.CancelToken``): ``wait`` returns True once cancelled."""

    def wait(self, timeout: float | None) -> bool: ...


class Outcomes(Protocol):
    def started(self, msg: Message, ctx: MessageContext) -> None:
        """A handler is about to run (attempt ``ctx.attempt``)."""

    def handled(self, msg: Message, ctx: MessageContext, cancelled: Cancelled) -> None:
        """The handler succeeded and the idempotency key is complete."""

    def duplicate(self, msg: Message, ctx: MessageContext, cancelled: Cancelled) -> None:
        """The key was already complete: a redelivery of a handled event."""

    def retrying(
        self,
        msg: Message,
        ctx: MessageContext | None,
        tier: str,
        attempt: int,
        due_ms: int,
        exc: BaseException,
    ) -> None:
        """Failed attempt ``attempt``; it runs again through ``tier`` (or ``blocking``: in place) at ``due_ms``."""

    def dead_lettered(
        self,
        msg: Message,
        ctx: MessageContext | None,
        exc: BaseException,
        reason: str,
        cancelled: Cancelled,
        *,
        dropped: bool = False,
    ) -> None:
        """Given up: to the dead-letter topic, or ``dropped`` where the topology disables dead letters."""


class NoOutcomes:
    def started(self, msg: Message, ctx: MessageContext) -> None:
        pass

    def handled(self, msg: Message, ctx: MessageContext, cancelled: Cancelled) -> None:
        pass

    def duplicate(self, msg: Message, ctx: MessageContext, cancelled: Cancelled) -> None:
        pass

    def retrying(
        self,
        msg: Message,
        ctx: MessageContext | None,
        tier: str,
        attempt: int,
        due_ms: int,
        exc: BaseException,
    ) -> None:
        pass

    def dead_lettered(
        self,
        msg: Message,
        ctx: MessageContext | None,
        exc: BaseException,
        reason: str,
        cancelled: Cancelled,
        *,
        dropped: bool = False,
    ) -> None:
        pass

    def close(self) -> None:
        pass


NO_OUTCOMES = NoOutcomes()
