"""Failure classification: what is fatal by default, by declaration, and under ``retryable_only``."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from kep.consumers.errors import ConfigError, HandlerError
from kep.consumers.retry.classify import ErrorClassifier, NonRetryableError, RetryableError, matches
from kep.schemas.errors import DecodeError, UnknownSchemaError

pytestmark = pytest.mark.unit


class PaymentDeclined(Exception):
    pass


class CardExpired(PaymentDeclined):
    pass


class _Model(BaseModel):
    amount: int


def _validation_error() -> ValidationError:
    try:
        _Model(amount="lots")
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a ValidationError")


def test_corrupt_bytes_unknown_schemas_and_invalid_events_are_fatal_by_default() -> None:
    classifier = ErrorClassifier()
    assert classifier.is_fatal(DecodeError("bad magic", raw=b"\x00"))
    assert classifier.is_fatal(UnknownSchemaError("fingerprint 00ff", raw=b"\xc3\x01"))
    assert classifier.is_fatal(_validation_error())


def test_ordinary_failures_are_retryable_by_default() -> None:
    classifier = ErrorClassifier()
    assert not classifier.is_fatal(TimeoutError("gateway"))
    assert not classifier.is_fatal(ConnectionError("db"))
    assert not classifier.is_fatal(PaymentDeclined())


def test_declared_fatal_classes_match_subclasses() -> None:
    classifier = ErrorClassifier(fatal=(PaymentDeclined,))
    assert classifier.is_fatal(PaymentDeclined())
    assert classifier.is_fatal(CardExpired())
    assert not classifier.is_fatal(TimeoutError())


def test_declared_fatal_dotted_names_match_subclasses_without_importing() -> None:
    classifier = ErrorClassifier(fatal=(f"{__name__}.PaymentDeclined", "KeyError"))
    assert classifier.is_fatal(CardExpired())
    assert classifier.is_fatal(KeyError("sku"))
    assert classifier.is_fatal(type("MissingSku", (KeyError,), {})("x"))
    assert not classifier.is_fatal(LookupError())
    assert matches(KeyError(), ["builtins.LookupError"])


def test_retryable_only_makes_everything_else_fatal() -> None:
    classifier = ErrorClassifier(retryable_only=(TimeoutError, "builtins.ConnectionError"))
    assert not classifier.is_fatal(TimeoutError())
    assert not classifier.is_fatal(ConnectionRefusedError())  # a ConnectionError subclass
    assert classifier.is_fatal(ValueError())
    assert classifier.is_fatal(DecodeError("corrupt"))  # defaults stay fatal even if listed as retryable


def test_marker_exceptions_win_over_the_rules() -> None:
    class Transient(RetryableError, ValueError):
        pass

    class Permanent(NonRetryableError, TimeoutError):
        pass

    classifier = ErrorClassifier(fatal=(ValueError,), retryable_only=(TimeoutError,))
    assert not classifier.is_fatal(Transient())
    assert classifier.is_fatal(Permanent())
    assert ErrorClassifier().is_fatal(NonRetryableError("bad data"))


def test_handler_errors_are_classified_by_their_cause() -> None:
    classifier = ErrorClassifier(fatal=(PaymentDeclined,))
    wrapped = HandlerError("orders[0]@7: handler failed")
    wrapped.__cause__ = PaymentDeclined()
    assert classifier.is_fatal(wrapped)
    retryable = HandlerError("orders[0]@8: handler failed")
    retryable.__cause__ = TimeoutError()
    assert not classifier.is_fatal(retryable)


def test_bad_declarations_are_config_errors_naming_them() -> None:
    with pytest.raises(ConfigError, match="'not a name'"):
        ErrorClassifier(fatal=("not a name",))
    with pytest.raises(ConfigError, match="int"):
        ErrorClassifier(retryable_only=(int,))  # type: ignore[arg-type]
