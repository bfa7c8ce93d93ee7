"""Pod uid -> namespace, name and container names, from the Kubernetes API (pods on this node).

A background thread lists the node's pods once, then watches for changes from that list's
resourceVersion; on any error it waits and lists again. Lookups read a dict the thread
replaces, so they never block on the API. Without API access every lookup answers None and
pods are exported by uid alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
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


class KubePodNames:
    """Names of the pods on one node, kept current by list + watch through a CoreV1Api."""

    def __init__(
        self, core_v1: Any, node_name: str, retry_s: float = 5.0, watch_timeout_s: int = 300
    ) -> None:
        self._api = core_v1
        self._selector = f"spec.nodeName={node_name}"
        self._retry_s = retry_s
        self._watch_timeout_s = watch_timeout_s
        self._pods: dict[str, PodMeta] = {}
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-names", daemon=True)
        self._thread.start()

    def lookup(self, uid: str) -> PodMeta | None:
        return self._pods.get(uid)

    def wait_synced(self, timeout_s: float) -> bool:
        """True once the first list has been loaded."""
        return self._synced.wait(timeout_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._retry_s + 1)

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                listed = self._api.list_pod_for_all_namespaces(field_selector=self._selector)
                self._pods = dict(pod_meta(p) for p in listed.items)
                self._synced.set()
                version = listed.metadata.resource_version
                while not self._stop.is_set():
                    w = watch.Watch()
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
                log.warning("pod names from the Kubernetes API unavailable: %s", err)
                self._stop.wait(self._retry_s)

    def _apply(self, kind: str, pod: Any) -> None:
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return  # BOOKMARK carries only a resourceVersion
        uid, meta = pod_meta(pod)
        pods = dict(self._pods)
        if kind == "DELETED":
            pods.pop(uid, None)
        else:
            pods[uid] = meta
        self._pods = pods


def from_environment(node_name: str | None) -> PodResolver:
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
    return KubePodNames(client.CoreV1Api(), node_name)
