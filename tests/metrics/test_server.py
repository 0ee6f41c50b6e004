"""MetricsServer over real HTTP: /metrics, /healthz, /readyz, extra routes, errors."""

from __future__ import annotations

import gzip
import http.client
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from kep.consumers.metrics import (
    Health,
    MetricsServer,
    MetricsServerError,
    PartitionState,
    RouteHandler,
    WorkerMetrics,
)
from tests.metrics.support import StaticSource
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def get(
    server: MetricsServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> Health:
    return Health(ttl_s=10, clock=clock)


@pytest.fixture
def metrics() -> WorkerMetrics:
    metrics = WorkerMetrics("billing", registry=CollectorRegistry())
    metrics.bind(
        StaticSource([PartitionState("orders", 0, committed=5, processed=7, log_end=9, paused=False)])
    )
    return metrics


@pytest.fixture
def server(metrics: WorkerMetrics, health: Health) -> Iterator[MetricsServer]:
    def broken(path: str) -> tuple[int, bytes, str]:
        raise RuntimeError(f"cannot answer {path}")

    routes: dict[str, RouteHandler] = {
        "/groups": lambda path: (200, f"groups at {path}".encode(), "text/plain"),
        "/groups/broken": broken,
    }
    with MetricsServer(metrics.registry, health, port=0, host="127.0.0.1", routes=routes) as running:
        yield running


def test_port_zero_binds_a_free_port(server: MetricsServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_metrics_serves_the_registry_in_the_prometheus_text_format(
    server: MetricsServer, metrics: WorkerMetrics
) -> None:
    metrics.handled("orders", 0.01)
    status, body, headers = get(server, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=")
    text = body.decode()
    assert 'kep_messages_processed_total{group="billing",topic="orders"} 1.0' in text
    assert 'kep_consumer_lag_messages{group="billing",partition="0",topic="orders"} 4.0' in text


def test_metrics_speaks_openmetrics_and_gzip_when_asked(server: MetricsServer) -> None:
    status, body, headers = get(
        server,
        "/metrics",
        {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
    )
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body).decode().rstrip().endswith("# EOF")


def test_healthz_is_200_while_the_poll_loop_beats_and_503_when_it_stops(
    server: MetricsServer, health: Health, clock: Clock
) -> None:
    status, body, _ = get(server, "/healthz")
    assert (status, body) == (200, b"ok: poll loop beat 0.0s ago\n")
    clock.now = 11
    status, body, _ = get(server, "/healthz")
    assert (status, body) == (503, b"unavailable: poll loop silent for 11.0s (ttl 10s)\n")
    health.beat()
    assert get(server, "/healthz")[0] == 200


def test_readyz_follows_connection_assignment_and_rebalances(server: MetricsServer, health: Health) -> None:
    assert get(server, "/readyz")[:2] == (503, b"unavailable: not connected to the cluster\n")
    health.connected(True)
    health.assigned(2)
    assert get(server, "/readyz")[:2] == (200, b"ok: 2 partitions assigned\n")
    health.rebalancing(True)
    assert get(server, "/readyz")[:2] == (503, b"unavailable: rebalancing\n")


def test_extra_routes_match_their_prefix_and_get_the_raw_path(server: MetricsServer) -> None:
    assert get(server, "/groups")[:2] == (200, b"groups at /groups")
    assert get(server, "/groups/billing?x=1")[:2] == (200, b"groups at /groups/billing?x=1")
    assert get(server, "/groupsx")[0] == 404


def test_a_failing_route_answers_500_and_the_server_keeps_serving(server: MetricsServer) -> None:
    assert get(server, "/groups/broken")[:2] == (500, b"internal error\n")
    assert get(server, "/healthz")[0] == 200


def test_unknown_paths_are_404_and_the_root_lists_the_endpoints(server: MetricsServer) -> None:
    assert get(server, "/nope")[:2] == (404, b"not found: /nope\n")
    status, body, _ = get(server, "/")
    assert status == 200
    assert body.decode().split() == ["/metrics", "/groups", "/groups/broken", "/healthz", "/readyz"]


def test_a_taken_port_is_a_clear_error_naming_host_and_port(health: Health) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsServerError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            MetricsServer(CollectorRegistry(), health, port=port, host="127.0.0.1").start()


def test_stop_releases_the_port(health: Health) -> None:
    server = MetricsServer(CollectorRegistry(), health, port=0, host="127.0.0.1").start()
    port = server.port
    server.stop()
    server.stop()  # idempotent
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_a_connection_that_sends_nothing_is_closed_after_the_timeout(
    health: Health, metrics: WorkerMetrics
) -> None:
    with MetricsServer(metrics.registry, health, port=0, host="127.0.0.1", timeout_s=0.3) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
            idle.sendall(b"GET /hea")  # and never the rest
            assert idle.recv(1024) == b""  # the server hung up on us (the test's own timeout is 10 s)
        assert get(server, "/healthz")[0] in (200, 503)


def test_requests_past_the_thread_cap_get_503_at_once(health: Health, metrics: WorkerMetrics) -> None:
    with MetricsServer(
        metrics.registry, health, port=0, host="127.0.0.1", timeout_s=5, max_threads=2
    ) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
        try:
            for sock in idle:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # headers never finished: each holds a thread
            status, body, _ = get(server, "/metrics")
            assert (status, body) == (503, b"busy\n")
        finally:
            for sock in idle:
                sock.close()

        def served() -> bool:
            return get(server, "/metrics")[0] == 200

        wait_until(served, timeout=10, message="served again once the slots are free")


def test_the_bind_address_is_an_option(health: Health, metrics: WorkerMetrics) -> None:
    with MetricsServer(metrics.registry, health, port=0, host="127.0.0.1") as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert get(server, "/healthz")[0] in (200, 503)
    from kep.consumers.settings import load_settings

    settings, _ = load_settings(metrics_host="127.0.0.1")
    assert settings.metrics_host == "127.0.0.1"
