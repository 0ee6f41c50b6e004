"""Provenance headers: round trips, replacement of earlier provenance, bounds on text."""

from __future__ import annotations

import traceback

import pytest

from kep.consumers.retry import headers as provenance_headers
from kep.consumers.retry.headers import (
    MAX_TRACEBACK_BYTES,
    PROVENANCE_HEADERS,
    InvalidProvenanceError,
    Provenance,
    bound_tail,
    bounded_message,
    bounded_traceback,
    header_value,
    strip_provenance,
)
from kep.producers import headers as names

pytestmark = pytest.mark.unit


def _provenance(**changes: object) -> Provenance:
    base: dict[str, object] = {
        "original_topic": "orders",
        "original_partition": 3,
        "original_offset": 41,
        "original_timestamp_ms": 1_700_000_000_123,
        "consumer_group": "billing",
        "attempt": 1,
        "first_failure_ms": 1_700_000_001_000,
        "last_failure_ms": 1_700_000_001_000,
        "exception_type": "builtins.TimeoutError",
        "exception_message": "payment gateway timed out",
        "exception_traceback": "Traceback (most recent call last):\n  ...\nTimeoutError: gateway timed out\n",
        "idempotency_key": "2f1c7d0e-8c4b-4d61-9a51-0c6f6d3a9d11",
        "due_ms": 1_700_000_011_000,
    }
    base.update(changes)
    return Provenance(**base)  # type: ignore[arg-type]


ORIGINAL = [
    ("kep-event-type", b"kep.orders.OrderPlaced"),
    ("kep-schema", b"sof:0011223344556677"),
    ("kep-idempotency-key", b"2f1c7d0e-8c4b-4d61-9a51-0c6f6d3a9d11"),
    ("x-tenant", b"a"),
    ("x-tenant", b"b"),
    ("x-empty", b""),
    ("x-null", None),
]


def test_round_trip_keeps_every_original_header_in_order_and_reads_back_the_provenance() -> None:
    provenance = _provenance()
    headers = provenance.to_headers(ORIGINAL)
    assert Provenance.from_headers(headers) == provenance
    assert headers[: len(ORIGINAL)] == ORIGINAL
    assert [v for k, v in headers if k == "x-tenant"] == [b"a", b"b"]
    assert ("x-null", None) in headers and ("x-empty", b"") in headers


def test_integers_are_ascii_decimal_and_every_header_name_follows_the_contract() -> None:
    headers = dict(_provenance().to_headers())
    assert headers[names.ORIGINAL_PARTITION] == b"3"
    assert headers[names.ORIGINAL_OFFSET] == b"41"
    assert headers[names.ORIGINAL_TIMESTAMP] == b"1700000000123"
    assert headers[names.ATTEMPT] == b"1"
    assert headers[names.DUE_TIME] == b"1700000011000"
    assert set(headers) == PROVENANCE_HEADERS | {names.IDEMPOTENCY_KEY}


def test_forwarding_again_replaces_earlier_provenance_instead_of_duplicating_it() -> None:
    first = _provenance()
    failed_again = ValueError("still broken")
    second = first.next_failure(failed_again, now_ms=1_700_000_020_000, due_ms=1_700_000_080_000)
    headers = second.to_headers(first.to_headers(ORIGINAL))
    counted = [k for k, _ in headers if k in PROVENANCE_HEADERS or k == names.IDEMPOTENCY_KEY]
    assert len(counted) == len(set(counted)) == len(PROVENANCE_HEADERS) + 1
    parsed = Provenance.from_headers(headers)
    assert parsed is not None
    assert parsed.attempt == 2
    assert parsed.first_failure_ms == first.first_failure_ms
    assert parsed.last_failure_ms == 1_700_000_020_000
    assert parsed.exception_type == "builtins.ValueError"
    assert parsed.exception_message == "still broken"
    assert parsed.original_offset == 41


def test_original_idempotency_key_is_kept_when_the_provenance_has_none() -> None:
    headers = _provenance(idempotency_key=None).to_headers(ORIGINAL)
    assert [v for k, v in headers if k == names.IDEMPOTENCY_KEY] == [b"2f1c7d0e-8c4b-4d61-9a51-0c6f6d3a9d11"]
    headers = _provenance(idempotency_key="other").to_headers(ORIGINAL)
    assert [v for k, v in headers if k == names.IDEMPOTENCY_KEY] == [b"other"]


def test_dead_letter_provenance_without_due_time_or_key_round_trips() -> None:
    provenance = _provenance(due_ms=None, idempotency_key=None)
    headers = provenance.to_headers(None)
    assert header_value(headers, names.DUE_TIME) is None
    assert Provenance.from_headers(headers) == provenance


def test_strip_provenance_gives_back_the_original_headers_in_order() -> None:
    stripped = strip_provenance(_provenance().to_headers(ORIGINAL))
    assert stripped == ORIGINAL
    assert Provenance.from_headers(stripped) is None


def test_records_without_provenance_give_none() -> None:
    assert Provenance.from_headers(None) is None
    assert Provenance.from_headers(ORIGINAL) is None


