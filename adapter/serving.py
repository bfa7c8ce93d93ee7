"""How `adapter run` serves its API: the listening socket bound before anything says it listens,
uvicorn logging through the process's own handler (so `--log-format json` covers its lines too),
and no access-log line for the requests a monitoring system repeats forever.

A port in use is one line, `cannot listen on HOST:PORT: address already in use`, raised as
AdapterError before the adapter prints its URL; uvicorn then serves the socket it is given."""

from __future__ import annotations

import errno
import logging
import socket
from typing import TYPE_CHECKING

from adapter.errors import AdapterError

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

# Scrapes and probes: every 15 s from Prometheus and every 10 s from the kubelet, forever.
QUIET_PATHS = frozenset({"/metrics", "/healthz"})


class RoutineRequestFilter(logging.Filter):
    """Drops uvicorn's access line for a successful GET of a QUIET_PATHS path unless the access
    logger is at DEBUG; failures (status >= 400) and every other request keep their line."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's access record: (client, method, path with query, HTTP version, status).
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        _, method, path, _, status = args
        routine = (
            method == "GET"
            and str(path).split("?", 1)[0] in QUIET_PATHS
            and isinstance(status, int)
            and status < 400
        )
        return not routine or logging.getLogger("uvicorn.access").isEnabledFor(logging.DEBUG)


def listen(host: str, port: int) -> socket.socket:
    """The bound, listening socket for the API; AdapterError in one line when it cannot be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise AdapterError(f"--host {host}: cannot resolve it: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = (
            "address already in use (choose another --port)"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror
        )
        raise AdapterError(f"cannot listen on {host}:{port}: {why}") from exc
    sock.set_inheritable(True)
    return sock


def server(app: FastAPI, log_level: str, graceful_shutdown_s: float) -> uvicorn.Server:
    """One uvicorn worker whose loggers propagate to the root handler (configured by the CLI);
    requests still in flight at shutdown get `graceful_shutdown_s`, then are cut."""
    import uvicorn

    logging.getLogger("uvicorn.access").addFilter(RoutineRequestFilter())
    return uvicorn.Server(
        uvicorn.Config(
            app,
            workers=1,
            log_level=log_level.lower(),
            log_config=None,
            timeout_graceful_shutdown=round(graceful_shutdown_s),
        )
    )
