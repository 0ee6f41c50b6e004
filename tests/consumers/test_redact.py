"""Secrets never leave the process: exception messages, tracebacks, dead-letter headers, logs, CLI errors."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from kep.consumers import redact
from kep.consumers.retry.headers import Provenance
from kep.logs import configure_logging

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "connect postgresql://app:s3cr3t-pw@db:5432/x failed",
            "connect postgresql://app:***@db:5432/x failed",
        ),
        ("redis://:hunter2pass@cache:6379/0 reset", "redis://:***@cache:6379/0 reset"),
        ("dsn 'host=db user=app password=pa55word dbname=x'", "dsn 'host=db user=app password=*** dbname=x'"),
        ('{"sasl.password": "abc123xyz", "n": 1}', '{"sasl.password": "***", "n": 1}'),
        ("PASSWORD: letmein", "PASSWORD: ***"),
        ("client_secret=zzz999 and api_key=k-123456", "client_secret=*** and api_key=***"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "Authorization: Bearer ***"),
        ("password authentication failed for user app", "password authentication failed for user app"),
        ("http://example.com/a:b@c is a path", "http://example.com/a:b@c is a path"),
        ("no secrets here: key=value, token count 3", "no secrets here: key=value, token count 3"),
    ],
)
def test_scrub_masks_secret_shapes_and_leaves_the_rest(text: str, shown: str) -> None:
    assert redact.scrub(text) == shown


def test_registered_values_are_masked_anywhere() -> None:
    redact.register("Zq8-unguessable-9Lm", "ab")  # too short to mask: ignored
    redact.register_url("postgresql://svc:p%40ss-Word9@db/x")
    assert redact.scrub("value Zq8-unguessable-9Lm leaked, ab stays") == "value *** leaked, ab stays"
    assert redact.scrub("decoded p@ss-Word9 too") == "decoded *** too"
    redact.register_config({"sasl.password": "kafka-Pw-771", "bootstrap.servers": "b:9092"})
    assert redact.scrub("auth with kafka-Pw-771 at b:9092") == "auth with *** at b:9092"


def test_dead_letter_headers_carry_no_secret() -> None:
    def connect() -> None:
        dsn = "postgresql://app:tb-S3cret@db/x"  # the source line of the frame shows it too
        raise ConnectionError(f"cannot reach {dsn}: password=tb-S3cret rejected")

    try:
        connect()
    except ConnectionError as exc:
        provenance = Provenance.first_failure(
            topic="t", partition=0, offset=0, timestamp_ms=0, consumer_group="g", exc=exc, now_ms=1
        )
    headers = b"".join(value or b"" for _, value in provenance.to_headers())
    assert b"tb-S3cret" not in headers
    assert "postgresql://app:***@db/x" in provenance.exception_message
    assert "postgresql://app:***@db/x" in provenance.exception_traceback


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level, config = list(root.handlers), root.level, structlog.get_config()
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    yield out
    structlog.configure(**config)
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_log_lines_carry_no_secret(json_lines: io.StringIO) -> None:
    log = structlog.get_logger("kep.test")
    log.warning("store unavailable", error="connection to redis://:r3dis-Pw@cache failed")
    try:
        raise RuntimeError("login password=pg-Pw-42 refused")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("psycopg").error("dsn password=lib-Pw-7 bad")
    text = json_lines.getvalue()
    assert "r3dis-Pw" not in text and "pg-Pw-42" not in text and "lib-Pw-7" not in text
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert lines[0]["error"] == "connection to redis://:***@cache failed"
    assert len(lines) == 3


def test_cli_errors_carry_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from kep.cli._common import fail

    with pytest.raises(typer.Exit):
        fail("cannot open postgresql://u:cli-Pw-99@h/db [/] \x1b[2J")
    assert capsys.readouterr().err == "error: cannot open postgresql://u:***@h/db [/] \\x1b[2J\n"


def test_a_text_scrubbed_before_is_masked_again_once_a_secret_is_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redact, "_registered", ())
    monkeypatch.setattr(redact, "_recent", {})
    text = "connect failed: handshake with hunter2-xyz refused"
    assert redact.scrub(text) == text
    assert redact.scrub(text) == text  # from the recent texts
    redact.register("hunter2-xyz")
    assert redact.scrub(text) == "connect failed: handshake with *** refused"
