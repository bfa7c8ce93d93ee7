"""energyd's HTTP server: GET /metrics from the cached exposition, in one thread, bounded in time.

The standard library's threading server (which prometheus_client's start_http_server uses)
starts a thread per connection and waits forever for a request that never completes: 400 slow
sockets were 400 threads. Here one thread runs an asyncio loop for every connection, so a slow
or half-open client costs a few KiB, not a thread, and a scrape is answered while slow clients
wait. Bounds: at most `max_connections` open at once (more are answered 503 and closed); a
request head of at most MAX_HEAD_BYTES; each connection closed `timeout_s` after it was
accepted, whatever it is doing (a deadline over the whole exchange, not each read, so a client
trickling a byte at a time is cut off too); the response is sent in chunks so that a client
that does not read holds at most a chunk of buffer. One request per connection (Connection:
close), so an idle keep-alive connection never holds a slot.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from energyd import __version__
from energyd.exporter import CONTENT_TYPE, Exposition

log = logging.getLogger(__name__)

MAX_CONNECTIONS_LIMIT = 1024
MAX_TIMEOUT_S = 300.0
MAX_HEAD_BYTES = 8192  # request line and headers: a scraper sends a few hundred bytes
CHUNK_BYTES = 65536
PATHS = ("/metrics", "/")


def _response(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Server: energyd/{__version__}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    if "Content-Length" not in headers:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


REFUSAL = _response("503 Service Unavailable", {"Retry-After": "1"})


def _accepts_gzip(accept_encoding: str) -> bool:
    """True when the Accept-Encoding header lists gzip (or *) without q=0."""
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if coding.lower() in ("gzip", "*"):
            q = next((p.split("=", 1)[1] for p in params if p.lower().startswith("q=")), "1")
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


class MetricsServer:
    """Serves `exposition` on host:port from a thread of its own; see the module's docstring.
    Binds in the constructor (an OSError says why it cannot); start() begins serving."""

    def __init__(
        self, host: str, port: int, exposition: Exposition, timeout_s: float, max_connections: int
    ) -> None:
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}], got {timeout_s}")
        if not 1 <= max_connections <= MAX_CONNECTIONS_LIMIT:
            raise ValueError(f"max_connections must be 1..{MAX_CONNECTIONS_LIMIT}, got {max_connections}")
        self.exposition = exposition
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self.open_connections = 0
        self.refused = 0  # connections answered 503 because max_connections were open
        self.timed_out = 0  # connections closed at their deadline
        # An IPv6 host ("::") needs an AF_INET6 socket.
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=128)
        self.server_port: int = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD_BYTES)
            )
        except BaseException:
            sock.close()
            self._loop.close()
            raise
        self._thread = threading.Thread(target=self._loop.run_forever, name="metrics-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def collector(self) -> Collector:
        """The server's counters as metrics, for energyd's registry."""
        return _ServerCollector(self)

    def close(self) -> None:
        """Stops serving and closes the listening socket and every open connection."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._server.close()
        handlers = asyncio.all_tasks(self._loop)
        for task in handlers:
            task.cancel()
        # The cancelled handlers abort their connections; one more pass runs the transports'
        # connection_lost callbacks, so that none is left open when the loop closes.
        self._loop.run_until_complete(_settle(handlers))
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self._max_connections:
            self.refused += 1
            writer.transport.write(REFUSAL)  # fits the socket buffer: never waits on the client
            writer.transport.close()
            return
        self.open_connections += 1
        sent = False
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._exchange(reader, writer)
                writer.close()
                await writer.wait_closed()  # the whole response left, not just the first chunks
                sent = True
        except TimeoutError:
            self.timed_out += 1
            log.debug("closed a connection after %.3g s", self._timeout_s)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            self.open_connections -= 1
            if not sent:
                writer.transport.abort()  # drop what a client that stopped reading left unsent

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            writer.write(_response("431 Request Header Fields Too Large", {}))
            await writer.drain()
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            response = _response("400 Bad Request", {})
        elif parts[0] not in ("GET", "HEAD"):
            response = _response("405 Method Not Allowed", {"Allow": "GET, HEAD"})
        elif parts[1].split("?", 1)[0] not in PATHS:
            response = _response(
                "404 Not Found", {"Content-Type": "text/plain"}, b"energyd serves /metrics\n"
            )
        else:
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            gzipped = _accepts_gzip(headers.get("accept-encoding", ""))
            body = self.exposition.body(gzipped)
            fields = {
                "Content-Type": CONTENT_TYPE,
                "Content-Length": str(len(body)),
                "Vary": "Accept-Encoding",
            }
            if gzipped:
                fields["Content-Encoding"] = "gzip"
            response = _response("200 OK", fields, body if parts[0] == "GET" else b"")
        view = memoryview(response)
        for start in range(0, len(view), CHUNK_BYTES):
            writer.write(view[start : start + CHUNK_BYTES])
            await writer.drain()


class _ServerCollector(Collector):
    def __init__(self, server: MetricsServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "energyd_http_refused_connections",
            "Connections answered 503 because --http-max-connections were open.",
            value=self._server.refused,
        )
        yield CounterMetricFamily(
            "energyd_http_timed_out_connections",
            "Connections closed at --http-timeout (slow, half-open or not reading clients).",
            value=self._server.timed_out,
        )
        yield GaugeMetricFamily(
            "energyd_http_open_connections",
            "Connections open on /metrics.",
            value=self._server.open_connections,
        )


async def _settle(tasks: set[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)


def serve(
    exposition: Exposition, host: str, port: int, timeout_s: float, max_connections: int
) -> MetricsServer:
    server = MetricsServer(host, port, exposition, timeout_s, max_connections)
    server.start()
    return server
