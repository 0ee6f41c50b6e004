"""Typed publishing of kep events: ``EventProducer`` and the header names every kep record carries."""

from producers import headers
from producers.delivery import DeliveryCallback, DeliveryFuture, DeliveryReport
from producers.errors import (
    AmbiguousTopicError,
    BackpressureTimeoutError,
    DeliveryError,
    DeliveryTimeoutError,
    InvalidHeaderError,
    InvalidTraceparentError,
    MissingKeyError,
    ProducerClosedError,
    ProducerError,
    RoutingError,
    UnknownTopicError,
    WrongEventTypeError,
)
from producers.jsonl import BadLine, read_events
from producers.producer import EventProducer
from producers.sample import iter_sample_events, sample_events
from producers.settings import ProducerSettings
from producers.traceparent import validate_traceparent

__all__ = [
    "AmbiguousTopicError",
    "BackpressureTimeoutError",
    "BadLine",
    "DeliveryCallback",
    "DeliveryError",
    "DeliveryFuture",
    "DeliveryReport",
    "DeliveryTimeoutError",
    "EventProducer",
    "InvalidHeaderError",
    "InvalidTraceparentError",
    "MissingKeyError",
    "ProducerClosedError",
    "ProducerError",
    "ProducerSettings",
    "RoutingError",
    "UnknownTopicError",
    "WrongEventTypeError",
    "headers",
    "iter_sample_events",
    "read_events",
    "sample_events",
    "validate_traceparent",
]
