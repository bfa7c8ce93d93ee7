"""deploy/overlays/gpu, checked like the other overlays: the offline reader against real
`kubectl kustomize`, every object against the Kubernetes schemas, and the overlay adding only the
NVIDIA runtime's variables: no privilege, no capability, no host namespace, nothing else moved."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.kustomize import Manifest, build, find, kustomization
from tests.deploy.test_manifests import BASE, container, is_crd, pod_spec, validate

GPU = Path(__file__).resolve().parents[2] / "deploy" / "overlays" / "gpu"


@pytest.fixture(scope="module")
def gpu() -> list[Manifest]:
    return build(GPU)


def test_reader_matches_kubectl_kustomize(gpu: list[Manifest]) -> None:
    assert kustomization(GPU)["resources"] == ["../../base"]
    kubectl = shutil.which("kubectl")
    if kubectl is None:  # as in test_manifests: the reader alone, where kubectl is missing
        return
    out = subprocess.run([kubectl, "kustomize", str(GPU)], check=True, capture_output=True, text=True)
    theirs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]

    def key(o: Manifest) -> tuple[str, str, str]:
        return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])

    assert sorted(theirs, key=key) == sorted(gpu, key=key)


def test_objects_match_the_kubernetes_schemas(gpu: list[Manifest]) -> None:
    for obj in gpu:
        if not is_crd(obj):
            validate(obj)


def test_the_overlay_adds_the_nvidia_runtime_variables_and_nothing_else(gpu: list[Manifest]) -> None:
    base = build(BASE)
    before, after = find(base, "DaemonSet", "energyd"), copy.deepcopy(find(gpu, "DaemonSet", "energyd"))
    c = container(after, "energyd")
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"  # NVML only: no compute, no graphics
    sc = c["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    spec = pod_spec(after)
    assert not spec.get("hostPID") and not spec.get("hostNetwork") and not spec.get("hostIPC")
    # No GPU is requested: a DaemonSet holding nvidia.com/gpu would take GPUs from the workloads.
    assert "nvidia.com/gpu" not in str(c["resources"])
    # /proc/<pid>/cgroup of NVML's host pids is read through the host's /proc, already mounted.
    assert any(m["mountPath"] == "/host/proc" for m in c["volumeMounts"])
    # Apart from the two variables, the DaemonSet and every other object are the base's.
    c["env"] = [e for e in c["env"] if not e["name"].startswith("NVIDIA_")]
    assert after == before
    assert [o for o in gpu if o["kind"] != "DaemonSet"] == [o for o in base if o["kind"] != "DaemonSet"]
