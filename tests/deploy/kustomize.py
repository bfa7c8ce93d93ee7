"""A reader for the small subset of kustomize that deploy/ uses, so the manifest tests need no
kubectl: `resources` (files and directories), `namespace`, strategic-merge `patches` on the
lists deploy/ patches, JSON `patches` with a `target` (op `add` only), and a `configMapGenerator`
from `files` without the name hash (`generatorOptions`: `disableNameSuffixHash`, `labels`). tests/deploy/test_manifests.py checks it against `kubectl kustomize`
where kubectl exists, and that deploy/ uses no other kustomize field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "namespace", "resources", "patches", "configMapGenerator", "generatorOptions"}
)
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
    objects.extend(generate_config_maps(directory, spec))
    for patch in spec.get("patches", []):
        if "target" in patch:
            target = find(objects, patch["target"]["kind"], patch["target"]["name"])
            json_patch_add(target, yaml.safe_load((directory / patch["path"]).read_text()))
            continue
        for doc in load_documents(directory / patch["path"]):
            target = find(objects, doc["kind"], doc["metadata"]["name"])
            strategic_merge(target, doc)
    namespace = spec.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


def generate_config_maps(directory: Path, spec: dict[str, Any]) -> list[Manifest]:
    if "configMapGenerator" not in spec:
        return []
    options = spec.get("generatorOptions", {})
    if set(options) - {"disableNameSuffixHash", "labels"} or not options.get("disableNameSuffixHash"):
        raise ValueError(f"{directory}: only generatorOptions disableNameSuffixHash: true and labels")
    maps = []
    for generator in spec.get("configMapGenerator", []):
        if set(generator) != {"name", "files"}:
            raise ValueError(f"{directory}: configMapGenerator supports name and files only")
        data = {Path(f).name: (directory / f).read_text() for f in generator["files"]}
        metadata: dict[str, Any] = {"name": generator["name"]}
        if "labels" in options:
            metadata["labels"] = dict(options["labels"])
        maps.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return maps


def json_patch_add(target: Manifest, operations: list[dict[str, Any]]) -> None:
    """RFC 6902 `add`: into a mapping by key, or into a list by index ("-" appends)."""
    for op in operations:
        if op["op"] != "add":
            raise ValueError(f"JSON patch op {op['op']!r}: this reader implements add only")
        *parents, last = op["path"].lstrip("/").split("/")
        node: Any = target
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        value = copy.deepcopy(op["value"])
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), value)
        else:
            node[last] = value


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
