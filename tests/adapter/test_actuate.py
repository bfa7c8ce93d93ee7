"""The Seldon actuator through the real kubernetes client against a fake of the two endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi

from adapter.actuate import DryRunActuator
from adapter.actuate.seldon import SeldonActuator
from adapter.errors import ActuationError
from adapter.problem import Decision, StageChoice
from adapter.standin.kube import KubeStore
from tests.kube import RecordingStore, serve_fake_kube

SDEP = KubeStore.object_path("machinelearning.seldon.io", "v1", "prod", "seldondeployments", "video")


def decision(detect: tuple[str, int, int], classify: tuple[str, int, int]) -> Decision:
    stages = tuple(
        StageChoice(stage, variant, replicas, batch, 0.1, 0.0, 1.0, float(replicas))
        for stage, (variant, replicas, batch) in (("detect", detect), ("classify", classify))
    )
    return Decision(True, 1.0, stages, 50.0, 2.0, 2.0, 0.2, 10.0, "exhaustive", 0.001, None)


def seldon_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "video", "namespace": "prod"},
        "spec": {
            "predictors": [
                {
                    "name": "default",
                    "graph": {
                        "name": "detect",
                        "type": "MODEL",
                        "children": [{"name": "classify", "type": "MODEL", "children": []}],
                    },
                    "componentSpecs": [
                        {
                            "replicas": 1,
                            "spec": {
                                "containers": [
                                    {
                                        "name": "detect",
                                        "image": "yolo:1",
                                        "env": [
                                            {"name": "MODEL_VARIANT", "value": "yolov5n"},
                                            {"name": "X", "value": "y"},
                                        ],
                                    }
                                ]
                            },
                        },
                        {"replicas": 1, "spec": {"containers": [{"name": "classify", "image": "resnet:1"}]}},
                    ],
                }
            ]
        },
    }


@pytest.fixture
def kube() -> Iterator[tuple[RecordingStore, CustomObjectsApi]]:
    with serve_fake_kube() as (fake, api):
        fake.put_object(SDEP, seldon_deployment())
        yield fake, api


def test_v1_patch_sets_replicas_variant_and_batch_then_nothing(
    kube: tuple[RecordingStore, CustomObjectsApi],
) -> None:
    fake, api = kube
    actuator = SeldonActuator(
        api, namespace="prod", apply=True, variant_uris={"resnet50": "gs://models/resnet50"}
    )
    version = fake.stored(SDEP)["metadata"]["resourceVersion"]
    assert actuator.apply("video", decision(("yolov5s", 3, 2), ("resnet50", 2, 4))) is True

    [patch] = fake.patches()
    assert patch.path == SDEP
    assert patch.content_type == "application/merge-patch+json"
    wanted = seldon_deployment()["spec"]["predictors"]
    detect, classify = wanted[0]["componentSpecs"]
    detect["replicas"] = 3
    detect["spec"]["containers"][0]["env"] = [
        {"name": "MODEL_VARIANT", "value": "yolov5s"},
        {"name": "X", "value": "y"},
        {"name": "MLSERVER_MODEL_MAX_BATCH_SIZE", "value": "2"},
    ]
    classify["replicas"] = 2
    classify["spec"]["containers"][0]["env"] = [
        {"name": "MODEL_VARIANT", "value": "resnet50"},
        {"name": "MLSERVER_MODEL_MAX_BATCH_SIZE", "value": "4"},
    ]
    wanted[0]["graph"]["children"][0]["modelUri"] = "gs://models/resnet50"
    assert patch.body == {"metadata": {"resourceVersion": version}, "spec": {"predictors": wanted}}
    assert fake.stored(SDEP)["spec"]["predictors"] == wanted

    # The same decision again: a GET, no PATCH.
    assert actuator.apply("video", decision(("yolov5s", 3, 2), ("resnet50", 2, 4))) is False
    assert len(fake.patches()) == 1
    assert [r.method for r in fake.requests] == ["GET", "PATCH", "GET"]


def test_v1_a_concurrent_edit_is_refused_not_overwritten(
    kube: tuple[RecordingStore, CustomObjectsApi],
) -> None:
    fake, api = kube
    original = fake.get_object

    def edit_after_get(path: str) -> dict[str, Any] | None:
        answer = original(path)
        fake.put_object(SDEP, fake.stored(SDEP))  # someone else scales the object right after our read
        return answer

    fake.get_object = edit_after_get  # type: ignore[method-assign]
    with pytest.raises(ActuationError, match="409"):
        SeldonActuator(api, namespace="prod", apply=True).apply(
            "video", decision(("yolov5s", 3, 2), ("resnet50", 2, 4))
        )


def test_dry_run_reads_but_never_patches(kube: tuple[RecordingStore, CustomObjectsApi]) -> None:
    fake, api = kube
    actuator = SeldonActuator(api, namespace="prod")  # apply defaults to False
    assert actuator.dry_run
    assert actuator.apply("video", decision(("yolov5s", 3, 2), ("resnet50", 2, 4))) is True
    assert fake.patches() == []
    assert fake.stored(SDEP)["spec"] == seldon_deployment()["spec"]


def test_v1_errors_name_what_is_missing(kube: tuple[RecordingStore, CustomObjectsApi]) -> None:
    _, api = kube
    with pytest.raises(ActuationError, match="404"):
        SeldonActuator(api, namespace="prod", apply=True).apply("nlp", decision(("a", 1, 1), ("b", 1, 1)))
    broken = decision(("yolov5s", 1, 1), ("resnet50", 1, 1))
    broken = Decision(
        **{**vars(broken), "stages": (*broken.stages, StageChoice("track", "x", 1, 1, 0, 0, 0, 1))}
    )
    with pytest.raises(ActuationError, match="no container named after stage 'track'"):
        SeldonActuator(api, namespace="prod", apply=True).apply("video", broken)
    with pytest.raises(ActuationError, match="no predictor 'canary'"):
        SeldonActuator(api, namespace="prod", predictor="canary").apply("video", broken)


def test_v2_models_get_replicas_and_storage_uri_then_nothing() -> None:
    uris = {v: f"gs://models/{v}" for v in ("yolov5n", "yolov5s", "resnet18", "resnet50")}
    with serve_fake_kube() as (fake, api):
        for stage, variant in (("detect", "yolov5n"), ("classify", "resnet18")):
            path = KubeStore.object_path("mlops.seldon.io", "v1alpha1", "default", "models", stage)
            fake.put_object(
                path,
                {
                    "kind": "Model",
                    "metadata": {"name": stage},
                    "spec": {"storageUri": uris[variant], "replicas": 1},
                },
            )
        actuator = SeldonActuator(api, version="v2", apply=True, variant_uris=uris)
        assert actuator.apply("video", decision(("yolov5s", 2, 4), ("resnet18", 3, 1))) is True
        assert [(p.path.rsplit("/", 1)[1], p.body) for p in fake.patches()] == [
            ("detect", {"spec": {"replicas": 2, "storageUri": "gs://models/yolov5s"}}),
            ("classify", {"spec": {"replicas": 3}}),
        ]
        assert actuator.apply("video", decision(("yolov5s", 2, 4), ("resnet18", 3, 1))) is False
        assert len(fake.patches()) == 2
        with pytest.raises(ActuationError, match="no storageUri configured for variant 'resnet152'"):
            actuator.apply("video", decision(("yolov5s", 2, 4), ("resnet152", 3, 1)))


def test_unreachable_api_server_is_an_actuation_error() -> None:
    with serve_fake_kube() as (_, api):
        pass  # the server is gone once the block ends
    with pytest.raises(ActuationError, match="unreachable"):
        SeldonActuator(api, apply=True, request_timeout_s=1).apply(
            "video", decision(("a", 1, 1), ("b", 1, 1))
        )


def test_dry_run_actuator_records_and_reports_changes() -> None:
    actuator = DryRunActuator(keep=2)
    first = decision(("yolov5s", 3, 2), ("resnet50", 2, 4))
    assert actuator.apply("video", first) is True
    assert actuator.apply("video", first) is False
    assert actuator.apply("video", decision(("yolov5s", 4, 2), ("resnet50", 2, 4))) is True
    assert actuator.current["video"] == (("detect", "yolov5s", 4, 2), ("classify", "resnet50", 2, 4))
    assert len(actuator.applied) == 2


def test_v1_stages_sharing_a_component_get_the_larger_replica_count() -> None:
    shared = seldon_deployment()
    components = shared["spec"]["predictors"][0]["componentSpecs"]
    components[0]["spec"]["containers"] += components.pop()["spec"]["containers"]
    with serve_fake_kube() as (fake, api):
        fake.put_object(SDEP, shared)
        SeldonActuator(api, namespace="prod", apply=True).apply(
            "video", decision(("yolov5s", 2, 1), ("resnet50", 5, 1))
        )
        [component] = fake.stored(SDEP)["spec"]["predictors"][0]["componentSpecs"]
    assert component["replicas"] == 5


def test_v1_each_patch_posts_an_event_saying_what_changed(
    kube: tuple[RecordingStore, CustomObjectsApi],
) -> None:
    fake, api = kube
    actuator = SeldonActuator(api, namespace="prod", apply=True, events=CoreV1Api(api.api_client))
    assert actuator.apply("video", decision(("yolov5s", 3, 2), ("resnet50", 2, 4))) is True
    assert (
        actuator.apply("video", decision(("yolov5s", 3, 2), ("resnet50", 2, 4))) is False
    )  # no patch, no Event
    assert actuator.apply("video", decision(("yolov5s", 1, 2), ("resnet50", 2, 4))) is True
    first, second = fake.events("prod")
    assert first["reason"] == "Reconfigured" and first["type"] == "Normal"
    assert (
        first["involvedObject"]["kind"] == "SeldonDeployment" and first["involvedObject"]["name"] == "video"
    )
    assert first["metadata"]["name"].startswith("video.")
    assert first["source"]["component"] == "energyd-adapter"
    # The object had yolov5n, one replica, no batch set; classify no variant either.
    assert first["message"] == "detect: yolov5n x1 b0 -> yolov5s x3 b2; classify: ? x1 b0 -> resnet50 x2 b4"
    assert second["message"] == "detect: yolov5s x3 b2 -> yolov5s x1 b2"


def test_a_failed_event_does_not_fail_the_apply(kube: tuple[RecordingStore, CustomObjectsApi]) -> None:
    fake, api = kube
    fake.create_event = lambda namespace, body: (500, {"kind": "Status", "code": 500})  # type: ignore[method-assign]
    actuator = SeldonActuator(api, namespace="prod", apply=True, events=CoreV1Api(api.api_client))
    assert actuator.apply("video", decision(("yolov5s", 3, 2), ("resnet50", 2, 4))) is True
    assert fake.stored(SDEP)["spec"]["predictors"][0]["componentSpecs"][0]["replicas"] == 3
