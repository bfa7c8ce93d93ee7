"""The kustomize base and its overlays (perf, user-profiles), checked offline: every object against the Kubernetes
JSON schemas (kubernetes-validate, strict: unknown fields fail), the CRD objects structurally,
RBAC minimal, the DaemonSet's privileges, and the references between objects."""

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
from tests.deploy.kustomize import Manifest, build, find, kustomization, load_documents

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "base"
PERF = REPO / "deploy" / "overlays" / "perf"
USER_PROFILES = REPO / "deploy" / "overlays" / "user-profiles"
EXAMPLE = REPO / "deploy" / "examples" / "video-pipeline.yaml"
# The oldest Kubernetes we claim and the newest schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_GROUPS = ("monitoring.coreos.com/", "machinelearning.seldon.io/", "mlops.seldon.io/")
NAMESPACE = "energyd-system"


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
def base() -> list[Manifest]:
    return build(BASE)


@pytest.fixture(scope="module")
def perf() -> list[Manifest]:
    return build(PERF)


@pytest.fixture(scope="module")
def user_profiles() -> list[Manifest]:
    return build(USER_PROFILES)


def test_reader_matches_kubectl_kustomize(
    base: list[Manifest], perf: list[Manifest], user_profiles: list[Manifest]
) -> None:
    # The reader implements only the fields deploy/ uses; build() refuses any other, and where
    # kubectl exists its output must be the reader's, object for object.
    for directory in (BASE, PERF, USER_PROFILES):
        assert kustomization(directory)["kind"] == "Kustomization"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return
    for directory, ours in ((BASE, base), (PERF, perf), (USER_PROFILES, user_profiles)):
        out = subprocess.run(
            [kubectl, "kustomize", str(directory)], check=True, capture_output=True, text=True
        )
        theirs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]

        def key(o: Manifest) -> tuple[str, str, str]:
            return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])

        assert sorted(theirs, key=key) == sorted(ours, key=key)


@pytest.mark.parametrize("tree", ["base", "perf", "user_profiles"])
def test_builtin_objects_match_kubernetes_schemas(tree: str, request: pytest.FixtureRequest) -> None:
    objects: list[Manifest] = request.getfixturevalue(tree)
    builtin = [o for o in objects if not is_crd(o)]
    assert {o["kind"] for o in builtin} >= {"DaemonSet", "Deployment", "Service", "ClusterRole", "Secret"}
    for obj in builtin:
        validate(obj)


def test_schema_validation_rejects_a_broken_daemonset(base: list[Manifest]) -> None:
    broken = copy.deepcopy(find(base, "DaemonSet", "energyd"))
    container(broken, "energyd")["securityContext"]["readOnlyRootFilesytem"] = True  # typo'd field
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_every_namespaced_object_lands_in_energyd_system(
    base: list[Manifest], user_profiles: list[Manifest]
) -> None:
    for obj in [*base, *user_profiles]:
        if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
    assert find(base, "Namespace", NAMESPACE)


def test_rbac_is_minimal(base: list[Manifest]) -> None:
    roles = {o["metadata"]["name"]: o for o in base if o["kind"] in ("Role", "ClusterRole")}
    assert set(roles) == {"energyd", "energyd-adapter"}
    for role in roles.values():
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], field)

    def grants(role: Manifest) -> set[tuple[str, str, str]]:
        return {
            (g, r, v)
            for rule in role["rules"]
            for g in rule["apiGroups"]
            for r in rule["resources"]
            for v in rule["verbs"]
        }

    assert grants(roles["energyd"]) == {("", "pods", v) for v in ("get", "list", "watch")}
    assert grants(roles["energyd-adapter"]) == {
        (group, resource, verb)
        for group, resource in (
            ("machinelearning.seldon.io", "seldondeployments"),
            ("mlops.seldon.io", "models"),
        )
        for verb in ("get", "list", "patch")
    } | {("", "events", "create")}
    accounts = {o["metadata"]["name"] for o in base if o["kind"] == "ServiceAccount"}
    bindings = [o for o in base if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert {(b["roleRef"]["name"], b["subjects"][0]["name"]) for b in bindings} == {
        ("energyd", "energyd"),
        ("energyd-adapter", "adapter"),
    }
    for binding in bindings:
        assert binding["roleRef"]["name"] in roles
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert subject["name"] in accounts and subject["namespace"] == NAMESPACE
    assert find(base, "DaemonSet", "energyd")["spec"]["template"]["spec"]["serviceAccountName"] == "energyd"
    assert find(base, "Deployment", "adapter")["spec"]["template"]["spec"]["serviceAccountName"] == "adapter"


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
    assert sorted(host_paths.values()) == ["/proc", "/sys/class/powercap", "/sys/fs/cgroup"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    for name in host_paths:
        assert mounts[name]["readOnly"] is True, name
    # The root flags point at where the host paths are mounted.
    args = dict(a.removeprefix("--").split("=", 1) for a in c["args"] if a.startswith("--"))
    assert mounts["powercap"]["mountPath"] == args["sysfs-root"] + "/class/powercap"
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


def test_adapter_deployment_runs_as_non_root_with_the_token_from_the_secret(
    base: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = find(base, "Deployment", "adapter")
    spec = pod_spec(dep)
    c = container(dep, "adapter")
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    token = next(e for e in c["env"] if e["name"] == "ADAPTER_API_TOKEN")["valueFrom"]["secretKeyRef"]
    secret = find(base, "Secret", token["name"])
    # The placeholder holds no usable token: apply stays refused until a real one is created.
    assert secret["stringData"][token["key"]] == ""
    # The adapter's own parser accepts the arguments; the profiles are those the image ships as
    # package data, so no copy of them lives in deploy/ to go stale.
    args = adapter_parser().parse_args([*c["command"][1:], *c["args"]])
    assert Path(args.profiles) == default_profiles_dir()
    assert {"video", "nlp"} <= set(load_profiles(args.profiles))
    assert not [o for o in base if o["kind"] == "ConfigMap"]
    # What the container sees with the placeholder Secret: no token, so the API refuses apply.
    monkeypatch.setenv("ADAPTER_API_TOKEN", secret["stringData"][token["key"]])
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
        assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
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
