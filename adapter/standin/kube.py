"""A STAND-IN for the few Kubernetes REST endpoints `make run` needs; not a real API server.

No Kubernetes API server can run on these machines, so the local stack's clients (the adapter's
SeldonActuator and energyd's pod-name lookup, both the real `kubernetes` client) talk to this:

    GET   /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}    a custom object
    PATCH /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}    JSON merge patch (RFC 7386)
    GET   /api/v1/pods[?fieldSelector=spec.nodeName=N]               PodList
    GET   /api/v1/pods?watch=true&resourceVersion=V[&timeoutSeconds=T]  chunked watch events
    POST  /api/v1/namespaces/{ns}/events                              record an Event (core v1)
    GET   /api/v1/namespaces/{ns}/events                              EventList

Like the API server it answers 404 for unknown objects, 415 for other patch types, 409 when a
patch carries a stale metadata.resourceVersion, bumps one resourceVersion counter on every
change, and streams pod events newer than the watch's resourceVersion (it keeps the latest
1000, as etcd compacts; a watch from before them gets a 410 Gone ERROR event, so the client lists
again). Nothing else exists: no authentication, no other resources, no field selectors but
spec.nodeName. Events are kept as posted (the latest 1000), with a name made from
metadata.generateName as the API server does. `on_patch` lets the owner react to a custom object's change (the stand-in applies it to the
simulated pipeline).
"""

from __future__ import annotations

import copy
import json
import logging
import secrets
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

PatchHook = Callable[[str, dict[str, Any]], None]


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


def _status(code: int, reason: str, message: str = "") -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code,
            "message": message}  # fmt: skip


