"""The shipped DaemonSet, rendered by kustomize, sees RAPL: a container view holding only what
the manifest mounts, built from a host tree with sysfs's real links, is handed to energyd's own
source selection through the manifest's own --*-root arguments.

The host tree is tests/energyd/fixture_trees's: /sys/class/powercap/intel-rapl:N are relative
links into /sys/devices/virtual/powercap, /sys/bus/event_source/devices/power links to
/sys/devices/power. A mount copies the host directory with its links as they are (a bind
mount does not rewrite them), so a link whose target the manifest does not mount dangles in
the view as it would in the container. perf is the replay stand-in the perf tests use.
"""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from energyd.config import Roots
from energyd.probe import probe
from energyd.sources.select import open_source
from tests.deploy.test_manifests import Manifest, find, kustomize
from tests.energyd import fixture_trees as ft

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "base"
PERF_OVERLAY = REPO / "deploy" / "overlays" / "perf"
FIXTURES = REPO / "tests" / "energyd" / "fixtures"
PERF = (
    sys.executable,
    str(FIXTURES / "replay_perf.py"),
    str(FIXTURES / "perf-intel-2s" / "perf-stat-I1000-pkg-ram.csv"),
)


def energyd_container(objects: list[Manifest]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec: dict[str, Any] = find(objects, "DaemonSet", "energyd")["spec"]["template"]["spec"]
    return spec, next(c for c in spec["containers"] if c["name"] == "energyd")


def host_mounts(spec: dict[str, Any], container: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each hostPath the container mounts; all must be read-only."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = []
    for m in container["volumeMounts"]:
        volume = volumes[m["name"]]
        if "hostPath" in volume:
            assert m.get("readOnly") is True, f"{m['mountPath']} is not mounted read-only"
            mounts.append((volume["hostPath"]["path"], m["mountPath"]))
    return mounts


def container_view(host: Path, mounts: list[tuple[str, str]], view: Path) -> None:
    """What the container sees: each mounted host directory copied (links as they are) to its
    mount path, parents before the mounts nested in them; nothing else of the host."""
    for host_path, mount_path in sorted(mounts, key=lambda m: m[1].count("/")):
        source = host / host_path.lstrip("/")
        assert source.is_dir(), f"hostPath {host_path} does not exist on the host tree"
        shutil.copytree(source, view / mount_path.lstrip("/"), symlinks=True, dirs_exist_ok=True)


def roots_in(view: Path, container: dict[str, Any]) -> Roots:
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"] if a.startswith("--"))
    return Roots(
        sysfs=view / args["sysfs-root"].lstrip("/"),
        procfs=view / args["procfs-root"].lstrip("/"),
        cgroup=view / args["cgroup-root"].lstrip("/"),
    )


def rapl_host(root: Path, *, powercap: bool = True) -> Path:
    """A 2-socket Xeon host's /sys and /proc; without `powercap`, the RAPL MSR driver is not
    loaded (the class exists, empty) but the perf PMU is there."""
    sysfs = root / "sys"
    if powercap:
        ft.intel_2s(sysfs)
    else:
        (sysfs / "class" / "powercap").mkdir(parents=True)
    ft.write_power_events(sysfs)
    (sysfs / "fs" / "cgroup").mkdir(parents=True)
    (sysfs / "kernel" / "debug").mkdir(parents=True)  # the rest of /sys, which is not mounted
    ft.write_proc_stat(root / "proc", user=5, idle=95)
    return root


def view_of(objects: list[Manifest], host: Path, view: Path) -> Roots:
    spec, container = energyd_container(objects)
    container_view(host, host_mounts(spec, container), view)
    return roots_in(view, container)


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    return kustomize(BASE)


@pytest.fixture(scope="module")
def perf_overlay() -> list[Manifest]:
    return kustomize(PERF_OVERLAY)


def test_base_daemonset_selects_powercap(base: list[Manifest], tmp_path: Path) -> None:
    roots = view_of(base, rapl_host(tmp_path / "host"), tmp_path / "view")
    source, passed_over = open_source("auto", roots, perf_command=PERF)
    zones = sorted(z.name for z in source.zones())
    source.close()
    assert (source.name, passed_over) == ("powercap", [])
    assert zones == ["core-0", "core-1", "dram-0", "dram-1", "package-0", "package-1"]
    # /sys/kernel (debugfs and the like) is not in the view: only what the manifest mounts.
    assert not (roots.sysfs / "kernel").exists()


def test_perf_overlay_reads_powercap_and_perf_and_falls_back_to_perf(
    perf_overlay: list[Manifest], tmp_path: Path
) -> None:
    roots = view_of(perf_overlay, rapl_host(tmp_path / "host"), tmp_path / "view")
    results = {r.source: r for r in probe(roots, PERF, interval_s=0.05)}
    assert results["powercap"].works and results["perf"].works, results
    assert results["perf"].zones == ("dram", "package")
    # A host without the RAPL MSR driver: auto walks on to perf, which the overlay makes work.
    roots = view_of(perf_overlay, rapl_host(tmp_path / "host2", powercap=False), tmp_path / "view2")
    source, passed_over = open_source("auto", roots, interval_s=0.05, perf_command=PERF)
    source.close()
    assert source.name == "perf" and [p.source for p in passed_over] == ["powercap"]


def test_base_without_the_overlay_has_no_perf(base: list[Manifest], tmp_path: Path) -> None:
    roots = view_of(base, rapl_host(tmp_path / "host", powercap=False), tmp_path / "view")
    source, passed_over = open_source("auto", roots, interval_s=0.05, perf_command=PERF)
    source.close()
    assert source.name == "estimate"
    assert "no RAPL perf PMU" in passed_over[1].reason


def only_class_powercap(objects: list[Manifest]) -> list[Manifest]:
    """The manifests as they were: /sys/class/powercap mounted alone, and (perf overlay)
    /sys/bus/event_source without the device tree its link points into."""
    old = copy.deepcopy(objects)
    spec, container = energyd_container(old)
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] not in ("sys-class", "sys-devices")]
    spec["volumes"].append({"name": "powercap", "hostPath": {"path": "/sys/class/powercap", "type": ""}})
    container["volumeMounts"] = [
        m for m in container["volumeMounts"] if m["name"] not in ("sys-class", "sys-devices")
    ]
    container["volumeMounts"].append(
        {"name": "powercap", "mountPath": "/host/sys/class/powercap", "readOnly": True}
    )
    return old


def test_the_old_mounts_would_fall_back_to_the_estimate(
    base: list[Manifest], perf_overlay: list[Manifest], tmp_path: Path
) -> None:
    host = rapl_host(tmp_path / "host")
    roots = view_of(only_class_powercap(base), host, tmp_path / "view")
    source, passed_over = open_source("auto", roots, perf_command=PERF)
    source.close()
    assert source.name == "estimate"
    assert "dangling link" in passed_over[0].reason and "/sys/devices" in passed_over[0].fix
    roots = view_of(only_class_powercap(perf_overlay), host, tmp_path / "view-perf")
    results = {r.source: r for r in probe(roots, PERF, interval_s=0.05)}
    assert not results["powercap"].works and not results["perf"].works
    assert "devices/power" in results["perf"].reason and "which is not there" in results["perf"].reason
