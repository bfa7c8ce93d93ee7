"""The stand-in Kubernetes endpoints through the real `kubernetes` client, as its two users see
them: energyd's pod-name lookup (list + watch) and the adapter's SeldonActuator (GET + PATCH),
and the stand-in cluster turning those patches and ticks into pods on the node tree."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry

from adapter.actuate.seldon import V1, SeldonActuator
from adapter.problem import Decision, StageChoice
from adapter.standin.cluster import StandinCluster, StandinMetrics, config_from_deployment, seldon_deployment
from adapter.standin.kube import KubeStore
from adapter.standin.node import NodeTree
from adapter.standin.pipeline import Tick, initial_config
from energyd.cgroups import PodUsageReader
from energyd.cgroups.names import KubePodNames
from tests.kube import standin_api
from tests.sim.profiles import video_profile

PROFILE = video_profile(3, (1, 2, 4))


@pytest.fixture
def served() -> Iterator[tuple[KubeStore, client.ApiClient, list[dict[str, Any]]]]:
    patched: list[dict[str, Any]] = []
    store = KubeStore(lambda _path, obj: patched.append(obj))
    with standin_api(store) as api_client:
        yield store, api_client, patched


def _decision(*stages: tuple[str, str, int, int]) -> Decision:
    choices = tuple(StageChoice(s, v, n, b, 0.0, 0.0, 0.0, 0.0) for s, v, n, b in stages)
    return Decision(True, 0.0, choices, 0.0, 0.0, 0.0, 0.0, 0.0, "test", 0.0, None)


def test_seldon_actuator_patches_reach_the_owner(
    served: tuple[KubeStore, client.ApiClient, list[dict[str, Any]]],
) -> None:
    store, api_client, patched = served
    path = store.object_path(V1[0], V1[1], "video", V1[2], "video")
    store.put_object(path, seldon_deployment(PROFILE, "video", initial_config(PROFILE)))
    actuator = SeldonActuator(client.CustomObjectsApi(api_client), "video", apply=True)
    decision = _decision(("detect", "yolov5s", 3, 2), ("classify", "resnet50", 2, 4))
    assert actuator.apply("video", decision) is True
    assert actuator.apply("video", decision) is False  # nothing differs: nothing sent
    assert len(patched) == 1
    wanted = config_from_deployment(PROFILE, patched[0])
    assert [(c.variant.name, c.replicas, c.batch) for c in wanted] == [("yolov5s", 3, 2), ("resnet50", 2, 4)]
    assert config_from_deployment(PROFILE, store.get_object(path) or {}) == wanted


def test_patch_errors_are_the_api_servers(
    served: tuple[KubeStore, client.ApiClient, list[dict[str, Any]]],
) -> None:
    store, api_client, patched = served
    path = store.object_path(V1[0], V1[1], "default", V1[2], "video")
    store.put_object(path, seldon_deployment(PROFILE, "default", initial_config(PROFILE)))
    api = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as missing:
        api.get_namespaced_custom_object(V1[0], V1[1], "default", V1[2], "nope")
    assert missing.value.status == 404
    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"name": "x"}}
    with pytest.raises(ApiException) as conflict:
        api.patch_namespaced_custom_object(V1[0], V1[1], "default", V1[2], "video", stale)
    assert conflict.value.status == 409
    assert store.patch_object(path, "application/json-patch+json", [])[0] == 415
    assert patched == []


def test_energyd_names_pods_through_list_and_watch(
    served: tuple[KubeStore, client.ApiClient, list[dict[str, Any]]], tmp_path: Path
) -> None:
    store, api_client, _ = served
    node = NodeTree(tmp_path, cpus=4)
    cluster = StandinCluster(PROFILE, store, node, StandinMetrics(CollectorRegistry()), "video", "node-a")
    cluster.on_tick(Tick(0.0, 0.5, initial_config(PROFILE), (0.0, 0.0)))
    names = KubePodNames(
        client.CoreV1Api(api_client), "node-a", retry_s=0.2, watch_timeout_s=2, keep_deleted_s=0.0
    )
    try:
        assert names.wait_synced(5.0)
        uids = [p.uid for p in PodUsageReader(node.cgroup_root).read().pods]
        assert len(uids) == 2
        first = {uid: names.lookup(uid) for uid in uids}
        assert sorted(m.name.split("-")[3] for m in first.values() if m) == ["classify", "detect"]
        uid = uids[0]
        meta = first[uid]
        assert meta is not None and meta.namespace == "video"
        assert meta.containers == {node.container_id(uid): meta.name.split("-")[3]}
        # Three detect replicas of another variant: every detect pod is new, and the watch says so.
        wanted = config_from_deployment(
            PROFILE,
            {"spec": {"predictors": [{"componentSpecs": [
                {"replicas": 3, "spec": {"containers": [{"name": "detect", "env": [
                    {"name": "MODEL_VARIANT", "value": "yolov5m"}, {"name": "MLSERVER_MODEL_MAX_BATCH_SIZE", "value": "2"}]}]}},
                {"replicas": 1, "spec": {"containers": [{"name": "classify", "env": [
                    {"name": "MODEL_VARIANT", "value": "resnet18"}, {"name": "MLSERVER_MODEL_MAX_BATCH_SIZE", "value": "1"}]}]}},
            ]}]}},
        )  # fmt: skip
        cluster.on_tick(Tick(0.5, 1.0, wanted, (0.4, 0.2)))
        now = {p.uid: p.usage_us for p in PodUsageReader(node.cgroup_root).read().pods}
        assert len(now) == 4
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(names.lookup(u) is None for u in now):
            time.sleep(0.05)
        stage_of = {u: m.name.split("-")[3] for u in now if (m := names.lookup(u)) is not None}
        assert sorted(stage_of.values()) == ["classify", "detect", "detect", "detect"]
        replaced = [u for u, m in first.items() if m is not None and m.name.split("-")[3] == "detect"]
        assert len(replaced) == 1 and replaced[0] not in now
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and names.lookup(replaced[0]) is not None:
            time.sleep(0.05)
        assert names.lookup(replaced[0]) is None
        # The stage's CPU is spread evenly over its pods (on top of each pod's idle polling).
        detect_us = {now[u] for u, stage in stage_of.items() if stage == "detect"}
        assert len(detect_us) == 1 and detect_us.pop() > 0.4 / 3 * 1e6
    finally:
        names.close()
        node.close()


def test_a_watch_from_a_compacted_version_is_told_to_list_again() -> None:
    store = KubeStore(max_events=3)
    with standin_api(store) as api_client:
        core = client.CoreV1Api(api_client)
        listed = core.list_pod_for_all_namespaces()
        for i in range(5):
            store.put_pod(
                {
                    "metadata": {"name": f"p{i}", "namespace": "default", "uid": f"uid-{i}"},
                    "spec": {"nodeName": "n", "containers": [{"name": "c"}]},
                }
            )
        assert listed.metadata is not None
        old = listed.metadata.resource_version
        with pytest.raises(ApiException) as gone:
            list(
                watch.Watch().stream(
                    core.list_pod_for_all_namespaces, resource_version=old, timeout_seconds=2
                )
            )
        assert gone.value.status == 410
        # From a version still kept: the events after it, in order.
        recent_meta = core.list_pod_for_all_namespaces().metadata
        assert recent_meta is not None
        recent = recent_meta.resource_version
        store.delete_pod("uid-4")
        events = list(
            watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=recent, timeout_seconds=1)
        )
        assert [(e["type"], e["object"].metadata.name) for e in events] == [("DELETED", "p4")]
