"""`adapter profile --device cuda`: the GPU's energy from its NVML counter, read through energyd's
GPU source (so the profiler and the daemon read joules the same way).

A replica on a GPU is the whole GPU. Its idle power is measured separately, in idle windows
before and after the sweep (no kernel queued, the CUDA context alive), as the mean power over
them. A point's energy per request is the energy the counter measured over the point's interval
minus what the idle GPU would have drawn in that time, over the point's requests:

    energy_per_request_j = (ΔE − idle_w · Δt) / requests

so that the decision problem's `power_w = n · idle_power_w + λ · energy_per_request_j` adds the
two without counting the idle draw twice (the CPU path's split, measured instead of fitted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adapter.profiler.measure import Point
from adapter.profiler.stats import Window
from energyd.gpu import GpuSource
from energyd.sources.nvml import Clocks, Device, NvmlError

NVML_COUNTER = "nvmlDeviceGetTotalEnergyConsumption"


@dataclass(frozen=True)
class GpuEnergy:
    """The GPU path of `writer.ReplicaEnergy`."""

    idle_w: float

    @classmethod
    def from_idle(cls, windows: Sequence[Window]) -> GpuEnergy:
        duration_s = sum(w.duration_s for w in windows)
        if duration_s <= 0:
            raise ValueError("no idle window to measure the GPU's idle power on")
        return cls(max(sum(w.node_energy_j for w in windows) / duration_s, 0.0))

    def idle_power_w(self, cores: int) -> float:
        return self.idle_w

    def energy_per_request_j(self, point: Point) -> float:
        dynamic_j = point.window.node_energy_j - self.idle_w * point.window.duration_s
        return max(dynamic_j, 0.0) / point.requests


def clocks_policy(clocks: Clocks) -> str:
    """How the GPU's clocks were set while it was measured, as NVML reports them."""
    app, default = clocks.sm_app_mhz, clocks.sm_app_default_mhz
    if app is not None and default is not None and app != default:
        text = f"application clocks set to SM {app} MHz (default {default} MHz)"
    else:
        peak = f", SM up to {clocks.sm_max_mhz} MHz" if clocks.sm_max_mhz is not None else ""
        text = f"default clocks (GPU Boost{peak})"
    if clocks.persistence is not None:
        text += f", persistence mode {'on' if clocks.persistence else 'off'}"
    return text


def describe_gpu(source: GpuSource, index: int) -> tuple[Device, str]:
    """The GPU being measured and the `measured_on` words for it."""
    device = next(d for d in source.devices if d.index == index)
    try:
        policy = clocks_policy(source.nvml.clocks(index))
    except NvmlError as err:
        policy = f"clocks unknown (NVML: {err.kind})"
    return device, f"GPU {device.name} ({device.uuid}), NVIDIA driver {source.driver_version}, {policy}"


def describe_gpu_run(gpu: str, energy: GpuEnergy, idle_s: float, statistic: str, extra: str = "") -> str:
    parts = [
        gpu,
        f"latency_s = {statistic} batch latency (CUDA synchronised), throughput_rps = sustained back-to-back batches",
        f"energy measured by NVML ({NVML_COUNTER}, through energyd's nvml source): energy_per_request_j ="
        f" (interval energy - idle power x interval) / requests; idle_power_w = the GPU's idle power,"
        f" {energy.idle_w:.1f} W, measured separately over {idle_s:g} s before and after the sweep",
    ]
    if extra:
        parts.append(extra)
    return "; ".join(parts)
