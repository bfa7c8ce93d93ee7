"""Profile files (shared/interfaces.md): per stage and variant, accuracy, cores, idle power and
measured batch points. Validated with pydantic; a bad file is refused naming file, field, why."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapter import limits
from adapter.errors import ProfileError

PROFILE_SUFFIXES = (".yaml", ".yml", ".json")
# IPA's SLA rule (reconfigurable-ml-pipeline/ipa, optimizer/models.py, Task.sla and Pipeline.sla):
# per variant, its smallest batch's latency x `sla_factor` (5 in every experiment config of the
# paper, data/configs/final/*.yaml); per stage, the mean over variants x 5; summed over stages.
IPA_SLA_FACTOR = 25.0


class BatchPoint(BaseModel):
    """One measured batch size of one variant (one replica)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    size: int = Field(ge=1, le=limits.MAX_BATCH_SIZE)
    latency_s: float = Field(gt=0, le=limits.MAX_LATENCY_S)
    throughput_rps: float | None = Field(
        default=None, ge=limits.MIN_THROUGHPUT_RPS, le=limits.MAX_THROUGHPUT_RPS
    )
    energy_per_request_j: float = Field(ge=0, le=limits.MAX_ENERGY_PER_REQUEST_J)

    @model_validator(mode="after")
    def _throughput_bounded(self) -> BatchPoint:
        # Absent, throughput is size / latency_s: bound that too, or replica counts overflow.
        if not limits.MIN_THROUGHPUT_RPS <= self.replica_throughput_rps <= limits.MAX_THROUGHPUT_RPS:
            raise ValueError(
                f"size / latency_s = {self.replica_throughput_rps:.3g} req/s is outside "
                f"[{limits.MIN_THROUGHPUT_RPS:g}, {limits.MAX_THROUGHPUT_RPS:g}]: state throughput_rps"
            )
        return self

    @property
    def replica_throughput_rps(self) -> float:
        """Measured throughput of one replica; `size / latency_s` when it was not measured."""
        return self.throughput_rps if self.throughput_rps is not None else self.size / self.latency_s


class IpaWeights(BaseModel):
    """IPA's own objective weights for this pipeline (its experiment configs' alpha and beta),
    which the evaluation's `ipa` policy uses when a profile states them."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    alpha: float = Field(ge=0, le=limits.MAX_WEIGHT)
    beta: float = Field(ge=0, le=limits.MAX_WEIGHT)
    source: str | None = Field(default=None, max_length=1000)


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=limits.MAX_NAME_CHARS)
    accuracy: float = Field(gt=0, le=100)
    accuracy_source: str | None = None
    cores: float = Field(gt=0, le=limits.MAX_CORES)
    idle_power_w: float = Field(ge=0, le=limits.MAX_IDLE_POWER_W)
    batches: tuple[BatchPoint, ...] = Field(min_length=1, max_length=limits.MAX_BATCHES)

    @model_validator(mode="after")
    def _sizes_unique_and_sorted(self) -> Variant:
        sizes = [b.size for b in self.batches]
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"batch sizes must be unique, got {sizes}")
        if sizes != sorted(sizes):
            object.__setattr__(self, "batches", tuple(sorted(self.batches, key=lambda b: b.size)))
        return self

    def batch(self, size: int) -> BatchPoint:
        for point in self.batches:
            if point.size == size:
                return point
        raise KeyError(f"variant {self.name} has no measured batch size {size}")


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=limits.MAX_NAME_CHARS)
    variants: tuple[Variant, ...] = Field(min_length=1, max_length=limits.MAX_VARIANTS)

    @model_validator(mode="after")
    def _names_unique(self) -> Stage:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        return self

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"stage {self.name} has no variant {name}")


class Profile(BaseModel):
    """One pipeline: its stages in order."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    pipeline: str = Field(min_length=1, max_length=limits.MAX_NAME_CHARS)
    measured_on: str | None = None
    # The pipeline's end-to-end SLA; absent: IPA's rule (default_sla_s).
    sla_s: float | None = Field(default=None, gt=0, le=limits.MAX_SLA_S)
    # IPA's weights for this pipeline; absent: adapter.sim.policies' table by pipeline name.
    ipa_weights: IpaWeights | None = None
    # Where idle_power_w and energy_per_request_j come from: energyd's source at profiling time
    # (`adapter profile` writes it). Absent: not stated, which the evaluation treats as an estimate.
    energy_source: Literal["estimate", "powercap", "perf", "nvml"] | None = None
    stages: tuple[Stage, ...] = Field(min_length=1, max_length=limits.MAX_STAGES)

    @model_validator(mode="after")
    def _stage_names_unique(self) -> Profile:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        points = sum(len(v.batches) for s in self.stages for v in s.variants)
        if points > limits.MAX_PROFILE_POINTS:
            raise ValueError(
                f"{points} measured points (stages x variants x batches) exceed {limits.MAX_PROFILE_POINTS}"
            )
        return self


def default_sla_s(profile: Profile) -> float:
    """The pipeline's SLA when no one states one: the profile's `sla_s`, else IPA's rule, 25 x
    the sum over stages of the mean over variants of the smallest batch's latency. The one rule
    of `adapter run`, `simulate`, `evaluate`, `decide` and `make run`."""
    if profile.sla_s is not None:
        return profile.sla_s
    return IPA_SLA_FACTOR * sum(
        statistics.fmean(v.batches[0].latency_s for v in stage.variants) for stage in profile.stages
    )


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        # An unknown key is part of the path: quote at most a prefix of a hostile one.
        name = str(part)[: limits.MAX_QUOTED_CHARS]
        path += f"[{part}]" if isinstance(part, int) else (f".{name}" if path else name)
    return path or "(top level)"


def parse_profile(data: Any, source: str = "<profile>") -> Profile:
    """Validate a decoded profile object. Raises ProfileError naming source, field and why."""
    if not isinstance(data, Mapping):
        raise ProfileError(source, "(top level)", "a profile must be a mapping with pipeline and stages")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ProfileError(source, _field_path(tuple(first["loc"])), first["msg"]) from exc


def load_profile(path: Path) -> Profile:
    """Read one YAML or JSON profile file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), "(file)", f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ProfileError(str(path), "(file)", f"not valid {path.suffix[1:].upper()}: {exc}") from exc
    return parse_profile(data, str(path))


def load_profiles(directory: Path) -> dict[str, Profile]:
    """Every *.yaml, *.yml and *.json in `directory`, keyed by pipeline name."""
    if not directory.is_dir():
        raise ProfileError(str(directory), "(directory)", "not a directory")
    profiles: dict[str, Profile] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix not in PROFILE_SUFFIXES or not path.is_file():
            continue
        profile = load_profile(path)
        if profile.pipeline in profiles:
            raise ProfileError(str(path), "pipeline", f"duplicate pipeline name {profile.pipeline!r}")
        profiles[profile.pipeline] = profile
    return profiles


MEASURED_ENERGY_SOURCES = frozenset({"powercap", "perf", "nvml"})


def measured_energy_source(profile: Profile) -> str | None:
    """The meter the profile's energy was measured with (powercap, perf, nvml), or None when it is
    an estimate or not stated."""
    return profile.energy_source if profile.energy_source in MEASURED_ENERGY_SOURCES else None
