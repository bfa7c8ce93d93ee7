"""Pod uid -> namespace, name and container names, from the Kubernetes API (pods on this node).

A background thread lists the node's pods once, then watches for changes from that list's
resourceVersion; on any error it waits and lists again. Lookups read a dict the thread
replaces, so they never block on the API. Without API access every lookup answers None and
pods are exported by uid alone.

close() does not wait for the watch to end (it stays open for minutes when nothing changes):
it shuts the watch's socket, which wakes the thread, so energyd stops promptly on SIGTERM.

A deleted pod (a DELETED event, or gone from a new list) keeps its name for `keep_deleted_s`:
the sampler keeps exporting its energy for its grace period after the cgroup goes, and that
series must keep its namespace and name rather than reappear labelled by uid.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PodMeta:
    namespace: str
    name: str
    containers: Mapping[str, str] = field(default_factory=dict)  # container id -> container name


class PodResolver(Protocol):
    def lookup(self, uid: str) -> PodMeta | None: ...

    def close(self) -> None: ...


class NoNames:
    """The resolver when there is no API access: pods keep their uid as their only name."""

    def lookup(self, uid: str) -> PodMeta | None:
        return None

    def close(self) -> None:
        pass


def pod_meta(pod: Any) -> tuple[str, PodMeta]:
    """(uid, meta) of a V1Pod; container ids lose their '<runtime>://' prefix as cgroups do."""
    containers = {}
    status_of = pod.status
    statuses = (
        [*(status_of.container_statuses or []), *(status_of.init_container_statuses or [])]
        if status_of
        else []
    )
    for status in statuses:
        if status.container_id:
            containers[status.container_id.split("://", 1)[-1]] = status.name
    meta = PodMeta(namespace=pod.metadata.namespace, name=pod.metadata.name, containers=containers)
    return pod.metadata.uid, meta


# How long close() waits for the thread once the watch's socket is shut (it takes milliseconds).
CLOSE_WAIT_S = 1.0


def _shut(w: Any) -> None:
    """Shuts the socket of a kubernetes Watch's open response, so a read blocked on it returns.

    Watch keeps that response in `_resp` (kubernetes 2x-3x) and urllib3's response its
    connection's socket; anything else (no watch yet, between two) is left alone.
    """
    sock = getattr(getattr(getattr(w, "_resp", None), "connection", None), "sock", None)
    if isinstance(sock, socket.socket):
        # The plain socket's shutdown, also for TLS: it wakes the reader without touching the
        # TLS state that thread is using. OSError: already closed, the reader is awake anyway.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class KubePodNames:
    """Names of the pods on one node, kept current by list + watch through a CoreV1Api."""

    def __init__(
        self,
        core_v1: Any,
        node_name: str,
        retry_s: float = 5.0,
        watch_timeout_s: int = 300,
        keep_deleted_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = core_v1
        self._selector = f"spec.nodeName={node_name}"
        self._retry_s = retry_s
        self._watch_timeout_s = watch_timeout_s
        self._keep_deleted_s = keep_deleted_s
        self._clock = clock
        # uid -> (meta, when the API said it was deleted, None while it exists)
        self._pods: dict[str, tuple[PodMeta, float | None]] = {}
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._watch: Any = None  # the kubernetes.watch.Watch streaming now, for close() to end
        self._thread = threading.Thread(target=self._run, name="pod-names", daemon=True)
        self._thread.start()

    def lookup(self, uid: str) -> PodMeta | None:
        entry = self._pods.get(uid)
        if entry is None:
            return None
        meta, deleted_s = entry
        return meta if deleted_s is None or not self._expired(deleted_s, self._clock()) else None

    def _expired(self, deleted_s: float, now_s: float) -> bool:
        return now_s - deleted_s >= self._keep_deleted_s

    def wait_synced(self, timeout_s: float) -> bool:
        """True once the first list has been loaded."""
        return self._synced.wait(timeout_s)

    def close(self) -> None:
        self._stop.set()
        _shut(self._watch)
        # The thread is a daemon: should a list still hang (it has no timeout of its own), the
        # process may exit without it.
        self._thread.join(timeout=CLOSE_WAIT_S)

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                listed = self._api.list_pod_for_all_namespaces(field_selector=self._selector)
                self._relisted(dict(pod_meta(p) for p in listed.items))
                self._synced.set()
                version = listed.metadata.resource_version
                while not self._stop.is_set():
                    w = self._watch = watch.Watch()
                    if self._stop.is_set():  # close() came before the watch it would shut
                        break
                    for event in w.stream(
                        self._api.list_pod_for_all_namespaces,
                        field_selector=self._selector,
                        resource_version=version,
                        timeout_seconds=self._watch_timeout_s,
                    ):
                        if self._stop.is_set():
                            w.stop()
                            break
                        self._apply(event["type"], event["object"])
                        version = event["object"].metadata.resource_version
            except Exception as err:  # any API failure: keep the old names, list again later
                if self._stop.is_set():
                    break  # close() shut the watch's socket: the failure is ours
                log.warning("pod names from the Kubernetes API unavailable: %s", err)
                self._stop.wait(self._retry_s)

    def _apply(self, kind: str, pod: Any) -> None:
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return  # BOOKMARK carries only a resourceVersion
        uid, meta = pod_meta(pod)
        now_s = self._clock()
        pods = self._unexpired(now_s)
        pods[uid] = (meta, now_s if kind == "DELETED" else None)
        self._pods = pods

    def _relisted(self, listed: dict[str, PodMeta]) -> None:
        # Pods deleted while no watch ran are missing from the list: they count as deleted now.
        now_s = self._clock()
        pods: dict[str, tuple[PodMeta, float | None]] = {
            uid: (meta, now_s if deleted_s is None else deleted_s)
            for uid, (meta, deleted_s) in self._unexpired(now_s).items()
        }
        pods.update((uid, (meta, None)) for uid, meta in listed.items())
        self._pods = pods

    def _unexpired(self, now_s: float) -> dict[str, tuple[PodMeta, float | None]]:
        """A copy of the pods, without the deleted ones kept long enough."""
        return {
            uid: entry
            for uid, entry in self._pods.items()
            if entry[1] is None or not self._expired(entry[1], now_s)
        }


def from_environment(node_name: str | None, keep_deleted_s: float) -> PodResolver:
    """In-cluster config, else kubeconfig; without either (or NODE_NAME), names by uid only."""
    if not node_name:
        log.info("NODE_NAME is not set: pods are labelled by uid")
        return NoNames()
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as err:
            log.info("no Kubernetes API access (%s): pods are labelled by uid", err)
            return NoNames()
    return KubePodNames(client.CoreV1Api(), node_name, keep_deleted_s=keep_deleted_s)
