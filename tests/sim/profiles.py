"""Small profiles shaped like IPA's video pipeline (a detector then a classifier), generated from
a per-variant batch-1 latency: latency grows sublinearly with the batch, a replica draws its busy
power only while it computes, so energy per request falls with the batch."""

from __future__ import annotations

from typing import Any

from adapter.profiles import Profile, parse_profile

BUSY_POWER_W_PER_CORE = 9.0
IDLE_POWER_W_PER_CORE = 1.5


def variant(
    name: str, accuracy: float, latency1_s: float, cores: int, sizes: tuple[int, ...]
) -> dict[str, Any]:
    batches = []
    for b in sizes:
        latency_s = latency1_s * (1.0 + 0.6 * (b - 1))
        batches.append(
            {
                "size": b,
                "latency_s": round(latency_s, 6),
                "energy_per_request_j": round(BUSY_POWER_W_PER_CORE * cores * latency_s / b, 6),
            }
        )
    return {
        "name": name,
        "accuracy": accuracy,
        "cores": cores,
        "idle_power_w": IDLE_POWER_W_PER_CORE * cores,
        "batches": batches,
    }


def video_profile(variants_per_stage: int = 3, sizes: tuple[int, ...] = (1, 2, 4, 8)) -> Profile:
    detect = [
        variant("yolov5n", 45.7, 0.06, 1, sizes),
        variant("yolov5s", 56.8, 0.12, 1, sizes),
        variant("yolov5m", 64.1, 0.29, 2, sizes),
        variant("yolov5l", 67.3, 0.55, 2, sizes),
    ][:variants_per_stage]
    classify = [
        variant("resnet18", 69.8, 0.04, 1, sizes),
        variant("resnet50", 76.1, 0.10, 1, sizes),
        variant("resnet101", 77.4, 0.18, 2, sizes),
        variant("resnet152", 78.3, 0.24, 2, sizes),
    ][:variants_per_stage]
    return parse_profile(
        {
            "pipeline": "video",
            "measured_on": "generated for tests",
            "stages": [{"name": "detect", "variants": detect}, {"name": "classify", "variants": classify}],
        }
    )