def test_headers_given_as_a_mapping_are_read_too() -> None:
    provenance = _provenance()
    as_mapping = {name: value for name, value in provenance.to_headers()}
    assert Provenance.from_headers(as_mapping) == provenance
    assert strip_provenance(as_mapping) == [(names.IDEMPOTENCY_KEY, b"2f1c7d0e-8c4b-4d61-9a51-0c6f6d3a9d11")]


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        (names.ATTEMPT, b"two", "kep-attempt: not an ASCII decimal integer"),
        (names.ATTEMPT, b"--1", "kep-attempt: not an ASCII decimal integer"),
        (names.ATTEMPT, b"-5", "kep-attempt: a count cannot be negative"),
        (names.ATTEMPT, b"9" * 5000, "kep-attempt: not an ASCII decimal integer within 64 bits"),
        (names.ATTEMPT, b"99999999999999999999", "kep-attempt: not an ASCII decimal integer within 64 bits"),
        (names.DUE_TIME, "\u0663".encode(), "kep-due-time: not an ASCII decimal integer"),
        (names.ORIGINAL_OFFSET, b"\xff\xfe", "kep-original-offset: not an ASCII decimal integer"),
        (names.EXCEPTION_TYPE, b"\xff\xfe", "kep-exception-type: not UTF-8"),
        (names.ORIGINAL_PARTITION, None, "kep-original-partition: missing"),
    ],
)
def test_unreadable_provenance_names_the_header(name: str, value: bytes | None, match: str) -> None:
    headers = [(k, value if k == name else v) for k, v in _provenance().to_headers()]
    with pytest.raises(InvalidProvenanceError, match=match):
        Provenance.from_headers(headers)


def test_first_failure_captures_type_message_and_traceback() -> None:
    try:
        raise KeyError("sku-42")
    except KeyError as exc:
        provenance = Provenance.first_failure(
            topic="orders",
            partition=0,
            offset=7,
            timestamp_ms=5,
            consumer_group="billing",
            exc=exc,
            now_ms=99,
            idempotency_key="k",
            due_ms=1099,
        )
    assert provenance.attempt == 1
    assert provenance.first_failure_ms == provenance.last_failure_ms == 99
    assert provenance.exception_type == "builtins.KeyError"
    assert provenance.exception_message == "'sku-42'"
    assert "test_first_failure_captures_type_message_and_traceback" in provenance.exception_traceback
    assert provenance.exception_traceback.rstrip().endswith("KeyError: 'sku-42'")


def _chain(depth: int) -> None:
    """Raise through ``depth`` chained exceptions, so the formatted traceback is long."""
    try:
        if depth == 0:
            raise ValueError("root cause")
        _chain(depth - 1)
    except Exception as exc:
        if depth == 50:
            raise RuntimeError("bottom of a deep stack") from exc
        raise LookupError(f"level {depth}") from exc


def test_traceback_is_bounded_to_4_kib_keeping_the_raising_frame() -> None:
    try:
        _chain(50)
    except RuntimeError as exc:
        text = bounded_traceback(exc)
        full = "".join(__import__("traceback").format_exception(exc))
    assert len(full.encode()) > MAX_TRACEBACK_BYTES
    assert len(text.encode()) <= MAX_TRACEBACK_BYTES
    assert text.startswith("[truncated]\n")
    assert text.endswith("RuntimeError: bottom of a deep stack\n")
    assert len(_provenance(exception_traceback=text).to_headers()[-4][1] or b"") <= MAX_TRACEBACK_BYTES


def test_bounds_never_split_a_utf8_character() -> None:
    text = "é" * 5000  # two bytes each
    tail = bound_tail(text, 101)
    assert len(tail.encode()) <= 101 and tail.endswith("é")
    message = bounded_message(ValueError("ü" * 2000))
    assert len(message.encode()) <= 1024 and message.endswith("[truncated]")


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("x"),
        ValueError(),
        KeyError("k"),
        OSError(2, "gone"),
        _Unprintable(),
        SyntaxError("bad", ("f", 1, 2, "x y")),
    ],
)
def test_the_traceback_ends_with_the_line_the_standard_library_would_write(exc: BaseException) -> None:
    try:
        raise exc
    except BaseException as raised:  # noqa: BLE001 - any exception's last line
        text = bounded_traceback(raised)
        expected = "".join(traceback.format_exception_only(type(raised), raised))
    assert text.endswith(expected)


def _fail(message: str) -> None:
    raise ValueError(message)


def test_a_failure_that_repeats_shows_its_own_message_and_its_own_lines() -> None:
    """Stacks are formatted once per place of failure; each traceback still ends with its own message, and a
    failure at another line shows that line."""
    provenance_headers._stacks.clear()
    texts = []
    for message in ("first", "second"):
        try:
            _fail(message)
        except ValueError as exc:
            texts.append(bounded_traceback(exc))
    assert texts[0].endswith("ValueError: first\n") and texts[1].endswith("ValueError: second\n")
    assert texts[0].removesuffix("ValueError: first\n") == texts[1].removesuffix("ValueError: second\n")
    assert "_fail(message)" in texts[0]
    assert len(provenance_headers._stacks) == 1  # formatted once for both
    try:
        _fail("elsewhere")
    except ValueError as exc:
        other = bounded_traceback(exc)
    assert '_fail("elsewhere")' in other and "_fail(message)" not in other
