"""kep.logs: JSON lines and console output, bound context, stdlib records, levels, tracebacks."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import orjson
import pytest
import structlog
from typer.testing import CliRunner

from kep.cli.main import app
from kep.logs import LoggingConfigError, configure_logging

pytestmark = pytest.mark.unit


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    yield
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_level_logger_timestamp_and_the_bound_message_context() -> None:
    out = io.StringIO()
    assert configure_logging("json", "INFO", stream=out) == "json"
    with structlog.contextvars.bound_contextvars(
        event_id="e-1", group="billing", topic="orders", partition=2, offset=41, attempt=1, trace_id="abc"
    ):
        structlog.get_logger("kep.consumers.runtime").info("handled", duration_s=0.004)
    structlog.get_logger("kep.consumers.runtime").info("after")
    first, second = lines(out)
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert (
        first["level"] == "info"
        and first["logger"] == "kep.consumers.runtime"
        and first["event"] == "handled"
    )
    assert str(first["timestamp"]).endswith("Z")
    assert {
        k: first[k] for k in ("event_id", "group", "topic", "partition", "offset", "attempt", "trace_id")
    } == {
        "event_id": "e-1",
        "group": "billing",
        "topic": "orders",
        "partition": 2,
        "offset": 41,
        "attempt": 1,
        "trace_id": "abc",
    }
    assert "group" not in second


def test_the_level_filters_both_structlog_and_stdlib_records() -> None:
    out = io.StringIO()
    configure_logging("json", "warning", stream=out)
    structlog.get_logger("kep").info("hidden")
    structlog.get_logger("kep").warning("shown", n=1)
    logging.getLogger("thirdparty").info("hidden too")
    logging.getLogger("thirdparty").error("stdlib %s", "shown")
    assert [(e["logger"], e["event"]) for e in lines(out)] == [
        ("kep", "shown"),
        ("thirdparty", "stdlib shown"),
    ]


def test_exceptions_are_structured_without_local_variables() -> None:
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    password = "hunter2"  # a local a traceback with locals would leak
    try:
        raise ValueError("bad order")
    except ValueError:
        structlog.get_logger("kep").exception("failed", topic="orders")
    assert password not in out.getvalue()
    (event,) = lines(out)
    assert event["level"] == "error"
    exception = event["exception"]
    assert isinstance(exception, list) and exception[0]["exc_type"] == "ValueError"
    assert exception[0]["exc_value"] == "bad order"


def test_values_orjson_refuses_are_still_written() -> None:
    """A header can carry a 20-digit integer or bytes that decode to lone surrogates; the line must not fail."""
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    structlog.get_logger("kep").warning("odd values", attempt=99999999999999999999, key="k-\udcff")
    (event,) = lines(out)
    assert event["attempt"] == "99999999999999999999"
    assert event["key"] == "k-\\udcff"
    assert event["event"] == "odd values"


def test_console_output_is_one_readable_line_per_event() -> None:
    out = io.StringIO()
    assert configure_logging("console", "DEBUG", stream=out) == "console"
    structlog.get_logger("kep.consumers.runtime").debug("committed", topic="orders", offset=7)
    logging.getLogger("thirdparty").warning("from stdlib")
    first, second = out.getvalue().splitlines()
    assert "[debug" in first and "committed" in first and "topic=orders" in first and "offset=7" in first
    assert "[kep.consumers.runtime]" in first
    assert "\x1b[" not in first  # no colour codes when the stream is not a terminal
    assert "[warning" in second and "from stdlib" in second and "[thirdparty]" in second


def test_auto_picks_console_on_a_terminal_and_json_otherwise() -> None:
    assert configure_logging("auto", "INFO", stream=TtyBuffer()) == "console"
    out = io.StringIO()
    assert configure_logging("auto", "INFO", stream=out) == "json"
    structlog.get_logger("kep").info("x")
    assert lines(out)[0]["event"] == "x"


def test_configuring_twice_keeps_one_stdlib_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "INFO", stream=first)
    configure_logging("json", "INFO", stream=second)
    logging.getLogger("thirdparty").warning("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1


@pytest.mark.parametrize(
    ("fmt", "level", "message"),
    [
        ("xml", "INFO", "log format 'xml' is not one of auto, console, json"),
        ("json", "LOUD", "log level 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_unknown_formats_and_levels_are_named_in_the_error(fmt: str, level: str, message: str) -> None:
    with pytest.raises(LoggingConfigError, match=message):
        configure_logging(fmt, level, stream=io.StringIO())


def test_the_default_stream_is_the_standard_error_of_the_moment_of_writing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configured_under = io.StringIO()
    monkeypatch.setattr(sys, "stderr", configured_under)
    configure_logging("json", "INFO")
    configured_under.close()  # what a CLI runner does with its stderr once the command returned
    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    structlog.get_logger("kep").warning("from structlog")
    logging.getLogger("thirdparty").warning("from stdlib")
    assert [(e["logger"], e["event"]) for e in lines(now)] == [
        ("kep", "from structlog"),
        ("thirdparty", "from stdlib"),
    ]


def test_library_logs_after_an_in_process_cli_run_still_reach_standard_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = CliRunner().invoke(app, ["schemas", "ls"], env={"KEP_LOG_FORMAT": "json"})
    assert result.exit_code == 0, result.output
    structlog.get_logger("kep").warning("after the command")
    assert lines(io.StringIO(capsys.readouterr().err))[-1]["event"] == "after the command"
