"""Apache Kafka for the test suite, without Docker: the broker's jars from Maven Central, one KRaft node.

``pom.xml`` beside this file pins the version and a logging backend. The jars are copied once into
``.kep/kafka-VERSION/lib`` (Maven's own cache keeps the downloads); each test run formats a fresh storage
directory, starts one combined broker + controller on free loopback ports and stops it at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
REPO = HERE.parents[2]
START_BUDGET_S = 90.0


def kafka_version() -> str:
    """The pinned broker version: ``<kafka.version>`` of ``pom.xml``."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    assert match, f"{POM}: no <kafka.version>"
    return match.group(1)


def cache_dir() -> Path:
    return Path(os.environ.get("KEP_CACHE_DIR", REPO / ".kep"))


def java_available() -> bool:
    return shutil.which("java") is not None


def can_run() -> bool:
    """Java is there, and the jars are cached or Maven can fetch them."""
    return java_available() and (
        _lib(kafka_version()).joinpath(".complete").exists() or bool(shutil.which("mvn"))
    )


def _lib(version: str) -> Path:
    return cache_dir() / f"kafka-{version}" / "lib"


def fetch_jars(version: str | None = None) -> Path:
    """The broker's runtime jars in the cache, fetched with Maven when missing. Safe to call concurrently."""
    version = version or kafka_version()
    lib = _lib(version)
    done = lib / ".complete"
    if done.exists():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with open(lib.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return lib
        shutil.rmtree(lib, ignore_errors=True)
        proc = subprocess.run(
            ["mvn", "-B", "-q", "-f", str(POM), f"-Dkafka.version={version}",
             "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={lib}"],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if proc.returncode != 0 or not list(lib.glob("kafka_2.13-*.jar")):
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise RuntimeError(
                f"fetching Apache Kafka {version} with Maven failed ({proc.returncode}):\n{tail}"
            )
        done.touch()
    return lib


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_properties(data: Path, port: int, controller_port: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        # KIP-848 groups join and fail over at test speed (the broker's defaults are 45 s / 5 s).
        "group.consumer.min.session.timeout.ms": "6000",
        "group.consumer.session.timeout.ms": "6000",
        "group.consumer.min.heartbeat.interval.ms": "500",
        "group.consumer.heartbeat.interval.ms": "1000",
        # Retention and compaction tests see segments deleted and cleaned within seconds.
        "log.retention.check.interval.ms": "1000",
        "log.cleaner.backoff.ms": "1000",
        "log.segment.delete.delay.ms": "0",
        "log.initial.task.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


@dataclass(frozen=True)
class RunningKafka:
    bootstrap_servers: str
    version: str
    log: Path

    def describe(self) -> str:
        return f"Apache Kafka {self.version} (KRaft) at {self.bootstrap_servers}"


def _java(lib: Path, workdir: Path, *args: str) -> list[str]:
    return [
        "java", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}", "-cp", f"{lib}/*", *args,
    ]  # fmt: skip


def _wait_until_serving(proc: subprocess.Popen[bytes], bootstrap: str, log: Path) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})  # quiet while it is not up yet
    deadline = time.monotonic() + START_BUDGET_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"Apache Kafka exited ({proc.returncode}) while starting:\n{log.read_text()[-3000:]}"
            )
        try:
            admin.list_topics(timeout=2)
            return
        except Exception:  # noqa: BLE001 - not serving yet
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:]
                raise RuntimeError(
                    f"Apache Kafka did not answer at {bootstrap} in {START_BUDGET_S:.0f}s:\n{tail}"
                ) from None


@contextlib.contextmanager
def apache_kafka(version: str | None = None) -> Iterator[RunningKafka]:
    """A fresh single-node Apache Kafka (KRaft) on free loopback ports, stopped and removed on exit."""
    version = version or kafka_version()
    lib = fetch_jars(version)
    workdir = Path(tempfile.mkdtemp(prefix="kep-kafka-"))
    port, controller_port = _free_port(), _free_port()
    bootstrap = f"127.0.0.1:{port}"
    properties = workdir / "server.properties"
    properties.write_text(_server_properties(workdir / "data", port, controller_port))
    (workdir / "log4j2.properties").write_text(_LOG4J2)
    log = workdir / "kafka.log"
    cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    # "=": an id that starts with "-" (1 in 64 of them) must not read as an option
    format_args = ("format", "--standalone", f"--cluster-id={cluster_id}", "-c", str(properties))
    formatted = subprocess.run(
        _java(lib, workdir, "kafka.tools.StorageTool", *format_args),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if formatted.returncode != 0:
        raise RuntimeError(f"formatting Apache Kafka's storage failed:\n{formatted.stdout}{formatted.stderr}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            _java(lib, workdir, "kafka.Kafka", str(properties)), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_until_serving(proc, bootstrap, log)
        yield RunningKafka(bootstrap, version, log)
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # a controlled shutdown
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
