"""deploy/ as `kubectl kustomize` renders it (the base and every overlay): every built-in object
against the Kubernetes JSON schemas (kubernetes-validate, strict: unknown fields fail), the CRD
objects structurally, RBAC minimal and per managed namespace, Pod Security levels the pods
actually meet, NetworkPolicies that admit only Prometheus and the API's clients, no Secret
shipped, the PrometheusRule current with rules.yaml, and the references between objects."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from adapter.cli import parser as adapter_parser
from adapter.cli import settings_from_args
from adapter.profiles import load_profile, load_profiles, parse_profile
from adapter.settings import default_profiles_dir

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TREES = {
    "base": DEPLOY / "base",
    "perf": DEPLOY / "overlays" / "perf",
    "gpu": DEPLOY / "overlays" / "gpu",
    "user_profiles": DEPLOY / "overlays" / "user-profiles",
    "kube_prometheus": DEPLOY / "overlays" / "kube-prometheus",
    "kube_prometheus_stack": DEPLOY / "overlays" / "kube-prometheus-stack",
    "grafana": DEPLOY / "grafana",
}
EXAMPLE = DEPLOY / "examples" / "video-pipeline.yaml"
# The oldest Kubernetes we claim and the newest schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_GROUPS = ("monitoring.coreos.com/", "machinelearning.seldon.io/", "mlops.seldon.io/")
ADAPTER_NS = "energyd-system"
ENERGYD_NS = "energyd-node"
CLUSTER_SCOPED = ("Namespace", "ClusterRole", "ClusterRoleBinding")

Manifest = dict[str, Any]


def kustomize(directory: Path) -> list[Manifest]:
    """What `kubectl apply -k DIR` would send."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found: run `make kubectl` (Debian package kubectl)"
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(objects: list[Manifest], kind: str, name: str, namespace: str | None = None) -> Manifest:
    matches = [
        o
        for o in objects
        if o["kind"] == kind
        and o["metadata"]["name"] == name
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} objects of kind {kind} named {name}")
    return matches[0]


def is_crd(obj: Manifest) -> bool:
    return str(obj["apiVersion"]).startswith(CRD_GROUPS)


