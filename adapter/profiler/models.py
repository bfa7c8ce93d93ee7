"""The pipelines `adapter profile` knows: stages, variants, their published accuracies (each
cited) and how to build each variant as a `Prepare` for the measuring code, on a torch device
("cpu", or "cuda:N" for `--device cuda`).

Building imports torch (the optional `profile` extra); the catalogue itself does not. On a GPU
the classifiers are torchvision's own ResNets (random weights) where torchvision is installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapter.profiler.measure import Prepare

IMAGE_CLASSIFY_PX = 224
IMAGE_DETECT_PX = 640
SENTIMENT_TOKENS = 64
QA_TOKENS = 256

_TORCHVISION = "torchvision ResNet IMAGENET1K_V1 weights, ImageNet-1k val top-1 (torchvision model docs)"
_YOLOV5 = "ultralytics/yolov5 v6.0 release (README table), COCO val2017 mAP@0.5 at 640 px"
_SST2_DEV = "GLUE SST-2 dev accuracy, Sanh et al. 2019 (DistilBERT paper) Table 1"
_SST2_TEST = "GLUE SST-2 test accuracy, Devlin et al. 2019 (BERT paper) Table 1"
_SQUAD_DISTIL = "SQuAD v1.1 dev F1, Sanh et al. 2019 (DistilBERT paper) Table 2"
_SQUAD_BERT = "SQuAD v1.1 dev F1 (single model), Devlin et al. 2019 (BERT paper) Table 2"


@dataclass(frozen=True)
class VariantSpec:
    name: str
    accuracy: float
    accuracy_source: str
    build: Callable[[str], Prepare]  # torch device -> Prepare
    input_desc: str


@dataclass(frozen=True)
class StageSpec:
    name: str
    variants: tuple[VariantSpec, ...]


def _torch_prepare(module: Any, make_input: Callable[[int], Any], device: str) -> Prepare:
    import torch

    module.eval()
    module.to(device)
    on_gpu = device.startswith("cuda")

    def prepare(size: int) -> Callable[[], object]:
        x = make_input(size).to(device)

        def run() -> object:
            with torch.inference_mode():
                out = module(x)
            if on_gpu:  # kernels run asynchronously: a batch is done when the device is
                torch.cuda.synchronize(device)
            return out

        return run

    return prepare


def _torchvision(device: str) -> Any:
    """torchvision where it is installed and the device is a GPU, else None."""
    if not device.startswith("cuda"):
        return None
    try:
        return importlib.import_module("torchvision")
    except ModuleNotFoundError:
        return None


def classifier_source(device: str) -> str:
    """Which ResNet implementation `device` gets (written into measured_on)."""
    tv = _torchvision(device)
    return (
        "adapter.profiler.nets ResNets (torchvision's layout)"
        if tv is None
        else f"torchvision {tv.__version__} ResNets"
    )


def _image(px: int) -> Callable[[int], Any]:
    import torch

    return lambda size: torch.rand(size, 3, px, px)


def _tokens(length: int) -> Callable[[int], Any]:
    import torch

    return lambda size: torch.randint(0, 30522, (size, length))


def _resnet(depth: int, device: str) -> Prepare:
    from adapter.profiler import nets

    tv = _torchvision(device)
    module = nets.resnet(depth) if tv is None else tv.models.get_model(f"resnet{depth}", weights=None)
    return _torch_prepare(module, _image(IMAGE_CLASSIFY_PX), device)


def _yolo(size: str, device: str) -> Prepare:
    from adapter.profiler import nets

    return _torch_prepare(nets.YoloV5(size), _image(IMAGE_DETECT_PX), device)


def _sentiment(shape: str, device: str) -> Prepare:
    from adapter.profiler import nets

    module = nets.encoder(shape, outputs=2, per_token=False)
    return _torch_prepare(module, _tokens(SENTIMENT_TOKENS), device)


def _qa(shape: str, device: str) -> Prepare:
    from adapter.profiler import nets

    return _torch_prepare(nets.encoder(shape, outputs=2, per_token=True), _tokens(QA_TOKENS), device)


def _detect(size: str, map50: float) -> VariantSpec:
    px = IMAGE_DETECT_PX
    return VariantSpec(f"yolov5{size}", map50, _YOLOV5, lambda d: _yolo(size, d), f"{px}x{px} image")


def _classify(depth: int, top1: float) -> VariantSpec:
    px = IMAGE_CLASSIFY_PX
    return VariantSpec(f"resnet{depth}", top1, _TORCHVISION, lambda d: _resnet(depth, d), f"{px}x{px} image")


def _sent(shape: str, acc: float, source: str) -> VariantSpec:
    return VariantSpec(shape, acc, source, lambda d: _sentiment(shape, d), f"{SENTIMENT_TOKENS} tokens")


def _squad(shape: str, f1: float, source: str) -> VariantSpec:
    return VariantSpec(shape, f1, source, lambda d: _qa(shape, d), f"{QA_TOKENS} tokens")


PIPELINES: dict[str, tuple[StageSpec, ...]] = {
    "video": (
        StageSpec(
            "detect",
            (
                _detect("n", 45.7),
                _detect("s", 56.8),
                _detect("m", 64.1),
                _detect("l", 67.3),
                _detect("x", 68.9),
            ),
        ),
        StageSpec(
            "classify",
            (
                _classify(18, 69.758),
                _classify(34, 73.314),
                _classify(50, 76.130),
                _classify(101, 77.374),
                _classify(152, 78.312),
            ),
        ),
    ),
    "nlp": (
        StageSpec(
            "sentiment",
            (
                _sent("distilbert", 91.3, _SST2_DEV),
                _sent("bert-base", 92.7, _SST2_DEV),
                _sent("bert-large", 94.9, _SST2_TEST),
            ),
        ),
        StageSpec(
            "qa",
            (
                _squad("distilbert", 85.8, _SQUAD_DISTIL),
                _squad("bert-base", 88.5, _SQUAD_BERT),
                _squad("bert-large", 90.9, _SQUAD_BERT),
            ),
        ),
    ),
}
