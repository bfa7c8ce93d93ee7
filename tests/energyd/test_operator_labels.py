"""Per-pod energy through the Prometheus Operator's relabelling, in a real Prometheus.

The operator turns the shipped ServiceMonitor into a scrape job whose relabelling gives every
target its own `namespace`, `pod`, `container`, `service`, `endpoint` and `job` labels, and
sets honor_labels from the ServiceMonitor's honorLabels. energyd's series carry the
workload's `namespace` and `pod`: unless honored, the target's overwrite them. There is no
Kubernetes service discovery here, so each job gets one static target carrying the
`__meta_kubernetes_*` labels the endpoints discovery would give energyd's pod, derived from the
rendered manifests (kubectl kustomize deploy/base), and the very relabel rules the operator
generates for a ServiceMonitor endpoint (its pkg/prometheus golden files:
HonorLabelsOverriding.golden, GenerateRelabelConfig.golden), less its sharding rules. Pods are
named by energyd through the stand-in Kubernetes API (adapter/standin/kube.py), as
`energyd run` names them with NODE_NAME set.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.standin.kube import KubeServer, KubeStore, kubeconfig
from tests.deploy.test_manifests import ENERGYD_NS, kustomize
from tests.energyd.test_integration_prometheus import POD_CPUS, energyd_process
from tests.prom import query, start_prometheus, wait_for_series

REPO = Path(__file__).resolve().parents[2]
NODE = "node-a"
ENERGYD_POD = "energyd-x7k2p"  # what the DaemonSet's pod on NODE would be called
WORKLOADS = {uid: f"detect-{i}" for i, uid in enumerate(POD_CPUS)}


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def operator_job(
    objects: list[dict[str, Any]], target: str, honor_labels: bool | None = None
) -> dict[str, Any]:
    """The scrape job the operator generates for energyd's ServiceMonitor (endpoint 0), with one
    static target standing for energyd's pod on NODE. `honor_labels` overrides the manifest's."""
    monitor = find(objects, "ServiceMonitor", "energyd")
    service = find(objects, "Service", "energyd")
    daemonset = find(objects, "DaemonSet", "energyd")
    [endpoint] = monitor["spec"]["endpoints"]
    namespace = service["metadata"]["namespace"]
    assert namespace in monitor["spec"]["namespaceSelector"]["matchNames"]
    [port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    [container] = [
        c
        for c in daemonset["spec"]["template"]["spec"]["containers"]
        if any(p["name"] == port["targetPort"] for p in c.get("ports", []))
    ]
    meta = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_service_name": service["metadata"]["name"],
        "__meta_kubernetes_endpoint_port_name": port["name"],
        "__meta_kubernetes_endpoint_address_target_kind": "Pod",
        "__meta_kubernetes_endpoint_address_target_name": ENERGYD_POD,
        "__meta_kubernetes_pod_name": ENERGYD_POD,
        "__meta_kubernetes_pod_container_name": container["name"],
        "__meta_kubernetes_pod_node_name": NODE,
        "__meta_kubernetes_pod_phase": "Running",
    }
    for label, value in service["metadata"].get("labels", {}).items():
        meta[f"__meta_kubernetes_service_label_{sanitize(label)}"] = value
        meta[f"__meta_kubernetes_service_labelpresent_{sanitize(label)}"] = "true"
    relabel: list[dict[str, Any]] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    for label, value in monitor["spec"]["selector"]["matchLabels"].items():
        name = sanitize(label)
        relabel.append(
            {
                "action": "keep",
                "source_labels": [
                    f"__meta_kubernetes_service_label_{name}",
                    f"__meta_kubernetes_service_labelpresent_{name}",
                ],
                "regex": f"({value});true",
            }
        )
    target_kind = [
        "__meta_kubernetes_endpoint_address_target_kind",
        "__meta_kubernetes_endpoint_address_target_name",
    ]
    relabel += [
        {"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": endpoint["port"]},
        {"source_labels": target_kind, "separator": ";", "regex": "Node;(.*)", "replacement": "${1}", "target_label": "node"},
        {"source_labels": target_kind, "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}", "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
    ]  # fmt: skip
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    relabel += [{keys.get(k, k): v for k, v in rule.items()} for rule in endpoint.get("relabelings", [])]
    honor = endpoint.get("honorLabels", False) if honor_labels is None else honor_labels
    return {
        "job_name": f"serviceMonitor/{namespace}/energyd/0" + ("" if honor_labels is None else "-override"),
        "honor_labels": honor,
        "metrics_path": endpoint.get("path", "/metrics"),
        "scrape_interval": "1s",  # the manifest's 15s, shortened for the test
        "scrape_timeout": "1s",
        "static_configs": [{"targets": [target], "labels": meta}],
        "relabel_configs": relabel,
    }


def pod(uid: str, name: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "ml", "uid": uid},
        "spec": {"nodeName": NODE, "containers": []},
        "status": {"containerStatuses": []},
    }


@pytest.fixture
def named_energyd(tmp_path: Path) -> Iterator[str]:
    """energyd on a fixture node whose pods the (stand-in) API names ml/detect-0, ml/detect-1."""
    store = KubeStore()
    for uid, name in WORKLOADS.items():
        store.put_pod(pod(uid, name))
    api = KubeServer(store)
    api.start()
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(api.url, "ml"))
    try:
        with energyd_process(tmp_path / "node", {"NODE_NAME": NODE, "KUBECONFIG": str(config)}) as address:
            wait_until_named(address)
            yield address
            # First the API: its end closes the watch energyd holds open, so energyd stops at once
            # instead of waiting out its name watcher's join timeout.
            api.close()
    finally:
        api.close()


def wait_until_named(address: str, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=2) as resp:
                text = resp.read().decode()
            if all(f'pod="{name}"' in text for name in WORKLOADS.values()):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"energyd did not name the pods within {limit_s}s")
        time.sleep(0.1)


def per_pod(url: str, instance: str) -> dict[tuple[str, str], float]:
    result = query(url, f'sum by (namespace, pod) (energyd_pod_energy_joules_total{{instance="{instance}"}})')
    return {
        (r["metric"].get("namespace", ""), r["metric"].get("pod", "")): float(r["value"][1]) for r in result
    }


def test_per_pod_sums_are_the_workloads_under_the_operators_relabelling(named_energyd: str) -> None:
    objects = kustomize(REPO / "deploy" / "base")
    shipped = operator_job(objects, named_energyd)
    assert shipped["honor_labels"] is True  # the ServiceMonitor says honorLabels: true
    # The same rules without honorLabels, as the ServiceMonitor was: a second node's worth of
    # labels so that its series do not collide with the first job's.
    clashing = operator_job(objects, named_energyd, honor_labels=False)
    clashing["static_configs"][0]["labels"]["__meta_kubernetes_pod_node_name"] = "node-b"
    with start_prometheus([], scrape_configs=[shipped, clashing]) as url:
        wait_for_series(url, 'count(up{instance=~"node-a|node-b"} == 1) == 2', timeout_s=20)
        wait_for_series(url, 'energyd_pod_energy_joules_total{instance="node-b"}', timeout_s=10)
        honored = per_pod(url, NODE)
        collapsed = per_pod(url, "node-b")
        exported = query(
            url,
            'count by (exported_namespace, exported_pod) (energyd_pod_energy_joules_total{instance="node-b"})',
        )
        target = query(url, f'energyd_node_energy_joules_total{{instance="{NODE}"}}')
    assert set(honored) == {("ml", name) for name in WORKLOADS.values()}
    # The target's own labels are still there where energyd has none of its own.
    assert {(s["metric"]["namespace"], s["metric"]["pod"], s["metric"]["job"]) for s in target} == {
        (ENERGYD_NS, ENERGYD_POD, "energyd")
    }
    # Without honorLabels every pod's energy lands on energyd's own pod: the test can fail.
    assert set(collapsed) == {(ENERGYD_NS, ENERGYD_POD)}
    assert {(s["metric"]["exported_namespace"], s["metric"]["exported_pod"]) for s in exported} == set(
        honored
    )
