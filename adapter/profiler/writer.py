"""Turn measurements into a profile (validated by adapter.profiles) and write it as YAML."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from adapter.profiler.measure import Point, VariantResult
from adapter.profiler.stats import PowerModel, latency_statistic
from adapter.profiles import Profile, parse_profile


@dataclass(frozen=True)
class MeasuredVariant:
    name: str
    accuracy: float
    accuracy_source: str
    cores: int
    result: VariantResult


@dataclass(frozen=True)
class MeasuredStage:
    name: str
    variants: tuple[MeasuredVariant, ...]


class ReplicaEnergy(Protocol):
    """How a run's measurements become a replica's idle power and a request's energy."""

    def idle_power_w(self, cores: int) -> float: ...

    def energy_per_request_j(self, point: Point) -> float: ...


@dataclass(frozen=True)
class CpuEnergy:
    """The CPU path: a share of the node's fitted idle power per core, busy-core watts per CPU-second."""

    model: PowerModel
    node_cpus: int

    def idle_power_w(self, cores: int) -> float:
        return self.model.replica_idle_power_w(cores, self.node_cpus)

    def energy_per_request_j(self, point: Point) -> float:
        return self.model.energy_per_request_j(point.cpu_s, point.requests)


def _sig(value: float, digits: int = 4) -> float:
    """Rounded to significant digits, so tiny latencies never round to an invalid zero."""
    return float(f"{value:.{digits}g}")


def cpu_model(procfs: Path) -> str:
    """The CPU's marketing name from `<procfs>/cpuinfo`, or the architecture when absent."""
    try:
        for line in (procfs / "cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.machine() or "unknown CPU"


def describe_run(
    node_cpus: int,
    cpu_name: str,
    source_name: str,
    measured: bool,
    model: PowerModel,
    statistic: str,
    extra: str = "",
) -> str:
    """The `measured_on` text: machine, how latency was summarised, and where energy came from."""
    energy = "measured" if measured else "an ESTIMATE, not a measurement"
    parts = [
        f"{node_cpus} cores, {cpu_name}, Linux {platform.release()}",
        f"latency_s = {statistic} batch latency, throughput_rps = sustained back-to-back batches",
        f"energy from energyd's {source_name} source, {energy}; node fit {model.idle_w:.2f} W idle"
        f" + {model.busy_core_w:.2f} W per busy core",
    ]
    if extra:
        parts.append(extra)
    return "; ".join(parts)


def build_profile(
    pipeline: str,
    measured_on: str,
    stages: Sequence[MeasuredStage],
    energy: ReplicaEnergy,
    statistic: str,
    energy_source: str,
) -> Profile:
    """The profile object, validated exactly as `load_profile` validates a file. `energy_source`
    is energyd's source the energy came from (estimate, powercap, perf or nvml)."""
    data = {
        "pipeline": pipeline,
        "measured_on": measured_on,
        "energy_source": energy_source,
        "stages": [
            {
                "name": stage.name,
                "variants": [
                    {
                        "name": v.name,
                        "accuracy": v.accuracy,
                        "accuracy_source": v.accuracy_source,
                        "cores": v.cores,
                        "idle_power_w": _sig(energy.idle_power_w(v.cores)),
                        "batches": [
                            {
                                "size": p.size,
                                "latency_s": _sig(latency_statistic(p.latencies_s, statistic)),
                                "throughput_rps": _sig(p.throughput_rps),
                                "energy_per_request_j": _sig(energy.energy_per_request_j(p)),
                            }
                            for p in v.result.points
                        ],
                    }
                    for v in stage.variants
                ],
            }
            for stage in stages
        ],
    }
    return parse_profile(data, f"<measured {pipeline}>")


class _FlowBatches(yaml.SafeDumper):
    """Writes each batch point on one line, as the examples in shared/interfaces.md do."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, object]) -> yaml.Node:
    flow = "size" in data and "latency_s" in data
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_FlowBatches.add_representer(dict, _represent_dict)


def write_profile(profile: Profile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = profile.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.dump(data, Dumper=_FlowBatches, sort_keys=False, width=110), encoding="utf-8")
