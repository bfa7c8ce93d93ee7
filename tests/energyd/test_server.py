"""The metrics server against real sockets on 127.0.0.1: slow, half-open and greedy clients."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from energyd.exporter import Exposition
from energyd.server import REFUSAL, MetricsServer, serve
from tests.energyd.test_exporter import SNAP, many_pods

TIMEOUT_S = 1.0


@contextmanager
def running(max_connections: int = 8, pods: int = 0) -> Iterator[MetricsServer]:
    snap = many_pods(pods, zones=4, node_total_zones=4) if pods else SNAP
    exposition = Exposition(lambda: snap)
    server = serve(exposition, "127.0.0.1", 0, TIMEOUT_S, max_connections)
    exposition.register(server.collector())
    try:
        yield server
    finally:
        server.close()


def connect(server: MetricsServer, first_bytes: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def scrape(server: MetricsServer) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as resp:
        body: bytes = resp.read()
        return body


def scrape_rendered(server: MetricsServer) -> list[str]:
    """/metrics after a render (as the next sampling pass makes)."""
    server.exposition.refresh()
    return scrape(server).decode().splitlines()


def seconds_until_closed(sock: socket.socket, limit_s: float = 10.0) -> float:
    """Reads (and drops) whatever the server sends until it closes the connection."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(65536):
            if time.monotonic() - started > limit_s:
                raise AssertionError("still open")
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def wait_for(condition: object, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_slow_clients_cost_no_thread_and_do_not_block_a_scrape() -> None:
    with running(max_connections=64) as server, ExitStack() as stack:
        threads = threading.active_count()
        # 40 clients: half send an unfinished request head, half connect and say nothing.
        slow = [
            stack.enter_context(connect(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" if i % 2 else b""))
            for i in range(40)
        ]
        wait_for(lambda: server.open_connections == 40)
        assert threading.active_count() <= threads  # none started (another test's may have ended)
        assert b"energyd_pods 1.0" in scrape(server)  # answered while the 40 wait
        # Each is closed at its deadline, not left to hold the connection.
        assert all(seconds_until_closed(sock) < TIMEOUT_S + 3 for sock in slow)
        wait_for(lambda: server.open_connections == 0)
        assert server.timed_out == 40


def test_connections_past_the_cap_are_refused_at_once_then_served_again() -> None:
    with running(max_connections=4) as server, ExitStack() as stack:
        for _ in range(4):
            stack.enter_context(connect(server))
        wait_for(lambda: server.open_connections == 4)
        extra = stack.enter_context(connect(server, b"GET /metrics HTTP/1.1\r\n\r\n"))
        extra.settimeout(5)
        assert extra.recv(1024) == REFUSAL
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(server)
        refused.value.close()  # its response holds the connection's file
        assert refused.value.code == 503
        assert server.refused == 2
        # The four time out; their slots are free again.
        wait_for(lambda: server.open_connections == 0)
        assert server.timed_out == 4
        served_after = scrape(server)
        assert b"energyd_pods 1.0" in served_after
        # On /metrics from the next render (the next sampling pass) on.
        assert b"energyd_http_" not in served_after
        wait_for(lambda: server.open_connections == 0)  # that scrape's close may trail its body
        server_metrics = [line for line in scrape_rendered(server) if line.startswith("energyd_http_")]
        assert server_metrics == [
            "energyd_http_refused_connections_total 2.0",
            "energyd_http_timed_out_connections_total 4.0",
            "energyd_http_open_connections 0.0",
        ]


def test_a_client_trickling_its_request_is_cut_off_at_the_deadline() -> None:
    with running() as server, connect(server) as sock:
        started = time.monotonic()
        sent = 0
        # One byte every 0.1 s: each read is quick, the whole request never ends (at most 50).
        try:
            for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 48:
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed_after_s = time.monotonic() - started + seconds_until_closed(sock)
        assert sent < 50
        assert TIMEOUT_S <= closed_after_s < TIMEOUT_S + 3
        assert server.timed_out == 1


def test_a_client_that_never_reads_the_response_is_dropped() -> None:
    # 8,000 pods: a body (~8 MB) larger than the socket buffers (4 MiB at most for the
    # server's, here), so the send must wait on the client.
    with running(pods=8000) as server, socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.server_port))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\n\r\n")
        wait_for(lambda: server.timed_out == 1 and server.open_connections == 0, limit_s=TIMEOUT_S + 5)
        assert len(server_body := scrape(server)) > 4 * 2**20
        assert b"energyd_pods 8000.0" in server_body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /other HTTP/1.1\r\n\r\n", b"404"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"nonsense\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n", b"431"),
    ],
)
def test_bad_requests_get_an_error_and_are_closed(request_bytes: bytes, status: bytes) -> None:
    with running() as server, connect(server, request_bytes) as sock:
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.split(b" ", 2)[1] == status
        assert b"Connection: close" in answer


def test_head_sends_the_headers_only() -> None:
    with running() as server, connect(server, b"HEAD /metrics HTTP/1.1\r\n\r\n") as sock:
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b""
    assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) > 1000


@pytest.mark.parametrize(("timeout_s", "cap"), [(0.0, 8), (301.0, 8), (1.0, 0), (1.0, 1025)])
def test_limits_are_validated(timeout_s: float, cap: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        MetricsServer("127.0.0.1", 0, Exposition(lambda: None), timeout_s, cap)