def validate(obj: Manifest) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def pod_spec(obj: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def container(obj: Manifest, name: str) -> dict[str, Any]:
    return next(c for c in pod_spec(obj)["containers"] if c["name"] == name)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {name: kustomize(directory) for name, directory in TREES.items()}


@pytest.fixture(scope="module")
def base(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["base"]


@pytest.fixture(scope="module")
def perf(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["perf"]


@pytest.fixture(scope="module")
def user_profiles(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["user_profiles"]


@pytest.mark.parametrize("tree", [t for t in TREES if t != "grafana"])
def test_builtin_objects_match_kubernetes_schemas(tree: str, rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered[tree]
    builtin = [o for o in objects if not is_crd(o)]
    assert {o["kind"] for o in builtin} >= {"DaemonSet", "Deployment", "Service", "Role", "NetworkPolicy"}
    for obj in builtin:
        validate(obj)
    for obj in objects:
        # Every namespaced object names its namespace: none lands in the applier's default.
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace"), (tree, obj["kind"], obj["metadata"]["name"])


def test_schema_validation_rejects_a_broken_daemonset(base: list[Manifest]) -> None:
    broken = copy.deepcopy(find(base, "DaemonSet", "energyd"))
    container(broken, "energyd")["securityContext"]["readOnlyRootFilesytem"] = True  # typo'd field
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_energyd_and_the_adapter_live_in_their_own_namespaces(base: list[Manifest]) -> None:
    for obj in base:
        if obj["kind"] in CLUSTER_SCOPED or obj["kind"] == "PrometheusRule":
            continue
        name = obj["metadata"]["labels"].get("app.kubernetes.io/name")
        if obj["kind"] in ("Role", "RoleBinding"):
            continue  # the adapter's, in the namespaces it manages
        expected = {"energyd": ENERGYD_NS, "adapter": ADAPTER_NS}[name]
        assert obj["metadata"]["namespace"] == expected, (obj["kind"], obj["metadata"]["name"])
    assert {o["metadata"]["name"] for o in base if o["kind"] == "Namespace"} == {ENERGYD_NS, ADAPTER_NS}


# What each Pod Security level forbids that deploy/ could plausibly use (the rules of
# kubernetes.io/docs/concepts/security/pod-security-standards, checked per pod spec).
def pod_security_violations(spec: dict[str, Any], level: str) -> list[str]:
    found = []
    containers = [*spec.get("initContainers", []), *spec["containers"]]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(field)
    if any("hostPath" in v for v in spec.get("volumes", [])):
        found.append("hostPath volume")
    for c in containers:
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            found.append(f"{c['name']}: privileged")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{c['name']}: hostPort")
        added = set(sc.get("capabilities", {}).get("add", []))
        if level == "restricted":
            if added - {"NET_BIND_SERVICE"}:
                found.append(f"{c['name']}: capabilities added {sorted(added)}")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                found.append(f"{c['name']}: capabilities not dropped")
            if sc.get("allowPrivilegeEscalation") is not False:
                found.append(f"{c['name']}: allowPrivilegeEscalation")
            non_root = sc.get("runAsNonRoot", spec.get("securityContext", {}).get("runAsNonRoot"))
            if non_root is not True or sc.get("runAsUser") == 0:
                found.append(f"{c['name']}: may run as root")
            seccomp = sc.get("seccompProfile", spec.get("securityContext", {}).get("seccompProfile", {}))
            if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
                found.append(f"{c['name']}: seccomp")
    if level == "restricted":
        allowed = {
            "configMap",
            "emptyDir",
            "projected",
            "secret",
            "downwardAPI",
            "persistentVolumeClaim",
            "csi",
            "ephemeral",
        }
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            if not kinds <= allowed:
                found.append(f"volume {volume['name']}: {sorted(kinds)}")
    return found


@pytest.mark.parametrize("tree", ["base", "perf", "user_profiles"])
def test_every_pod_meets_its_namespace_pod_security_level(
    tree: str, rendered: dict[str, list[Manifest]]
) -> None:
    objects = rendered[tree]
    levels = {
        o["metadata"]["name"]: o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for o in objects
        if o["kind"] == "Namespace"
    }
    assert levels == {ADAPTER_NS: "restricted", ENERGYD_NS: "privileged"}
    workloads = [o for o in objects if o["kind"] in ("Deployment", "DaemonSet")]
    for workload in workloads:
        level = levels[workload["metadata"]["namespace"]]
        if level != "privileged":
            assert pod_security_violations(pod_spec(workload), level) == [], workload["metadata"]["name"]
    # energyd needs the privileged level for its host paths only: it breaks baseline by nothing else.
    energyd = find(objects, "DaemonSet", "energyd")
    assert pod_security_violations(pod_spec(energyd), "baseline") == ["hostPath volume"]
    # The checker finds what restricted forbids in energyd's pod.
    assert any("may run as root" in v for v in pod_security_violations(pod_spec(energyd), "restricted"))


def grants(role: Manifest) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_rbac_is_minimal_and_the_adapter_is_confined_to_its_namespaces(base: list[Manifest]) -> None:
    roles = [o for o in base if o["kind"] in ("Role", "ClusterRole")]
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], field)
    assert [r["metadata"]["name"] for r in roles if r["kind"] == "ClusterRole"] == ["energyd"]
    assert grants(find(base, "ClusterRole", "energyd")) == {("", "pods", v) for v in ("get", "list", "watch")}
    # The adapter: a Role and a RoleBinding in each namespace it manages, nothing cluster-wide,
    # and the namespaces are the one its --namespace names.
    adapter_roles = [r for r in roles if r["kind"] == "Role"]
    managed = {r["metadata"]["namespace"] for r in adapter_roles}
    args = adapter_parser().parse_args(
        [*container(find(base, "Deployment", "adapter"), "adapter")["command"][1:],
         *container(find(base, "Deployment", "adapter"), "adapter")["args"]]
    )  # fmt: skip
    assert managed == {args.namespace}
    for role in adapter_roles:
        assert role["metadata"]["name"] == "energyd-adapter"
        assert grants(role) == {
            *(
                (group, resource, verb)
                for group, resource in (
                    ("machinelearning.seldon.io", "seldondeployments"),
                    ("mlops.seldon.io", "models"),
                )
                for verb in ("get", "patch")
            ),
            ("", "events", "create"),
        }
    bindings = [o for o in base if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert sorted(
        (b["kind"], b["metadata"].get("namespace", ""), b["roleRef"]["name"], b["subjects"][0]["name"])
        for b in bindings
    ) == sorted(
        [("ClusterRoleBinding", "", "energyd", "energyd")]
        + [("RoleBinding", ns, "energyd-adapter", "adapter") for ns in managed]
    )
    accounts = {
        (o["metadata"]["namespace"], o["metadata"]["name"]) for o in base if o["kind"] == "ServiceAccount"
    }
    for binding in bindings:
        assert binding["roleRef"]["kind"] == ("Role" if binding["kind"] == "RoleBinding" else "ClusterRole")
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert (subject["namespace"], subject["name"]) in accounts
    assert pod_spec(find(base, "DaemonSet", "energyd"))["serviceAccountName"] == "energyd"
    assert pod_spec(find(base, "Deployment", "adapter"))["serviceAccountName"] == "adapter"


def admitted(policy: Manifest, namespace_labels: dict[str, str], pod_labels: dict[str, str]) -> bool:
    """Whether an ingress rule of `policy` admits a pod with these labels in such a namespace."""
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            ns_ok = (
                peer.get("namespaceSelector") is not None
                and peer["namespaceSelector"].get("matchLabels", {}).items() <= namespace_labels.items()
            )
            pod_ok = peer.get("podSelector", {}).get("matchLabels", {}).items() <= pod_labels.items()
            if ns_ok and pod_ok:
                return True
    return False


def test_network_policies_admit_only_prometheus_and_the_api_clients(base: list[Manifest]) -> None:
    prometheus = ({"kubernetes.io/metadata.name": "monitoring"}, {"app.kubernetes.io/name": "prometheus"})
    stranger = ({"kubernetes.io/metadata.name": "video"}, {"app": "video"})
    client = ({"kubernetes.io/metadata.name": "video"}, {"energyd.io/adapter-client": "true"})
    for name, port_name, port, clients in (
        ("energyd", "metrics", 9102, [prometheus]),
        ("adapter", "http", 8080, [prometheus, client]),
    ):
        policy = find(base, "NetworkPolicy", name)
        workload = next(
            o for o in base if o["kind"] in ("DaemonSet", "Deployment") and o["metadata"]["name"] == name
        )
        assert policy["metadata"]["namespace"] == workload["metadata"]["namespace"]
        assert (
            policy["spec"]["podSelector"]["matchLabels"].items()
            <= workload["spec"]["template"]["metadata"]["labels"].items()
        )
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        ports = {p["name"]: p["containerPort"] for c in pod_spec(workload)["containers"] for p in c["ports"]}
        assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [port_name]
        assert ports[port_name] == port
        for peer in clients:
            assert admitted(policy, *peer)
        assert not admitted(policy, *stranger)
    assert not admitted(find(base, "NetworkPolicy", "energyd"), *client)


def test_energyd_daemonset_least_privilege(base: list[Manifest]) -> None:
    ds = find(base, "DaemonSet", "energyd")
    spec = pod_spec(ds)
    c = container(ds, "energyd")
    sc = c["securityContext"]
    assert not spec.get("hostPID") and not spec.get("hostNetwork") and not spec.get("hostIPC")
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # uid 0 because energy_uj is owner-root 0400; nothing else about root is kept.
    assert sc["runAsUser"] == 0 and spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    # /sys/class and /sys/devices, not all of /sys: tests/deploy/test_energyd_mounts.py shows why.
    assert sorted(host_paths.values()) == ["/proc", "/sys/class", "/sys/devices", "/sys/fs/cgroup"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    for name in host_paths:
        assert mounts[name]["readOnly"] is True, name
    # The root flags point at where the host paths are mounted.
    args = dict(a.removeprefix("--").split("=", 1) for a in c["args"] if a.startswith("--"))
    assert mounts["sys-class"]["mountPath"] == args["sysfs-root"] + "/class"
    assert mounts["sys-devices"]["mountPath"] == args["sysfs-root"] + "/devices"
    assert mounts["cgroup"]["mountPath"] == args["cgroup-root"]
    assert mounts["proc"]["mountPath"] == args["procfs-root"]
    assert {"operator": "Exists"} in spec["tolerations"]
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    port_names = {p["name"] for p in c["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["path"] in ("/metrics", "/healthz")
        assert c[probe]["httpGet"]["port"] in port_names


def test_perf_overlay_adds_only_perfmon_and_the_event_list(
    base: list[Manifest], perf: list[Manifest]
) -> None:
    before, after = find(base, "DaemonSet", "energyd"), find(perf, "DaemonSet", "energyd")
    c = container(after, "energyd")
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["PERFMON"]}
    assert c["securityContext"]["privileged"] is False
    assert c["image"].endswith("-perf")
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/host/sys/bus/event_source")
    assert mount["readOnly"] is True
    assert len(pod_spec(after)["volumes"]) == len(pod_spec(before)["volumes"]) + 1
    # Everything but the energyd DaemonSet is the base, untouched.
    rest = [o for o in perf if o["kind"] != "DaemonSet"]
    assert rest == [o for o in base if o["kind"] != "DaemonSet"]


def test_adapter_deployment_runs_as_non_root_with_the_token_from_a_secret_not_shipped(
    rendered: dict[str, list[Manifest]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = rendered["base"]
    dep = find(base, "Deployment", "adapter")
    spec = pod_spec(dep)
    c = container(dep, "adapter")
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["image"].startswith("energyd-adapter:")
    assert container(find(base, "DaemonSet", "energyd"), "energyd")["image"].startswith("energyd:")
    token = next(e for e in c["env"] if e["name"] == "ADAPTER_API_TOKEN")["valueFrom"]["secretKeyRef"]
    assert token == {"name": "adapter-api-token", "key": "token", "optional": True}
    # Referenced, never shipped: re-applying any tree must not reset a real token.
    for tree, objects in rendered.items():
        assert not [o for o in objects if o["kind"] == "Secret"], tree
    # The adapter's own parser accepts the arguments; the profiles are those the image ships as
    # package data, so no copy of them lives in deploy/ to go stale.
    args = adapter_parser().parse_args([*c["command"][1:], *c["args"]])
    assert Path(args.profiles) == default_profiles_dir()
    assert {"video", "nlp"} <= set(load_profiles(args.profiles))
    assert not [o for o in base if o["kind"] == "ConfigMap"]
    # Until the Secret is created the variable is absent: no token, so the API refuses apply.
    monkeypatch.delenv("ADAPTER_API_TOKEN", raising=False)
    assert settings_from_args(args).api_token is None


def test_energyd_cli_accepts_the_daemonset_arguments(base: list[Manifest]) -> None:
    c = container(find(base, "DaemonSet", "energyd"), "energyd")
    flags = sorted(a.split("=", 1)[0] for a in c["args"] if a.startswith("--"))
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from energyd.cli import main; sys.exit(main())", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [f for f in flags if f not in out] == []


def test_services_select_their_pods_and_are_scrapable(base: list[Manifest]) -> None:
    workloads = [o for o in base if o["kind"] in ("DaemonSet", "Deployment")]
    for service in (o for o in base if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        selected = [
            w for w in workloads if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, service["metadata"]["name"]
        ports = {
            p["name"]: p["containerPort"] for c in pod_spec(selected[0])["containers"] for p in c["ports"]
        }
        annotations = service["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == service["spec"]["ports"][0]["port"]
        for port in service["spec"]["ports"]:
            assert ports[port["targetPort"]] == port["port"]


def test_service_monitors_match_their_services(base: list[Manifest]) -> None:
    monitors = [o for o in base if o["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {"energyd", "adapter"}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        spec = monitor["spec"]
        assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel", "honorLabels"}
        services = [
            s
            for s in base
            if s["kind"] == "Service"
            and spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
            and s["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
        ]
        # One Service each, named like the monitor: its name becomes the job label the alerts use.
        assert [s["metadata"]["name"] for s in services] == [monitor["metadata"]["name"]]
        port_names = {p["name"] for p in services[0]["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
            assert endpoint["interval"].endswith("s")


def test_user_profiles_overlay_mounts_its_configmap_as_the_profiles(
    base: list[Manifest], user_profiles: list[Manifest]
) -> None:
    dep = find(user_profiles, "Deployment", "adapter")
    c = container(dep, "adapter")
    volumes = {v["name"]: v for v in pod_spec(dep)["volumes"]}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "profiles")
    config_map = find(user_profiles, "ConfigMap", volumes["profiles"]["configMap"]["name"])
    args = adapter_parser().parse_args([*c["command"][1:], *c["args"]])
    assert Path(args.profiles) == Path(mount["mountPath"]) and mount["readOnly"] is True
    # The base's arguments stay as they were, with --profiles appended.
    assert c["args"] == [
        *container(find(base, "Deployment", "adapter"), "adapter")["args"],
        f"--profiles={mount['mountPath']}",
    ]
    data = config_map["data"]
    assert data
    for filename, text in data.items():
        profile = parse_profile(yaml.safe_load(text), filename)
        assert filename == f"{profile.pipeline}.yaml"
    # Everything else is the base, untouched.
    rest = [o for o in user_profiles if o["kind"] not in ("Deployment", "ConfigMap")]
    assert rest == [o for o in base if o["kind"] != "Deployment"]


def test_example_pipeline_matches_its_profile(base: list[Manifest]) -> None:
    (sdep,) = load_documents(EXAMPLE)
    assert sdep["apiVersion"] == "machinelearning.seldon.io/v1" and sdep["kind"] == "SeldonDeployment"
    profile = load_profile(default_profiles_dir() / "video.yaml")
    assert sdep["metadata"]["name"] == profile.pipeline
    (predictor,) = sdep["spec"]["predictors"]
    graph_nodes, node = [], predictor["graph"]
    while node:
        assert node["type"] == "MODEL"
        graph_nodes.append(node["name"])
        node = node["children"][0] if node["children"] else None
    assert graph_nodes == [s.name for s in profile.stages]
    for component in predictor["componentSpecs"]:
        # Each componentSpec's pod spec is a real PodSpec: validate it as one.
        validate(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": component["spec"]}
        )
        (c,) = component["spec"]["containers"]
        stage = next(s for s in profile.stages if s.name == c["name"])
        env = {e["name"]: e["value"] for e in c["env"]}
        variant = stage.variant(env["MODEL_VARIANT"])
        variant.batch(int(env["MLSERVER_MODEL_MAX_BATCH_SIZE"]))
        assert component["replicas"] >= 1


def test_the_prometheus_rule_is_rules_yaml(base: list[Manifest]) -> None:
    rule = find(base, "PrometheusRule", "energyd")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["metadata"]["namespace"] == ADAPTER_NS
    assert rule["spec"] == yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())
    # The committed object is what the generator writes, byte for byte (comments included).
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_kube_prometheus_overlay_lets_prometheus_k8s_discover_both_namespaces(
    base: list[Manifest], rendered: dict[str, list[Manifest]]
) -> None:
    overlay = rendered["kube_prometheus"]
    added = [o for o in overlay if o not in base]
    assert len(overlay) == len(base) + len(added)
    monitored = {
        ns
        for m in base
        if m["kind"] == "ServiceMonitor"
        for ns in m["spec"]["namespaceSelector"]["matchNames"]
    }
    assert monitored == {ENERGYD_NS, ADAPTER_NS}
    roles = {o["metadata"]["namespace"]: o for o in added if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"]: o for o in added if o["kind"] == "RoleBinding"}
    assert len(added) == 4 and set(roles) == set(bindings) == monitored
    for namespace in monitored:
        assert grants(roles[namespace]) == {
            *(("", r, v) for r in ("services", "endpoints", "pods") for v in ("get", "list", "watch")),
            *(("discovery.k8s.io", "endpointslices", v) for v in ("get", "list", "watch")),
        }
        assert bindings[namespace]["roleRef"]["name"] == roles[namespace]["metadata"]["name"]
        assert bindings[namespace]["subjects"] == [
            {"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}
        ]


def test_kube_prometheus_stack_overlay_labels_what_its_prometheus_selects(
    base: list[Manifest], rendered: dict[str, list[Manifest]]
) -> None:
    overlay = rendered["kube_prometheus_stack"]
    selected = [o for o in overlay if o["kind"] in ("ServiceMonitor", "PrometheusRule")]
    assert len(selected) == 3
    for obj in selected:
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        unlabelled = copy.deepcopy(obj)
        del unlabelled["metadata"]["labels"]["release"]
        assert unlabelled in base
    rest = [o for o in overlay if o not in selected and o["kind"] != "ConfigMap"]
    assert rest == [o for o in base if o["kind"] not in ("ServiceMonitor", "PrometheusRule")]
    (dashboards,) = [o for o in overlay if o["kind"] == "ConfigMap"]
    assert dashboards == rendered["grafana"][0]


def test_grafana_configmap_carries_the_committed_dashboards(rendered: dict[str, list[Manifest]]) -> None:
    (config_map,) = rendered["grafana"]
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["name"] == "energyd-dashboards"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    committed = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert {p.name: p.read_text() for p in committed} == config_map["data"]
    # kubectl apply (client-side) keeps the whole object in an annotation capped at 256 KiB.
    assert len(yaml.safe_dump(config_map)) < 256 * 1024


def test_readme_shows_the_apply_lines_for_both_prometheus_setups() -> None:
    readme = (REPO / "README.md").read_text()
    for overlay in ("kube-prometheus", "kube-prometheus-stack"):
        line = f"kubectl apply -k deploy/overlays/{overlay}"
        assert line in readme.splitlines() or f"{line}  " in readme or f"{line}\n" in readme
        assert (DEPLOY / "overlays" / overlay / "kustomization.yaml").is_file()
