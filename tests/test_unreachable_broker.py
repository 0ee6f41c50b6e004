"""A cluster that is not there: every command fails in seconds with one line naming the address.

Two kinds of dead address: a port where nothing listens (connection refused at once) and a port that accepts
TCP connections and never answers (only a deadline ends the wait). librdkafka's own lines go through kep's
logging, rate-limited, instead of hundreds of raw lines on standard error.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaError, Producer

from kep.topology import ClusterUnreachableError, KafkaSettings, require_cluster
from kep.topology._librdkafka_log import RateLimitFilter
from tests.support.processes import ROOT
from tests.support.shop import SHOP_TOPOLOGY
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit

COMMANDS = {
    "produce": ["produce", "orders", "--count", "5"],
    "topology plan": ["topology", "plan"],
    "topology apply": ["topology", "apply"],
    "lag": ["lag"],
    "dlq ls": ["dlq", "ls"],
    "dlq show": ["dlq", "show", "orders.billing.dlq"],
    "dlq replay": ["dlq", "replay", "orders.billing.dlq"],
    "run": ["run", "shop.billing:app", "--metrics-port", "0"],
}
BOUND_S = 30.0


@pytest.fixture
def refused() -> Iterator[str]:
    """An address where nothing listens: the port is bound (so nobody else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def silent() -> Iterator[str]:
    """An address that accepts TCP connections (the kernel's backlog) and never answers a request."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class Outcome:
    code: int
    seconds: float
    stdout: str
    stderr: str


def _run(argv: list[str], address: str) -> Outcome:
    """One command as the user would run it; killed ``BOUND_S`` + 30 s after it started."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEP_")}
    env["COLUMNS"] = "400"
    env["KEP_TOPOLOGY"] = str(SHOP_TOPOLOGY)  # the shop example's, found on PYTHONPATH (tests/conftest.py)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kep.cli.main", *argv, "-b", address],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=BOUND_S + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return Outcome(proc.returncode, time.monotonic() - start, out, err)


def _run_all(commands: dict[str, list[str]], address: str) -> dict[str, Outcome]:
    """Two at a time: the machine has two cores, more at once would measure the wait for a CPU, not kep."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, argv, address) for name, argv in commands.items()}
        return {name: future.result() for name, future in futures.items()}


def _check(outcomes: dict[str, Outcome], address: str, reason: str) -> None:
    problems = []
    for name, o in outcomes.items():
        lines = [line for line in o.stderr.splitlines() if line.strip()]
        expected = f"error: cannot reach the Kafka cluster at {address}: "
        if o.code != 1 or o.seconds >= BOUND_S or len(lines) != 1 or not lines[0].startswith(expected):
            problems.append(f"kep {name}: exit {o.code} after {o.seconds:.1f}s, stderr {o.stderr[-1500:]!r}")
        elif reason not in lines[0] or o.stdout.strip():
            problems.append(f"kep {name}: {lines[0]!r}, stdout {o.stdout[-500:]!r}")
    assert problems == []


@pytest.mark.slow
def test_every_command_fails_in_seconds_with_one_line_when_nothing_listens(refused: str) -> None:
    _check(_run_all(COMMANDS, refused), refused, "Connection refused")


@pytest.mark.slow
def test_commands_give_up_on_a_port_that_never_answers(silent: str) -> None:
    chosen = {name: COMMANDS[name] for name in ("produce", "topology plan", "lag", "run")}
    _check(_run_all(chosen, silent), silent, "no answer within 10s")


def test_require_cluster_names_the_address_and_librdkafka_reason(refused: str, silent: str) -> None:
    with pytest.raises(ClusterUnreachableError, match=f"at {refused}: .*Connection refused") as info:
        require_cluster(KafkaSettings(bootstrap_servers=refused))
    assert info.value.name == "_ALL_BROKERS_DOWN"
    start = time.monotonic()
    with pytest.raises(ClusterUnreachableError, match=f"at {silent}: no answer within 1.5s"):
        require_cluster(KafkaSettings(bootstrap_servers=silent, connect_timeout_s=1.5))
    assert time.monotonic() - start < 10


def test_librdkafka_lines_go_through_kep_logging_rate_limited(refused: str) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("kep.librdkafka")
    logger.addHandler(handler)
    failures: list[KafkaError] = []
    try:
        conf = KafkaSettings(
            bootstrap_servers=refused, librdkafka={"reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 50}
        )
        producer = Producer({**conf.as_librdkafka_dict(), "error_cb": failures.append})
        # librdkafka retries the connection every 50 ms; each failure is a log line and an error_cb call
        wait_until(
            lambda: producer.poll(0.05) is not None and len(failures) >= 10,
            timeout=30,
            message="ten failed connection attempts",
        )
    finally:
        logger.removeHandler(handler)
    connect_lines = [r for r in records if "Connection refused" in r.getMessage()]
    assert len(failures) >= 10 and 1 <= len(connect_lines) <= 2, [r.getMessage() for r in records]
    assert all(r.name == "kep.librdkafka" for r in records)


def test_the_rate_limit_tells_how_many_lines_it_held_back() -> None:
    now = [0.0]
    limit = RateLimitFilter(window_s=60, clock=lambda: now[0])

    def record(text: str) -> logging.LogRecord:
        return logging.LogRecord(
            "kep.librdkafka", logging.ERROR, "", 0, "%s [%s] %s", ("FAIL", "c#1", text), None
        )

    assert limit.filter(record("connect failed (after 1ms)"))
    assert not any(limit.filter(record(f"connect failed (after {n}ms)")) for n in range(5))
    assert limit.filter(record("another line"))  # another text is another key
    now[0] = 61.0
    last = record("connect failed (after 9ms)")
    assert limit.filter(last)
    assert last.getMessage().endswith("(and 5 more like it in 61s)")


@pytest.mark.integration
def test_require_cluster_returns_at_once_when_the_cluster_answers(kafka: str) -> None:
    start = time.monotonic()
    require_cluster(KafkaSettings(bootstrap_servers=kafka))
    assert time.monotonic() - start < 5
