"""deploy/overlays/gpu, checked like the other overlays: the offline reader against real
`kubectl kustomize`, every object against the Kubernetes schemas, and the overlay adding only the
NVIDIA runtime's variables: no privilege, no capability, no host namespace, nothing else moved."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_manifests import (
    TREES,
    Manifest,
    container,
    find,
    is_crd,
    kustomize,
    pod_spec,
    validate,
)

GPU = Path(__file__).resolve().parents[2] / "deploy" / "overlays" / "gpu"


@pytest.fixture(scope="module")
def gpu() -> list[Manifest]:
    return kustomize(GPU)


def test_the_overlay_is_the_base_and_its_patch() -> None:
    spec = yaml.safe_load((GPU / "kustomization.yaml").read_text())
    assert spec["resources"] == ["../../base"]


def test_objects_match_the_kubernetes_schemas(gpu: list[Manifest]) -> None:
    for obj in gpu:
        if not is_crd(obj):
            validate(obj)


def test_the_overlay_adds_the_nvidia_runtime_variables_and_nothing_else(gpu: list[Manifest]) -> None:
    base = kustomize(TREES["base"])
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
