"""A reader for the small subset of kustomize that deploy/ uses, so the manifest tests need no
kubectl: `resources` (files and directories), `namespace`, and strategic-merge `patches` on the
lists deploy/ patches. tests/deploy/test_manifests.py checks it against `kubectl kustomize`
where kubectl exists, and that deploy/ uses no other kustomize field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "namespace", "resources", "patches"})
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"})
# Strategic merge keys of the pod-spec lists deploy/ patches; every other list is replaced.
MERGE_KEYS = {"containers": "name", "volumes": "name", "env": "name", "volumeMounts": "mountPath"}

Manifest = dict[str, Any]


def load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return data


def build(directory: Path) -> list[Manifest]:
    spec = kustomization(directory)
    unsupported = set(spec) - SUPPORTED_FIELDS
    if unsupported:
        raise ValueError(
            f"{directory}: kustomize fields this reader does not implement: {sorted(unsupported)}"
        )
    objects: list[Manifest] = []
    for resource in spec.get("resources", []):
        path = directory / resource
        objects.extend(build(path) if path.is_dir() else load_documents(path))
    for patch in spec.get("patches", []):
        for doc in load_documents(directory / patch["path"]):
            target = find(objects, doc["kind"], doc["metadata"]["name"])
            strategic_merge(target, doc)
    namespace = spec.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} objects of kind {kind} named {name}")
    return matches[0]


def strategic_merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        current = base.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            strategic_merge(current, value)
        elif isinstance(value, list) and isinstance(current, list) and key in MERGE_KEYS:
            merge_key = MERGE_KEYS[key]
            by_key = {item[merge_key]: item for item in current}
            added = []
            for item in value:
                if item[merge_key] in by_key:
                    strategic_merge(by_key[item[merge_key]], item)
                else:
                    added.append(copy.deepcopy(item))
            # kustomize puts the items a patch adds before the existing ones.
            base[key] = added + current
        else:
            base[key] = copy.deepcopy(value)
