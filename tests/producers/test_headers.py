import pytest

from kep.producers import headers as h

pytestmark = pytest.mark.unit


def test_names_match_the_architecture_contract() -> None:
    assert (h.EVENT_TYPE, h.SCHEMA, h.IDEMPOTENCY_KEY, h.TRACEPARENT) == (
        "kep-event-type",
        "kep-schema",
        "kep-idempotency-key",
        "traceparent",
    )
    provenance = [
        h.ORIGINAL_TOPIC,
        h.ORIGINAL_PARTITION,
        h.ORIGINAL_OFFSET,
        h.ORIGINAL_TIMESTAMP,
        h.CONSUMER_GROUP,
        h.ATTEMPT,
        h.FIRST_FAILURE_TIME,
        h.LAST_FAILURE_TIME,
        h.EXCEPTION_TYPE,
        h.EXCEPTION_MESSAGE,
        h.EXCEPTION_TRACEBACK,
        h.DUE_TIME,
    ]
    assert provenance == [
        "kep-original-topic",
        "kep-original-partition",
        "kep-original-offset",
        "kep-original-timestamp",
        "kep-consumer-group",
        "kep-attempt",
        "kep-first-failure-time",
        "kep-last-failure-time",
        "kep-exception-type",
        "kep-exception-message",
        "kep-exception-traceback",
        "kep-due-time",
    ]


def test_readers_take_the_first_match_and_are_none_safe() -> None:
    headers = [("kep-attempt", b"2"), ("x", None), ("kep-attempt", b"3"), ("name", "text")]
    assert h.header_int(headers, h.ATTEMPT) == 2
    assert h.header_bytes(headers, "x") is None
    assert h.header_str(headers, "name") == "text"
    assert h.header_str(headers, "missing") is None
    assert h.header_str(None, h.ATTEMPT) is None
    assert h.header_int([], h.ATTEMPT) is None


def test_readers_accept_a_mapping() -> None:
    assert h.header_int({h.ATTEMPT: b"4"}, h.ATTEMPT) == 4
    assert h.header_str({h.ATTEMPT: None}, h.ATTEMPT) is None


def test_header_int_refuses_what_is_not_a_number() -> None:
    assert h.header_int([("kep-due-time", b"soon")], h.DUE_TIME) is None
    assert h.header_int([("kep-due-time", h.encode_int(1_700_000_000_123))], h.DUE_TIME) == 1_700_000_000_123


def test_header_str_survives_invalid_utf8() -> None:
    assert h.header_str([("k", b"\xff\xfeok")], "k") == "\ufffd\ufffdok"


@pytest.mark.parametrize(
    "raw",
    [b"--1", b"+1", b" 1", b"1 ", b"1_000", b"", b"-", b"7" * 5000, b"99999999999999999999",
     b"9223372036854775808", "\u0663".encode(), "\u0663", b"0x10", b"1e3", b"\xff"],
)  # fmt: skip
def test_parse_int_takes_only_ascii_decimal_within_64_bits(raw: bytes | str) -> None:
    assert h.parse_int(raw) is None
    assert h.header_int([("n", raw)], "n") is None


def test_parse_int_bounds() -> None:
    assert h.parse_int(b"9223372036854775807") == 2**63 - 1
    assert h.parse_int(b"-9223372036854775808") == -(2**63)
    assert h.parse_int(b"-5") == -5
    assert h.parse_int("0") == 0
