"""``kep dlq ls``: counts per group and source topic, grouped by exception type, with the age range."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kep.consumers.dlq import summarize
from kep.schemas.errors import DecodeError
from kep.topology.settings import KafkaSettings
from tests.dlq.conftest import T0, DeadLetters, json_output

pytestmark = pytest.mark.integration


def test_ls_counts_dead_letters_by_exception_type_with_oldest_and_newest(
    dead_letters: DeadLetters, cli: Callable[..., tuple[int, str]]
) -> None:
    dead_letters.add(partition=0, exc=TimeoutError("gateway"), failed_at_ms=T0 + 5_000)
    dead_letters.add(partition=1, exc=TimeoutError("gateway"), failed_at_ms=T0 + 1_000)
    dead_letters.add(partition=1, exc=TimeoutError("gateway"), failed_at_ms=T0 + 9_000)
    dead_letters.add(partition=0, exc=DecodeError("bad magic"), failed_at_ms=T0 + 3_000, value=b"\x00garbage")

    code, output = cli("ls", "--topology", str(dead_letters.topology_file), "--json")

    assert code == 0, output
    rows = json_output(output)
    assert isinstance(rows, list)
    by_group = {row["group"]: row for row in rows}
    row = by_group[dead_letters.group]
    assert row["source"] == dead_letters.source
    assert row["topic"] == dead_letters.dlq
    assert row["count"] == 4 and row["pending"] == 4
    assert row["by_exception"] == {"builtins.TimeoutError": 3, "kep.schemas.errors.DecodeError": 1}
    assert row["oldest"] == "2026-01-01T00:00:01.000Z"
    assert row["newest"] == "2026-01-01T00:00:09.000Z"
    idle = [r for g, r in by_group.items() if g != dead_letters.group]
    assert (
        len(idle) == 1 and idle[0]["exists"] is False
    )  # the other group's dead-letter topic was never created


def test_ls_table_names_topics_and_marks_missing_ones(
    dead_letters: DeadLetters, cli: Callable[..., tuple[int, str]]
) -> None:
    dead_letters.add(partition=0, exc=KeyError("sku"), failed_at_ms=T0)

    code, output = cli("ls", "--topology", str(dead_letters.topology_file), "--group", dead_letters.group)

    assert code == 0, output
    assert "KeyError x1" in output
    assert "missing" not in output
    code, output = cli("ls", "--topology", str(dead_letters.topology_file))
    assert code == 0 and "missing" in output


def test_ls_unknown_group_is_a_clear_error(
    dead_letters: DeadLetters, cli: Callable[..., tuple[int, str]]
) -> None:
    code, output = cli("ls", "--topology", str(dead_letters.topology_file), "--group", "nope")
    assert code == 2
    assert "unknown group 'nope'" in output


def test_records_without_provenance_are_counted_apart(dead_letters: DeadLetters) -> None:
    dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0, provenance=False)
    dead_letters.add(partition=1, exc=TimeoutError(), failed_at_ms=T0)

    [summary] = summarize(KafkaSettings(bootstrap_servers=dead_letters.kafka), [dead_letters.dlq])

    assert summary.count == 2
    assert summary.by_exception == {"(no provenance)": 1, "builtins.TimeoutError": 1}
