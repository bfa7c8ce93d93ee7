"""A FAKE of the few Kubernetes REST endpoints the Seldon actuator uses, for tests only.

No Kubernetes API server can run on these machines, so this serves, on loopback, exactly

    GET   /apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}
    PATCH /apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}
          (Content-Type: application/merge-patch+json, RFC 7386)

over an in-memory object store, and records every request, so tests can point the real
`kubernetes` client at it and assert the exact patch bodies sent. Like the API server it
answers 404 for unknown objects, 415 for other patch types, 409 when a patch carries a stale
metadata.resourceVersion, and bumps resourceVersion on every change. Nothing else is faked.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    content_type: str | None
    body: Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._version = 100

    @staticmethod
    def path(group: str, version: str, namespace: str, plural: str, name: str) -> str:
        return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}"

    def put(self, path: str, obj: dict[str, Any]) -> None:
        with self._lock:
            self._version += 1
            stored = copy.deepcopy(obj)
            stored.setdefault("metadata", {})["resourceVersion"] = str(self._version)
            self.objects[path] = stored

    def patches(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PATCH"]

    def handle(self, method: str, path: str, content_type: str | None, raw: bytes) -> tuple[int, Any]:
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(Recorded(method, path, content_type, body))
            if path not in self.objects:
                return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
            current = self.objects[path]
            if method == "GET":
                return 200, copy.deepcopy(current)
            if content_type != "application/merge-patch+json":
                return 415, {"kind": "Status", "reason": "UnsupportedMediaType", "code": 415}
            wanted_version = ((body or {}).get("metadata") or {}).get("resourceVersion")
            if wanted_version is not None and wanted_version != current["metadata"]["resourceVersion"]:
                return 409, {"kind": "Status", "reason": "Conflict", "code": 409}
            updated = merge_patch(current, body)
            if updated != current:
                self._version += 1
                updated["metadata"]["resourceVersion"] = str(self._version)
            self.objects[path] = updated
            return 200, copy.deepcopy(updated)


def _handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = fake.handle(method, self.path.split("?")[0], self.headers.get("Content-Type"), raw)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve_fake_kube() -> Iterator[tuple[FakeKube, client.CustomObjectsApi]]:
    """The fake on a free loopback port and a real CustomObjectsApi pointed at it."""
    fake = FakeKube()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    configuration = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    api_client = client.ApiClient(configuration)
    try:
        yield fake, client.CustomObjectsApi(api_client)
    finally:
        api_client.close()  # type: ignore[no-untyped-call]
        server.shutdown()
        server.server_close()
        thread.join()
