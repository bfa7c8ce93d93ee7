"""Synthetic pipeline profiles of any size, shaped like measured ones (IPA's profiling tables:
heavier variants are more accurate and slower, batching raises throughput sublinearly), for
benchmarks and examples. Deterministic for a given seed."""

from __future__ import annotations

import random
from collections.abc import Sequence

from adapter.profiles import Profile, parse_profile

POWERS_OF_TWO = (1, 2, 4, 8, 16, 32, 64)


def synthetic_profile(
    seed: int, stages: int, variants: int, batch_sizes: Sequence[int] = POWERS_OF_TWO
) -> Profile:
    """A `stages`-stage pipeline with `variants` variants per stage, measured at `batch_sizes`."""
    rng = random.Random(seed)
    stage_list = []
    for s in range(stages):
        base_latency_s = rng.uniform(0.01, 0.08)
        variant_list = []
        for v in range(variants):
            latency1_s = base_latency_s * (1.0 + v) ** rng.uniform(1.2, 1.8)
            cores = float(rng.choice((1, 1, 2, 2, 4)))
            idle_power_w = round(1.0 + 0.6 * cores + rng.uniform(0.0, 0.5), 3)
            busy_power_w = idle_power_w + 6.0 * cores
            batches = []
            for size in batch_sizes:
                latency_s = latency1_s * size ** rng.uniform(0.55, 0.9)
                throughput_rps = size / latency_s * rng.uniform(0.85, 1.0)
                batches.append(
                    {
                        "size": size,
                        "latency_s": round(latency_s, 6),
                        "throughput_rps": round(throughput_rps, 4),
                        "energy_per_request_j": round(busy_power_w / throughput_rps, 6),
                    }
                )
            variant_list.append(
                {
                    "name": f"s{s}v{v}",
                    "accuracy": round(min(99.0, 40.0 + 45.0 * (v + rng.uniform(0.0, 0.8)) / variants), 3),
                    "cores": cores,
                    "idle_power_w": idle_power_w,
                    "batches": batches,
                }
            )
        stage_list.append({"name": f"stage{s}", "variants": variant_list})
    return parse_profile(
        {
            "pipeline": f"synthetic-{stages}x{variants}-{seed}",
            "measured_on": "synthetic",
            "stages": stage_list,
        },
        source=f"synthetic_profile(seed={seed})",
    )


def batch1_latency_s(profile: Profile) -> float:
    """Σ over stages of the median variant's batch-1 latency: a scale for choosing SLAs."""
    total = 0.0
    for stage in profile.stages:
        ordered = sorted(v.batches[0].latency_s for v in stage.variants)
        total += ordered[len(ordered) // 2]
    return total
