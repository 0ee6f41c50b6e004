"""Delivery reports, the future ``publish`` returns, and the conversion from librdkafka's ``(err, msg)``."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NamedTuple

from kep.producers.errors import DeliveryError

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message


class DeliveryReport(NamedTuple):
    """Where the broker stored a record: topic, partition, offset, timestamp (ms, CreateTime) and key."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None


#: ``on_delivery(report, error)``: exactly one of the two is ``None``.
DeliveryCallback = Callable[[DeliveryReport | None, DeliveryError | None], None]

_new_report = tuple.__new__


def report_from(msg: Message) -> DeliveryReport:
    """The ``DeliveryReport`` of a delivered message (built without the NamedTuple constructor's overhead)."""
    return _new_report(
        DeliveryReport, (msg.topic(), msg.partition(), msg.offset(), msg.timestamp()[1], msg.key())
    )


def error_from(err: KafkaError, msg: Message | None) -> DeliveryError:
    """A ``DeliveryError`` naming the topic and partition, with the Kafka error code and a readable reason."""
    topic = (msg.topic() if msg is not None else None) or "?"
    partition = msg.partition() if msg is not None else None
    return DeliveryError(topic, partition, err.code(), err.name(), err.str(), retriable=err.retriable())


class DeliveryFuture(Future[DeliveryReport]):
    """A ``concurrent.futures.Future`` resolved by the producer's delivery callback.

    Waiting on it (``result``/``exception``) serves the producer's callbacks, so it resolves even when nothing
    else polls the producer.
    """

    def __init__(self, poll: Callable[[float], Any]) -> None:
        super().__init__()
        self._poll = poll

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.set_result(report_from(msg))
        else:
            self.set_exception(error_from(err, msg))

    def cancel(self) -> bool:
        """A record handed to the client cannot be taken back: always ``False``."""
        return False

    def _drive(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done():
            remaining = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if remaining <= 0:
                return
            self._poll(remaining)

    def result(self, timeout: float | None = None) -> DeliveryReport:
        self._drive(timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._drive(timeout)
        return super().exception(0)


def wrap_callback(callback: DeliveryCallback) -> Callable[[KafkaError | None, Message], None]:
    """A librdkafka ``(err, msg)`` callback that calls ``callback(report, error)``.

    It runs once per record, so it builds the report inline (as ``report_from`` does) rather than calling it.
    """
    new_report, report_type = _new_report, DeliveryReport

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            report = (msg.topic(), msg.partition(), msg.offset(), msg.timestamp()[1], msg.key())
            callback(new_report(report_type, report), None)
        else:
            callback(None, error_from(err, msg))

    return on_delivery
