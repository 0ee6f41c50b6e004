"""Typed publishing of kep events: ``EventProducer`` and the header names every kep record carries."""

from kep.producers import headers
from kep.producers.batches import BatchReport, InvalidBatchError
from kep.producers.delivery import DeliveryCallback, DeliveryFuture, DeliveryReport
from kep.producers.errors import (
    AmbiguousTopicError,
    BackpressureTimeoutError,
    DeliveryError,
    DeliveryTimeoutError,
    InvalidDelayError,
    InvalidHeaderError,
    InvalidTraceparentError,
    MissingKeyError,
    OutboxError,
    ProducerClosedError,
    ProducerError,
    RoutingError,
    UnknownTopicError,
    WrongEventTypeError,
)
from kep.producers.jsonl import BadLine, read_events
from kep.producers.outbox import Outbox
from kep.producers.producer import EventProducer
from kep.producers.sample import SampleError, iter_sample_events, sample_event, sample_events
from kep.producers.settings import ProducerSettings
from kep.producers.traceparent import validate_traceparent

__all__ = [
    "AmbiguousTopicError",
    "BackpressureTimeoutError",
    "BadLine",
    "BatchReport",
    "DeliveryCallback",
    "DeliveryError",
    "DeliveryFuture",
    "DeliveryReport",
    "DeliveryTimeoutError",
    "EventProducer",
    "InvalidBatchError",
    "InvalidDelayError",
    "InvalidHeaderError",
    "InvalidTraceparentError",
    "MissingKeyError",
    "Outbox",
    "OutboxError",
    "ProducerClosedError",
    "ProducerError",
    "ProducerSettings",
    "RoutingError",
    "SampleError",
    "UnknownTopicError",
    "WrongEventTypeError",
    "headers",
    "iter_sample_events",
    "read_events",
    "sample_event",
    "sample_events",
    "validate_traceparent",
]