class KubeStore:
    """Custom objects by path and pods by uid, with one resourceVersion counter for all."""

    def __init__(self, on_patch: PatchHook | None = None, max_events: int = 1000) -> None:
        self._objects: dict[str, dict[str, Any]] = {}
        self._pods: dict[str, dict[str, Any]] = {}
        # (version, type, pod), the latest only, as etcd compacts: a long run must not grow.
        self._events: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=max_events)
        self._compacted = 0  # the newest version dropped from _events
        self._version = 1
        self._changed = threading.Condition()
        self._on_patch = on_patch
        self._kube_events: deque[dict[str, Any]] = deque(maxlen=max_events)

    @staticmethod
    def object_path(group: str, version: str, namespace: str, plural: str, name: str) -> str:
        return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}"

    def _bump(self) -> str:
        self._version += 1
        return str(self._version)

    def put_object(self, path: str, obj: dict[str, Any]) -> None:
        with self._changed:
            stored = copy.deepcopy(obj)
            stored.setdefault("metadata", {})["resourceVersion"] = self._bump()
            self._objects[path] = stored

    def get_object(self, path: str) -> dict[str, Any] | None:
        with self._changed:
            found = self._objects.get(path)
            return copy.deepcopy(found) if found is not None else None

    def patch_object(self, path: str, content_type: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        with self._changed:
            current = self._objects.get(path)
            if current is None:
                return 404, _status(404, "NotFound", path)
            if content_type != "application/merge-patch+json":
                return 415, _status(415, "UnsupportedMediaType", f"{content_type} (only merge patches)")
            if not isinstance(body, dict):
                return 400, _status(400, "BadRequest", "a merge patch must be a JSON object")
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
                return 409, _status(409, "Conflict", f"resourceVersion {wanted} is stale")
            updated = merge_patch(current, body)
            if updated == current:
                return 200, copy.deepcopy(current)
            updated["metadata"]["resourceVersion"] = self._bump()
            self._objects[path] = updated
            result = copy.deepcopy(updated)
        if self._on_patch is not None:
            self._on_patch(path, result)
        return 200, result

    def create_event(self, namespace: str, body: Any) -> tuple[int, dict[str, Any]]:
        """Stores a core v1 Event as the API server would (201), naming it from generateName."""
        if not isinstance(body, dict) or not isinstance(body.get("involvedObject"), dict):
            return 422, _status(422, "Invalid", "an Event needs an involvedObject")
        with self._changed:
            event = copy.deepcopy(body)
            metadata = event.setdefault("metadata", {})
            if not metadata.get("name"):
                prefix = metadata.get("generateName")
                if not prefix:
                    return 422, _status(422, "Invalid", "metadata.name or metadata.generateName is required")
                metadata["name"] = prefix + secrets.token_hex(3)
            metadata["namespace"] = namespace
            metadata["resourceVersion"] = self._bump()
            self._kube_events.append(event)
            return 201, copy.deepcopy(event)

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The Events recorded (in `namespace`), oldest first."""
        with self._changed:
            return [
                copy.deepcopy(e)
                for e in self._kube_events
                if namespace is None or e["metadata"]["namespace"] == namespace
            ]

    def put_pod(self, pod: dict[str, Any]) -> None:
        """Adds or replaces a pod (by metadata.uid) and records the watch event."""
        with self._changed:
            stored = copy.deepcopy(pod)
            uid = stored["metadata"]["uid"]
            kind = "MODIFIED" if uid in self._pods else "ADDED"
            version = self._bump()
            stored["metadata"]["resourceVersion"] = version
            self._pods[uid] = stored
            self._record(int(version), kind, copy.deepcopy(stored))

    def delete_pod(self, uid: str) -> None:
        with self._changed:
            pod = self._pods.pop(uid)
            version = self._bump()
            pod["metadata"]["resourceVersion"] = version
            self._record(int(version), "DELETED", pod)

    def _record(self, version: int, kind: str, pod: dict[str, Any]) -> None:
        if len(self._events) == self._events.maxlen:
            self._compacted = self._events[0][0]
        self._events.append((version, kind, pod))
        self._changed.notify_all()

    def list_pods(self, node_name: str | None) -> dict[str, Any]:
        with self._changed:
            items = [
                copy.deepcopy(p)
                for p in self._pods.values()
                if node_name is None or p.get("spec", {}).get("nodeName") == node_name
            ]
            return {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": str(self._version)},
                    "items": items}  # fmt: skip

    def pod_events_after(
        self, version: int, timeout_s: float
    ) -> list[tuple[int, str, dict[str, Any]]] | None:
        """Events newer than `version`, waiting up to `timeout_s` for the first one; None when some
        of them were compacted away (the API server's 410 Gone: the watcher must list again)."""
        with self._changed:
            if version < self._compacted:
                return None
            self._changed.wait_for(lambda: self._version > version, timeout=timeout_s)
            return [e for e in self._events if e[0] > version]


def _node_selector(query: dict[str, list[str]]) -> str | None:
    for selector in query.get("fieldSelector", []):
        for term in selector.split(","):
            key, _, value = term.partition("=")
            if key == "spec.nodeName":
                return value
    return None


def _events_namespace(path: str) -> str | None:
    """The namespace of /api/v1/namespaces/{ns}/events, else None."""
    parts = path.strip("/").split("/")
    if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "events":
        return parts[3]
    return None


def _handler(store: KubeStore, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # watches stream chunked, which needs 1.1

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _watch(self, node: str | None, version: int, timeout_s: float) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            deadline = time.monotonic() + timeout_s
            self.close_connection = True
            try:
                # Short waits, so a stopping server ends its watches within a second.
                while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                    events = store.pod_events_after(version, min(left, 1.0))
                    if events is None:
                        gone = _status(410, "Expired", f"resourceVersion {version} is too old")
                        self._chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                        break
                    for event_version, kind, pod in events:
                        version = event_version
                        if node is None or pod.get("spec", {}).get("nodeName") == node:
                            self._chunk(json.dumps({"type": kind, "object": pod}).encode() + b"\n")
                self._chunk(b"")
            except ConnectionError:  # the watcher went away (energyd stopping): nothing to tell
                log.debug("watch from %s closed by the client", self.address_string())

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path == "/api/v1/pods":
                node = _node_selector(query)
                if query.get("watch", ["false"])[0].lower() in ("true", "1"):
                    version = int(query.get("resourceVersion", ["0"])[0] or 0)
                    self._watch(node, version, float(query.get("timeoutSeconds", ["300"])[0]))
                else:
                    self._send(200, store.list_pods(node))
                return
            namespace = _events_namespace(url.path)
            if namespace is not None:
                items = store.events(namespace)
                self._send(200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items})
                return
            found = store.get_object(url.path)
            if found is None:
                self._send(404, _status(404, "NotFound", url.path))
            else:
                self._send(200, found)

        def _json_body(self) -> tuple[bool, Any]:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                return True, json.loads(raw) if raw else None
            except ValueError:
                self._send(400, _status(400, "BadRequest", "the body is not JSON"))
                return False, None

        def do_PATCH(self) -> None:
            ok, body = self._json_body()
            if ok:
                path = urllib.parse.urlsplit(self.path).path
                self._send(*store.patch_object(path, self.headers.get("Content-Type"), body))

        def do_POST(self) -> None:
            ok, body = self._json_body()
            if not ok:
                return
            namespace = _events_namespace(urllib.parse.urlsplit(self.path).path)
            if namespace is None:
                self._send(404, _status(404, "NotFound", self.path))
            else:
                self._send(*store.create_event(namespace, body))

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class KubeServer:
    """The stand-in on `host:port` (0: a free port), served from a daemon thread."""

    def __init__(self, store: KubeStore, host: str = "127.0.0.1", port: int = 0) -> None:
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler(store, self._stop))
        self._server.daemon_threads = True
        # close() waits for the serving loop's next poll: a short one keeps stopping quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="standin-kube",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


def kubeconfig(server_url: str, namespace: str) -> str:
    """A kubeconfig pointing the `kubernetes` client at the stand-in (no credentials: none checked)."""
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: standin\n"
        f"clusters:\n- name: standin\n  cluster:\n    server: {server_url}\n"
        "users:\n- name: standin\n  user: {}\n"
        f"contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: standin\n"
        f"    namespace: {namespace}\n"
    )
