"""Pod names from the Kubernetes API, against a fake of the pods endpoint served on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from adapter.standin.kube import KubeServer, KubeStore
from energyd.cgroups.names import KubePodNames, NoNames, PodMeta, from_environment


def pod_json(uid: str, name: str, version: int, container_id: str | None = None) -> dict[str, Any]:
    statuses = []
    if container_id:
        statuses.append(
            {
                "name": "app",
                "containerID": f"containerd://{container_id}",
                "image": "img",
                "imageID": "",
                "ready": True,
                "restartCount": 0,
            }
        )
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "ml", "uid": uid, "resourceVersion": str(version)},
        "status": {"containerStatuses": statuses},
    }


class FakePodsApi:
    """A FAKE of the Kubernetes API server's `GET /api/v1/pods` (list and watch=true), nothing more.

    The list answers two pods at resourceVersion 10; a watch from 10 streams ADDED, MODIFIED (a
    container started) and DELETED events, then holds the connection open as a quiet API server does until closed.
    """

    def __init__(self) -> None:
        self.queries: list[dict[str, list[str]]] = []
        self.closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Watches stream as chunked HTTP/1.1, as the API server sends them: the client
            # reads each event as its chunk arrives.
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                fake.queries.append(query)
                if url.path != "/api/v1/pods":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if query.get("watch") != ["true"] and query.get("watch") != ["True"]:
                    body = {
                        "kind": "PodList",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": "10"},
                        "items": [
                            pod_json("uid-1", "detect-0", 9, "c1"),
                            pod_json("uid-2", "classify-0", 10),
                        ],
                    }
                    data = json.dumps(body).encode()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if query.get("resourceVersion") == ["10"]:
                    for kind, obj in (
                        ("ADDED", pod_json("uid-3", "detect-1", 11)),
                        ("MODIFIED", pod_json("uid-3", "detect-1", 12, "c3")),
                        ("DELETED", pod_json("uid-2", "classify-0", 13)),
                    ):
                        line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                fake.closing.wait(10)
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_api() -> Iterator[FakePodsApi]:
    fake = FakePodsApi()
    yield fake
    fake.close()


def test_names_follow_list_and_watch(fake_api: FakePodsApi) -> None:
    api = client.ApiClient(client.Configuration(host=fake_api.url))
    names = KubePodNames(client.CoreV1Api(api), "node-a", retry_s=0.1, keep_deleted_s=0.0)
    try:
        assert names.wait_synced(5)
        deadline = time.monotonic() + 5
        while names.lookup("uid-2") is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert names.lookup("uid-1") == PodMeta("ml", "detect-0", {"c1": "app"})
        assert names.lookup("uid-3") == PodMeta("ml", "detect-1", {"c3": "app"})
        assert names.lookup("uid-2") is None
        assert names.lookup("uid-9") is None
        assert all(q["fieldSelector"] == ["spec.nodeName=node-a"] for q in fake_api.queries)
        assert any(q.get("resourceVersion") == ["10"] for q in fake_api.queries)
    finally:
        fake_api.closing.set()
        names.close()
        api.close()


def test_unreachable_api_keeps_answering_none() -> None:
    api = client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))
    names = KubePodNames(client.CoreV1Api(api), "node-a", retry_s=0.05)
    try:
        assert not names.wait_synced(0.3)
        assert names.lookup("uid-1") is None
    finally:
        names.close()
        api.close()


def test_without_api_access_pods_keep_their_uid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    resolver = from_environment("node-a", keep_deleted_s=600.0)
    assert isinstance(resolver, NoNames)
    assert resolver.lookup("uid-1") is None
    assert isinstance(from_environment(None, keep_deleted_s=600.0), NoNames)


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def standin_pod(uid: str, name: str, node: str = "node-a") -> dict[str, Any]:
    return {**pod_json(uid, name, 0), "spec": {"nodeName": node, "containers": []}}


def wait_named(names: KubePodNames, uid: str) -> PodMeta:
    deadline = time.monotonic() + 5
    while (meta := names.lookup(uid)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert meta is not None, f"{uid} never named"
    return meta


@pytest.mark.parametrize("how", ["watched", "relisted"])
def test_a_deleted_pod_keeps_its_name_for_keep_deleted_s(how: str) -> None:
    # The stand-in Kubernetes endpoints (adapter/standin/kube.py), not a real API server.
    store = KubeStore()
    servers = [KubeServer(store)]
    servers[0].start()
    api = client.ApiClient(client.Configuration(host=servers[0].url))
    clock = Clock()
    store.put_pod(standin_pod("uid-1", "detect-0"))
    names = KubePodNames(client.CoreV1Api(api), "node-a", retry_s=0.05, keep_deleted_s=600.0, clock=clock)
    try:
        assert names.wait_synced(5)
        assert names.lookup("uid-1") == PodMeta("ml", "detect-0", {})
        if how == "relisted":  # deleted while the API is unreachable: missing from the next list
            port = int(servers[0].url.rsplit(":", 1)[1])
            servers[0].close()
            time.sleep(1.1)  # its open watch ends within a second (kube.py) without seeing what follows
            servers.append(KubeServer(store, port=port))
        store.delete_pod("uid-1")
        store.put_pod(standin_pod("uid-x", "other", node="node-b"))
        store.put_pod(standin_pod("uid-2", "detect-1"))
        clock.now_s += 10.0
        if how == "relisted":
            servers[-1].start()
        wait_named(names, "uid-2")  # so the deletion, before it, has been seen too
        assert names.lookup("uid-1") == PodMeta("ml", "detect-0", {})
        clock.now_s += 599.0
        assert names.lookup("uid-1") == PodMeta("ml", "detect-0", {})
        clock.now_s += 1.0
        assert names.lookup("uid-1") is None
        assert names.lookup("uid-x") is None  # another node's pod
        store.put_pod(standin_pod("uid-3", "detect-2"))
        wait_named(names, "uid-3")
        assert names.lookup("uid-1") is None and names.lookup("uid-2") == PodMeta("ml", "detect-1", {})
    finally:
        names.close()
        api.close()  # type: ignore[no-untyped-call]
        servers[-1].close()
