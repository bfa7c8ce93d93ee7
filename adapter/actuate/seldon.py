"""Apply a decision to Seldon Core through the Kubernetes API (CustomObjectsApi).

Seldon Core v1 (`machinelearning.seldon.io/v1`, SeldonDeployment): the pipeline is one
SeldonDeployment; each stage is the graph node and container of the same name inside one of
the predictor's `componentSpecs`. A decision sets that componentSpec's `replicas`, the
container's env `MODEL_VARIANT` and `MLSERVER_MODEL_MAX_BATCH_SIZE` (as IPA does), and the
node's `modelUri` when a URI is configured for the variant.

Seldon Core v2 (`mlops.seldon.io/v1alpha1`, Model): each stage is one Model; a decision sets
`spec.replicas` and `spec.storageUri` from the configured variant -> URI map. v2 has no
per-Model batch setting, so the batch size is not applied there.

Every apply GETs first and patches only what differs (JSON merge patch), so repeating a decision
sends nothing. Merge patches replace lists whole, so the v1 patch carries the object's
`resourceVersion`: a concurrent edit makes the API server answer 409 instead of being lost.
With `apply=False` (the default) the patches are computed and logged, never sent.

Each patch sent is announced by a Kubernetes Event on the patched object (core v1, reason
`Reconfigured`, type Normal, the message "detect: yolov5n x1 b1 -> yolov5s x2 b1; ..." per stage
changed), so `kubectl describe` and `kubectl get events` show what the adapter did and when.
The Event is a report, not the change: failing to post it is logged and the apply still counts.
"""

from __future__ import annotations

import copy
import datetime
import logging
from collections.abc import Mapping
from typing import Any, Literal

import urllib3
from kubernetes.client import (
    CoreV1Api,
    CoreV1Event,
    CustomObjectsApi,
    V1EventSource,
    V1ObjectMeta,
    V1ObjectReference,
)
from kubernetes.client.exceptions import ApiException

from adapter.actuate.dryrun import Configuration, describe_change
from adapter.errors import ActuationError
from adapter.problem import Decision, StageChoice

logger = logging.getLogger(__name__)

V1 = ("machinelearning.seldon.io", "v1", "seldondeployments")
V2 = ("mlops.seldon.io", "v1alpha1", "models")
VARIANT_ENV = "MODEL_VARIANT"
BATCH_ENV = "MLSERVER_MODEL_MAX_BATCH_SIZE"
EVENT_REASON = "Reconfigured"
EVENT_COMPONENT = "energyd-adapter"


def _set_env(container: dict[str, Any], name: str, value: str) -> None:
    env = container.setdefault("env", [])
    for item in env:
        if item.get("name") == name:
            item.pop("valueFrom", None)
            item["value"] = value
            return
    env.append({"name": name, "value": value})


def _stage_configuration(predictor: dict[str, Any], stages: list[str]) -> Configuration:
    """(stage, MODEL_VARIANT, replicas, batch) of each stage's container in a v1 predictor, as
    set now ("?" / 0 for what is not set)."""
    found = []
    for stage in stages:
        for component in predictor.get("componentSpecs") or ():
            container = next(
                (c for c in component.get("spec", {}).get("containers") or () if c.get("name") == stage), None
            )
            if container is not None:
                env = {e.get("name"): e.get("value") for e in container.get("env") or ()}
                batch = str(env.get(BATCH_ENV) or "0")
                found.append(
                    (stage, str(env.get(VARIANT_ENV) or "?"), int(component.get("replicas") or 1),
                     int(batch) if batch.isdigit() else 0)
                )  # fmt: skip
                break
    return tuple(found)


def _graph_node(node: dict[str, Any], name: str) -> dict[str, Any] | None:
    if node.get("name") == name:
        return node
    for child in node.get("children") or ():
        found = _graph_node(child, name)
        if found is not None:
            return found
    return None


