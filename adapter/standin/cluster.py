"""The stand-in cluster: one simulated pipeline, its SeldonDeployment behind the stand-in API, its
pods on a simulated node tree, and the serving metrics a real Seldon deployment would export.

Wiring: a patch of the SeldonDeployment (the adapter's SeldonActuator) becomes a requested
configuration of the paced simulation; each tick of the simulation reconciles the pods with the
configuration in force (a new variant or batch size rolls every pod of that stage, as a changed
pod template does; a replica count adds or removes pods), spreads each stage's computed
CPU-seconds evenly over its pods on the node tree, and counts the requests served.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from adapter.actuate.seldon import BATCH_ENV, V1, VARIANT_ENV
from adapter.profiles import Profile
from adapter.query import ENVOY_IN_FLIGHT
from adapter.sim.cluster import StageConfig
from adapter.standin.kube import KubeStore
from adapter.standin.node import NodeTree
from adapter.standin.pipeline import Config, Tick, initial_config

log = logging.getLogger(__name__)

# Seldon v1 executor's latency buckets reach well past IPA's SLAs (seconds).
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0)
POD_IDLE_CORES = 0.01  # a model server waiting for requests still polls and logs
SYSTEM_CORES = 0.05  # kubelet, container runtime and the like


def seldon_deployment(profile: Profile, namespace: str, config: Config) -> dict[str, Any]:
    """The pipeline as a SeldonDeployment shaped like deploy/examples/video-pipeline.yaml: a graph
    node, a componentSpec and a container per stage, named after the stage."""
    names = [s.name for s in profile.stages]
    graph: dict[str, Any] = {"name": names[-1], "type": "MODEL", "children": []}
    for name in reversed(names[:-1]):
        graph = {"name": name, "type": "MODEL", "children": [graph]}
    components = [
        {
            "replicas": c.replicas,
            "spec": {
                "containers": [
                    {
                        "name": name,
                        "image": f"standin/{profile.pipeline}-{name}",
                        "env": [
                            {"name": VARIANT_ENV, "value": c.variant.name},
                            {"name": BATCH_ENV, "value": str(c.batch)},
                        ],
                    }
                ]
            },
        }
        for name, c in zip(names, config, strict=True)
    ]
    return {
        "apiVersion": f"{V1[0]}/{V1[1]}",
        "kind": "SeldonDeployment",
        "metadata": {"name": profile.pipeline, "namespace": namespace},
        "spec": {
            "name": profile.pipeline,
            "predictors": [{"name": "default", "graph": graph, "componentSpecs": components}],
        },
    }


def config_from_deployment(profile: Profile, obj: dict[str, Any]) -> Config:
    """Per stage: the replicas, MODEL_VARIANT and batch size of the container named after it.
    Raises ValueError naming what does not fit the profile."""
    predictor = (obj.get("spec", {}).get("predictors") or [{}])[0]
    found: dict[str, StageConfig] = {}
    for component in predictor.get("componentSpecs") or ():
        for container in component.get("spec", {}).get("containers") or ():
            env = {e.get("name"): e.get("value") for e in container.get("env") or ()}
            stage = next((s for s in profile.stages if s.name == container.get("name")), None)
            if stage is None:
                continue
            try:
                variant = stage.variant(str(env.get(VARIANT_ENV)))
            except KeyError:
                raise ValueError(f"stage {stage.name}: no variant {env.get(VARIANT_ENV)!r}") from None
            batch, replicas = int(env.get(BATCH_ENV) or 1), int(component.get("replicas", 1))
            if batch < 1 or replicas < 0:
                raise ValueError(f"stage {stage.name}: batch {batch}, replicas {replicas}")
            found[stage.name] = StageConfig(variant, batch, replicas)
    missing = [s.name for s in profile.stages if s.name not in found]
    if missing:
        raise ValueError(f"no container for stage(s) {', '.join(missing)}")
    return tuple(found[s.name] for s in profile.stages)


class StandinMetrics:
    """What the stack's Prometheus scrapes from the stand-in, on its own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Histogram(
            "seldon_api_executor_server_requests_seconds",
            "Served requests' end-to-end latency (as Seldon v1's executor exports it)",
            ["deployment_name", "namespace", "code"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.arrived = Counter(
            "standin_requests_arrived", "Requests the trace sent", ["deployment_name"], registry=registry
        )
        # Envoy's gauge of requests sent upstream and not yet answered (Seldon Core v2 and Istio
        # route through Envoy), labelled by deployment_name as a scrape relabelling would: the
        # adapter's backlog signal (--backlog-metric). Dropped requests leave it too.
        self.in_flight = Gauge(
            ENVOY_IN_FLIGHT,
            "Requests arrived and neither answered nor dropped",
            ["deployment_name", "namespace"],
            registry=registry,
        )
        self.replicas = Gauge("standin_stage_replicas", "Pods per stage", ["stage"], registry=registry)
        self.stage = Gauge(
            "standin_stage_info", "1 for the variant and batch in force", ["stage", "variant", "batch"],
            registry=registry,
        )  # fmt: skip
        # kube-state-metrics' name, so deploy/prometheus/rules.yaml can group pods by pipeline.
        self.pod_labels = Gauge(
            "kube_pod_labels",
            "Pod labels",
            ["namespace", "pod", "label_seldon_deployment_id"],
            registry=registry,
        )


class StandinCluster:
    def __init__(
        self,
        profile: Profile,
        store: KubeStore,
        node: NodeTree,
        metrics: StandinMetrics,
        namespace: str = "default",
        node_name: str = "standin-node",
    ) -> None:
        self.profile = profile
        self.namespace = namespace
        self.node_name = node_name
        self._store = store
        self._node = node
        self._metrics = metrics
        self.deployment_path = KubeStore.object_path(V1[0], V1[1], namespace, V1[2], profile.pipeline)
        store.put_object(self.deployment_path, seldon_deployment(profile, namespace, initial_config(profile)))
        self._in_force: list[StageConfig | None] = [None] * len(profile.stages)
        self._pods: list[list[tuple[str, str]]] = [[] for _ in profile.stages]  # (uid, name) per stage

    def requested(self, obj: dict[str, Any]) -> Config | None:
        """The configuration a patched SeldonDeployment asks for; None (logged) when it does not fit."""
        try:
            return config_from_deployment(self.profile, obj)
        except ValueError as err:
            log.warning("SeldonDeployment %s ignored: %s", self.profile.pipeline, err)
            return None

    def on_tick(self, tick: Tick) -> None:
        if tick.config is not None:
            self._reconcile(tick.config)
        elapsed_s = tick.end_s - tick.start_s
        pod_cpu_s: dict[str, float] = {}
        for pods, stage_cpu_s in zip(self._pods, tick.stage_cpu_s, strict=True):
            for uid, _ in pods:
                pod_cpu_s[uid] = stage_cpu_s / len(pods) + POD_IDLE_CORES * elapsed_s
        self._node.advance(elapsed_s, pod_cpu_s, SYSTEM_CORES * elapsed_s)
        pipeline = self.profile.pipeline
        histogram = self._metrics.requests.labels(pipeline, self.namespace, "200")
        for latency_s in tick.latencies_s:
            histogram.observe(latency_s)
        self._metrics.arrived.labels(pipeline).inc(tick.arrived)
        self._metrics.in_flight.labels(pipeline, self.namespace).inc(
            tick.arrived - len(tick.latencies_s) - tick.dropped
        )

    def _reconcile(self, config: Config) -> None:
        for index, (stage, wanted) in enumerate(zip(self.profile.stages, config, strict=True)):
            before = self._in_force[index]
            pods = self._pods[index]
            if before is not None and (before.variant.name, before.batch) != (
                wanted.variant.name,
                wanted.batch,
            ):
                while pods:  # a new pod template: every pod is replaced
                    self._remove(pods.pop())
                self._metrics.stage.remove(stage.name, before.variant.name, str(before.batch))
            while len(pods) > wanted.replicas:
                self._remove(pods.pop())
            while len(pods) < wanted.replicas:
                pods.append(self._add(index, wanted))
            self._in_force[index] = wanted
            self._metrics.replicas.labels(stage.name).set(wanted.replicas)
            self._metrics.stage.labels(stage.name, wanted.variant.name, str(wanted.batch)).set(1)
        log.info(
            "in force: %s",
            ", ".join(
                f"{s.name}={c.variant.name} x{c.replicas} b{c.batch}"
                for s, c in zip(self.profile.stages, config, strict=True)
            ),
        )

    def _add(self, index: int, config: StageConfig) -> tuple[str, str]:
        stage = self.profile.stages[index].name
        uid = self._node.add_pod()
        suffix = hashlib.sha1(uid.encode()).hexdigest()[:5]
        # Seldon v1 names pods <deployment>-<predictor>-<component index>-<containers>-<hash>.
        name = f"{self.profile.pipeline}-default-{index}-{stage}-{suffix}"
        container_id = self._node.container_id(uid)
        self._store.put_pod(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "uid": uid,
                    "labels": {"seldon-deployment-id": self.profile.pipeline, "model": config.variant.name},
                },
                "spec": {
                    "nodeName": self.node_name,
                    "containers": [{"name": stage, "image": f"standin/{stage}"}],
                },
                "status": {
                    "phase": "Running",
                    "containerStatuses": [
                        {
                            "name": stage,
                            "containerID": f"containerd://{container_id}",
                            "image": f"standin/{stage}",
                            "imageID": "",
                            "ready": True,
                            "restartCount": 0,
                        }
                    ],
                },
            }
        )
        self._metrics.pod_labels.labels(self.namespace, name, self.profile.pipeline).set(1)
        return uid, name

    def _remove(self, pod: tuple[str, str]) -> None:
        uid, name = pod
        self._store.delete_pod(uid)
        self._node.remove_pod(uid)
        self._metrics.pod_labels.remove(self.namespace, name, self.profile.pipeline)
