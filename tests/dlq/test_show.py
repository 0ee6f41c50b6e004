"""``kep dlq show``: decoded events, errors, tracebacks and provenance; hex when the bytes do not decode."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient

from kep.schemas.errors import DecodeError
from tests.dlq.conftest import T0, DeadLetters, json_output

pytestmark = pytest.mark.integration


def test_show_decodes_the_event_and_gives_hex_for_corrupt_bytes(
    dead_letters: DeadLetters, cli: Callable[..., tuple[int, str]]
) -> None:
    good = dead_letters.add(partition=0, exc=TimeoutError("gateway timed out"), failed_at_ms=T0 + 1_000)
    dead_letters.add(
        partition=1, exc=DecodeError("bad magic"), failed_at_ms=T0 + 2_000, value=b"\x00\x01garbage"
    )

    code, output = cli("show", dead_letters.dlq, "--json")

    assert code == 0, output
    views = json_output(output)
    assert isinstance(views, list) and len(views) == 2
    decoded, corrupt = views  # oldest first
    assert decoded["event"]["event_id"] == good["event_id"]
    assert decoded["event"]["items"] == [{"sku": "sku-1", "quantity": 2, "unit_price_cents": 450}]
    assert decoded["event_type"] == "kep.orders.OrderPlaced"
    assert decoded["value_hex"] is None and decoded["decode_error"] is None
    assert decoded["key"] == good["key"].decode()  # type: ignore[attr-defined]
    provenance = decoded["provenance"]
    assert provenance["original_topic"] == dead_letters.source
    assert provenance["consumer_group"] == dead_letters.group
    assert provenance["exception_type"] == "builtins.TimeoutError"
    assert provenance["exception_message"] == "gateway timed out"
    assert "TimeoutError: gateway timed out" in provenance["exception_traceback"]
    assert provenance["attempt"] == 4
    assert {"name": "x-tenant", "value": "beta", "value_hex": None} in decoded["headers"]

    assert corrupt["event"] is None
    assert corrupt["value_hex"] == b"\x00\x01garbage".hex()
    assert "DecodeError" in corrupt["decode_error"]
    assert corrupt["provenance"]["exception_type"] == "kep.schemas.errors.DecodeError"


def test_show_one_record_by_partition_and_offset(
    dead_letters: DeadLetters, cli: Callable[..., tuple[int, str]]
) -> None:
    for n in range(3):
        dead_letters.add(partition=1, exc=ValueError(f"number {n}"), failed_at_ms=T0 + n)

    code, output = cli("show", dead_letters.dlq, "--partition", "1", "--offset", "1", "--json")

    assert code == 0, output
    [view] = json_output(output)
    assert (view["partition"], view["offset"]) == (1, 1)
    assert view["provenance"]["exception_message"] == "number 1"


def test_show_renders_panels_with_error_traceback_and_hex(
    dead_letters: DeadLetters, cli: Callable[..., tuple[int, str]]
) -> None:
    dead_letters.add(partition=0, exc=DecodeError("bad magic"), failed_at_ms=T0, value=b"\xde\xad\xbe\xef")

    code, output = cli("show", dead_letters.dlq, "--limit", "5")

    assert code == 0, output
    assert f"{dead_letters.dlq}[0]@0" in output
    assert "kep.schemas.errors.DecodeError: bad magic" in output
    assert "undecodable: DecodeError" in output
    assert "value (hex): deadbeef" in output
    assert "traceback" in output


def test_show_offset_without_partition_is_refused(
    dead_letters: DeadLetters, cli: Callable[..., tuple[int, str]]
) -> None:
    code, output = cli("show", dead_letters.dlq, "--offset", "3")
    assert code == 2 and "--offset needs --partition" in output


def test_show_unknown_topic_names_it_and_does_not_create_it(
    kafka: str, cli: Callable[..., tuple[int, str]]
) -> None:
    topic = f"no-such-{uuid.uuid4().hex[:8]}.dlq"
    code, output = cli("show", topic)
    assert code == 2 and f"topic '{topic}' does not exist" in output
    admin = AdminClient({"bootstrap.servers": kafka})
    assert topic not in admin.list_topics(timeout=10).topics


def test_untrusted_keys_errors_and_tracebacks_are_shown_as_text_never_as_markup_or_escapes(
    dead_letters: DeadLetters, cli: Callable[..., tuple[int, str]]
) -> None:
    """Whoever produced the record chose its key and error text: ``k-[/]`` crashed ``dlq show`` (Rich markup),
    and an ESC sequence in a header reached the terminal."""
    hostile = type("Odd[/]\x1b]0;owned\x07", (Exception,), {})
    dead_letters.add(
        partition=0,
        exc=hostile("\x1b[2J[bold red]boom[/]\u202etxt.exe"),
        failed_at_ms=T0,
        key=b"k-[/]\x1b[31m",
    )

    code, output = cli("show", dead_letters.dlq)
    assert code == 0, output
    assert "k-[/]\\x1b[31m" in output
    assert "\\x1b[2J[bold red]boom[/]\\u202etxt.exe" in output
    assert "\x1b" not in output and "\u202e" not in output and "\x07" not in output

    code, output = cli("ls", "--topology", str(dead_letters.topology_file))
    assert code == 0, output
    assert "Odd[/]\\x1b]0;owned\\x07 x1" in output
    assert "\x1b" not in output


def test_an_error_naming_an_untrusted_topic_is_printed_as_is(cli: Callable[..., tuple[int, str]]) -> None:
    code, output = cli("show", "no-such-[/]-topic")
    assert code == 2 and "no-such-[/]-topic" in output