class SeldonActuator:
    def __init__(
        self,
        api: CustomObjectsApi,
        namespace: str = "default",
        version: Literal["v1", "v2"] = "v1",
        apply: bool = False,
        deployment_template: str = "{pipeline}",
        model_template: str = "{stage}",
        predictor: str | None = None,
        variant_uris: Mapping[str, str] | None = None,
        request_timeout_s: float = 10.0,
        events: CoreV1Api | None = None,
    ) -> None:
        if version not in ("v1", "v2"):
            raise ValueError(f"Seldon version must be v1 or v2, got {version!r}")
        self._api = api
        self.namespace = namespace
        self.version = version
        self.dry_run = not apply
        self.deployment_template = deployment_template
        self.model_template = model_template
        self.predictor = predictor
        self.variant_uris = dict(variant_uris or {})
        self.request_timeout_s = request_timeout_s
        self._events = events  # None: no Events are posted

    def apply(self, pipeline: str, decision: Decision) -> bool:
        try:
            if self.version == "v1":
                return self._apply_v1(pipeline, decision)
            return self._apply_v2(pipeline, decision)
        except ApiException as exc:
            raise ActuationError(f"Kubernetes API answered {exc.status} {exc.reason}: {exc.body!r}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ActuationError(f"Kubernetes API unreachable: {exc}") from exc

    def _get(self, kind: tuple[str, str, str], name: str) -> dict[str, Any]:
        group, version, plural = kind
        obj = self._api.get_namespaced_custom_object(
            group, version, self.namespace, plural, name, _request_timeout=self.request_timeout_s
        )
        if not isinstance(obj, dict):
            raise ActuationError(
                f"{plural} {self.namespace}/{name}: the API answered {type(obj).__name__}, not an object"
            )
        return obj

    def _patch(self, kind: tuple[str, str, str], name: str, body: dict[str, Any]) -> None:
        group, version, plural = kind
        if self.dry_run:
            logger.info("dry run: would patch %s/%s %s/%s with %s", group, plural, self.namespace, name, body)
            return
        logger.info("patching %s/%s %s/%s", group, plural, self.namespace, name)
        self._api.patch_namespaced_custom_object(
            group, version, self.namespace, plural, name, body, _request_timeout=self.request_timeout_s
        )

    def _announce(self, obj: dict[str, Any], kind: str, message: str) -> None:
        """Logs what changed and, with an events client, posts it as an Event on `obj`."""
        metadata = obj.get("metadata", {})
        name = str(metadata.get("name", ""))
        if self.dry_run:
            logger.info("dry run: would reconfigure %s %s/%s: %s", kind, self.namespace, name, message)
            return
        logger.info("reconfigured %s %s/%s: %s", kind, self.namespace, name, message)
        if self._events is None:
            return
        now = datetime.datetime.now(datetime.UTC)
        event = CoreV1Event(
            metadata=V1ObjectMeta(generate_name=f"{name}.", namespace=self.namespace),
            involved_object=V1ObjectReference(
                api_version=obj.get("apiVersion"),
                kind=kind,
                name=name,
                namespace=self.namespace,
                uid=metadata.get("uid"),
            ),
            reason=EVENT_REASON,
            message=message,
            type="Normal",
            source=V1EventSource(component=EVENT_COMPONENT),
            reporting_component=EVENT_COMPONENT,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        try:
            self._events.create_namespaced_event(
                self.namespace, event, _request_timeout=self.request_timeout_s
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            logger.warning("could not post the %s Event on %s %s: %s", EVENT_REASON, kind, name, exc)

    def _apply_v1(self, pipeline: str, decision: Decision) -> bool:
        name = self.deployment_template.format(pipeline=pipeline)
        obj = self._get(V1, name)
        predictors: list[dict[str, Any]] = obj.get("spec", {}).get("predictors") or []
        wanted = copy.deepcopy(predictors)
        index = next(
            (i for i, p in enumerate(wanted) if self.predictor is None or p.get("name") == self.predictor),
            None,
        )
        if index is None:
            raise ActuationError(f"SeldonDeployment {name} has no predictor {self.predictor!r}")
        sized: dict[int, int] = {}  # id(componentSpec) -> replicas this decision gives it
        for choice in decision.stages:
            self._set_stage_v1(name, wanted[index], choice, sized)
        if wanted == predictors:
            return False
        body = {
            "metadata": {"resourceVersion": obj.get("metadata", {}).get("resourceVersion")},
            "spec": {"predictors": wanted},
        }
        self._patch(V1, name, body)
        stages = [c.stage for c in decision.stages]
        before = _stage_configuration(predictors[index], stages)
        self._announce(
            obj, "SeldonDeployment", describe_change(before, _stage_configuration(wanted[index], stages))
        )
        return True

    def _set_stage_v1(
        self, name: str, predictor: dict[str, Any], choice: StageChoice, sized: dict[int, int]
    ) -> None:
        for component in predictor.get("componentSpecs") or ():
            containers = component.get("spec", {}).get("containers") or ()
            container = next((c for c in containers if c.get("name") == choice.stage), None)
            if container is None:
                continue
            # Stages whose containers share one componentSpec share its pods: the larger count
            # carries both loads.
            sized[id(component)] = max(choice.replicas, sized.get(id(component), 0))
            component["replicas"] = sized[id(component)]
            _set_env(container, VARIANT_ENV, choice.variant)
            _set_env(container, BATCH_ENV, str(choice.batch))
            uri = self.variant_uris.get(choice.variant)
            node = _graph_node(predictor.get("graph") or {}, choice.stage)
            if uri is not None and node is not None:
                node["modelUri"] = uri
            return
        raise ActuationError(f"SeldonDeployment {name} has no container named after stage {choice.stage!r}")

    def _apply_v2(self, pipeline: str, decision: Decision) -> bool:
        changed = False
        for choice in decision.stages:
            name = self.model_template.format(pipeline=pipeline, stage=choice.stage)
            model = self._get(V2, name)
            spec = model.get("spec", {})
            uri = self.variant_uris.get(choice.variant)
            if uri is None:
                # In v2 the storageUri *is* the variant: without one the switch cannot be made.
                raise ActuationError(f"Model {name}: no storageUri configured for variant {choice.variant!r}")
            wanted = {"replicas": choice.replicas, "storageUri": uri}
            patch = {key: value for key, value in wanted.items() if spec.get(key) != value}
            if patch:
                self._patch(V2, name, {"spec": patch})
                changes = ", ".join(f"{key} {spec.get(key)} -> {value}" for key, value in patch.items())
                self._announce(model, "Model", f"{choice.stage} ({choice.variant}): {changes}")
                changed = True
        return changed
