"""Pod names from the Kubernetes API, against the stand-in pods endpoints (list and watch) of
adapter/standin/kube.py served on loopback: a stand-in, not a real API server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from adapter.standin.kube import KubeServer, KubeStore
from energyd.cgroups.names import KubePodNames, NoNames, PodMeta, from_environment
from tests.clock import Clock
from tests.kube import standin_api


def pod_json(uid: str, name: str, container_id: str | None = None, node: str = "node-a") -> dict[str, Any]:
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
        "metadata": {"name": name, "namespace": "ml", "uid": uid},
        "spec": {"nodeName": node, "containers": []},
        "status": {"containerStatuses": statuses},
    }


class WatchedStore(KubeStore):
    """The stand-in's store, noting which node each list asked for and where each watch began."""

    def __init__(self) -> None:
        super().__init__()
        self.listed_nodes: list[str | None] = []
        self.watched_from: list[int] = []

    def list_pods(self, node_name: str | None) -> dict[str, Any]:
        self.listed_nodes.append(node_name)
        return super().list_pods(node_name)

    def pod_events_after(
        self, version: int, timeout_s: float
    ) -> list[tuple[int, str, dict[str, Any]]] | None:
        self.watched_from.append(version)
        return super().pod_events_after(version, timeout_s)


@pytest.fixture
def served() -> Iterator[tuple[WatchedStore, client.ApiClient]]:
    store = WatchedStore()
    with standin_api(store) as api:
        yield store, api


def test_names_follow_list_and_watch(served: tuple[WatchedStore, client.ApiClient]) -> None:
    store, api = served
    store.put_pod(pod_json("uid-1", "detect-0", "c1"))
    store.put_pod(pod_json("uid-2", "classify-0"))
    store.put_pod(pod_json("uid-b", "elsewhere-0", node="node-b"))
    listed_version = int(KubeStore.list_pods(store, None)["metadata"]["resourceVersion"])
    names = KubePodNames(client.CoreV1Api(api), "node-a", retry_s=0.1, keep_deleted_s=0.0)
    try:
        assert names.wait_synced(5)
        store.put_pod(pod_json("uid-3", "detect-1"))  # ADDED
        store.put_pod(pod_json("uid-3", "detect-1", "c3"))  # MODIFIED: a container started
        store.put_pod(pod_json("uid-b2", "elsewhere-1", node="node-b"))
        store.delete_pod("uid-2")
        deadline = time.monotonic() + 5
        while names.lookup("uid-2") is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert names.lookup("uid-1") == PodMeta("ml", "detect-0", {"c1": "app"})
        assert names.lookup("uid-3") == PodMeta("ml", "detect-1", {"c3": "app"})
        assert names.lookup("uid-2") is None
        assert names.lookup("uid-9") is None
        # Only this node's pods, listed or watched.
        assert names.lookup("uid-b") is None and names.lookup("uid-b2") is None
        assert store.listed_nodes and all(node == "node-a" for node in store.listed_nodes)
        assert listed_version in store.watched_from
    finally:
        names.close()


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
    clock = Clock(1000.0)
    store.put_pod(pod_json("uid-1", "detect-0"))
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
        store.put_pod(pod_json("uid-x", "other", node="node-b"))
        store.put_pod(pod_json("uid-2", "detect-1"))
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
        store.put_pod(pod_json("uid-3", "detect-2"))
        wait_named(names, "uid-3")
        assert names.lookup("uid-1") is None and names.lookup("uid-2") == PodMeta("ml", "detect-1", {})
    finally:
        names.close()
        api.close()
        servers[-1].close()


def test_close_ends_an_open_watch_promptly(served: tuple[WatchedStore, client.ApiClient]) -> None:
    # The watch stays open for minutes when nothing changes; energyd must still stop at once
    # on SIGTERM (a liveness bound, not a speed claim).
    store, api = served
    store.put_pod(pod_json("uid-1", "detect-0", "c1"))
    before = set(threading.enumerate())
    names = KubePodNames(client.CoreV1Api(api), "node-a", retry_s=30.0)
    try:
        assert names.wait_synced(5)
        deadline = time.monotonic() + 5
        while not store.watched_from and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.watched_from, "the watch never started"
        time.sleep(0.2)  # the client is now blocked reading the open watch
    finally:
        started = time.monotonic()
        names.close()
        took_s = time.monotonic() - started
    assert took_s < 2.0
    assert not [t for t in set(threading.enumerate()) - before if t.name == "pod-names" and t.is_alive()]
