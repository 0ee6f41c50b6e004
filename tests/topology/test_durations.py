from datetime import timedelta

import pytest

from kep.topology import DurationError, format_duration, parse_duration
from kep.topology.durations import to_milliseconds

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("1s", 1.0),
        ("10s", 10.0),
        ("1m", 60.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        (" 2m ", 120.0),
        ("1 s", 1.0),
        ("0s", 0.0),
    ],
)
def test_parses_number_and_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parses_timedelta() -> None:
    assert parse_duration(timedelta(minutes=2)) == 120.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "500ms"),
        (1, "1s"),
        (10, "10s"),
        (60, "1m"),
        (600, "10m"),
        (90, "90s"),
        (3600, "1h"),
        (86400, "1d"),
        (1.5, "1500ms"),
        (5400, "90m"),
    ],
)
def test_formats_the_largest_exact_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["500ms", "1s", "10s", "1m", "10m", "1h", "1d", "90s"])
def test_format_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("bad", ["10", "10 sec", "s", "-1s", "1w", "", "1e3s", "1.5.0s"])
def test_error_names_the_bad_value(bad: str) -> None:
    with pytest.raises(DurationError, match=repr(bad).replace(".", r"\.")):
        parse_duration(bad)


def test_bare_numbers_are_refused_with_a_hint() -> None:
    with pytest.raises(DurationError, match=r"duration 60 .*add a unit"):
        parse_duration(60)  # type: ignore[arg-type]


def test_sub_millisecond_values_are_refused() -> None:
    with pytest.raises(DurationError, match="whole number of milliseconds"):
        parse_duration("0.5ms")
    with pytest.raises(DurationError, match="whole number of milliseconds"):
        format_duration(0.0001)


def test_to_milliseconds() -> None:
    assert to_milliseconds(parse_duration("1m")) == 60_000
