"""`adapter profile`: measure a pipeline's variants on this machine and write its profile file.

adapter/cli.py calls `register`; `python -m adapter.profiler profile ...` works on its own.
torch is imported only once a pipeline is actually measured. `--device cuda` runs the variants on
a GPU and reads its energy from NVML (adapter.profiler.gpu); the CPU path is unchanged.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from adapter.profiler.gpu import GpuEnergy, describe_gpu, describe_gpu_run
from adapter.profiler.measure import Clock, EnergyMeter, Point, Settings, background_cores, measure_variant
from adapter.profiler.models import PIPELINES, StageSpec, classifier_source
from adapter.profiler.stats import LATENCY_STATISTICS, Window, fit_power_model
from adapter.profiler.writer import (
    CpuEnergy,
    MeasuredStage,
    MeasuredVariant,
    ReplicaEnergy,
    build_profile,
    cpu_model,
    describe_run,
    write_profile,
)
from energyd.config import SOURCE_CHOICES, Roots
from energyd.gpu import GpuSource
from energyd.procstat import online_cpus
from energyd.sources.base import EnergySource, SourceError
from energyd.sources.nvml import Nvml, PynvmlNvml
from energyd.sources.select import open_source

DEFAULT_BATCH_SIZES = "1,2,4,8,16,32,64"
PERF_INTERVAL_S = 0.1
INSTALL_HINT = "torch is not installed: pip install -e '.[profile]' (docs/profiles.md)"
# On a GPU a batch takes milliseconds: more batches fit a point, and warm-up (cuDNN's algorithm
# choice, the caching allocator) takes a few dozen of them.
DEVICE_DEFAULTS = {"cpu": (200, 0.0), "cuda": (20000, 0.5)}  # max_repeats, warmup_s


def _index(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a GPU index: {text!r}") from exc
    if not 0 <= value < 64:
        raise argparse.ArgumentTypeError(f"GPU index must be 0..63, got {value}")
    return value


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"batch sizes must be integers separated by commas: {text!r}"
        ) from exc
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1: {text!r}")
    return sizes


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `profile` to the adapter's subcommands."""
    p = subparsers.add_parser("profile", help="measure real models here and write a profile file")
    p.add_argument("--pipeline", choices=sorted(PIPELINES), required=True, help="which pipeline's models to measure")
    p.add_argument("--batch-sizes", type=_sizes, default=_sizes(DEFAULT_BATCH_SIZES), help="e.g. 1,2,4,8")
    p.add_argument("--variants", default="", help="only these variants, comma-separated (default: all)")
    p.add_argument("--duration-s", type=float, default=2.0, help="least measuring time per batch size")
    p.add_argument("--repeats", type=int, default=3, help="least number of timed batches per batch size")
    p.add_argument("--max-batch-latency-s", type=float, default=3.0, help="drop larger batch sizes past this")
    p.add_argument(
        "--latency-stat", choices=LATENCY_STATISTICS, default="median", help="batch latency written as latency_s"
    )
    p.add_argument("--cores", type=int, default=1, help="cores per replica = torch threads")
    p.add_argument("--idle-s", type=float, default=2.0, help="idle window for the node power fit")
    p.add_argument("--energy-source", choices=SOURCE_CHOICES, default="auto", help="--device cpu only")
    p.add_argument(
        "--device",
        choices=sorted(DEVICE_DEFAULTS),
        default="cpu",
        help="cuda: run on a GPU, energy from its NVML counter, idle power measured apart (default cpu)",
    )
    p.add_argument("--gpu-index", type=_index, default=0, help="the GPU for --device cuda (NVML's index)")
    p.add_argument(
        "--max-repeats", type=int, default=None, help="most timed batches per size (cpu 200, cuda 20000)"
    )
    p.add_argument(
        "--warmup-s", type=float, default=None, help="warm-up per size after one batch (cpu 0, cuda 0.5)"
    )
    p.add_argument(
        "--sysfs-root", type=Path, default=Roots.sysfs, help="holds class/powercap (energy for --device cpu)"
    )
    p.add_argument("--procfs-root", type=Path, default=Roots.procfs, help="holds stat (the node's CPU time)")
    p.add_argument("--note", default="", help="appended to measured_on (e.g. 'shared machine')")
    p.add_argument(
        "--name",
        default=None,
        help="the profile's pipeline name (default: --pipeline; e.g. video-gpu beside video)",
    )
    p.add_argument("--out", type=Path, default=None, help="profile file (default: <name>.yaml)")
    p.set_defaults(func=_profile)


def _open_source(preferred: str, roots: Roots) -> EnergySource:
    # perf reports per interval: a short one keeps each window's energy close to its bounds.
    source, passed_over = open_source(preferred, roots, interval_s=PERF_INTERVAL_S)
    for skipped in passed_over:
        print(f"energy source {skipped.source} passed over: {skipped.reason}", file=sys.stderr)
    return source


def open_gpu(torch: Any, index: int, nvml: Nvml) -> GpuSource:
    """energyd's GPU source over the one GPU torch will run on; SourceError when there is none."""
    if not torch.cuda.is_available():
        raise SourceError(
            "torch sees no CUDA device", "run on a machine with an NVIDIA GPU and a CUDA build of torch"
        )
    source = GpuSource(nvml, [index])
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None and str(uuid) not in source.devices[0].uuid:
        source.close()
        raise SourceError(
            f"CUDA device {index} is {uuid} but NVML's GPU {index} is {source.devices[0].uuid}",
            "export CUDA_DEVICE_ORDER=PCI_BUS_ID so that CUDA numbers GPUs as NVML does",
        )
    return source


def _profile(args: argparse.Namespace) -> int:
    try:
        import torch
    except ModuleNotFoundError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    torch.set_num_threads(args.cores)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    roots = Roots(sysfs=args.sysfs_root, procfs=args.procfs_root)
    on_gpu = args.device == "cuda"
    try:
        source = (
            open_gpu(torch, args.gpu_index, PynvmlNvml())
            if on_gpu
            else _open_source(args.energy_source, roots)
        )
    except SourceError as exc:
        print(f"no energy source: {exc}", file=sys.stderr)
        return 2
    device = f"cuda:{args.gpu_index}" if on_gpu else "cpu"
    wanted = {v for v in args.variants.split(",") if v}
    stages = [
        StageSpec(s.name, tuple(v for v in s.variants if not wanted or v.name in wanted))
        for s in PIPELINES[args.pipeline]
    ]
    max_repeats, warmup_s = DEVICE_DEFAULTS[args.device]
    settings = Settings(
        repeats=args.repeats,
        duration_s=args.duration_s,
        max_repeats=max_repeats if args.max_repeats is None else args.max_repeats,
        max_batch_latency_s=args.max_batch_latency_s,
        latency_statistic=args.latency_stat,
        warmup_s=warmup_s if args.warmup_s is None else args.warmup_s,
    )
    try:
        gpu_words = describe_gpu(source, args.gpu_index)[1] if isinstance(source, GpuSource) else ""
        meter = EnergyMeter(source, procfs=roots.procfs)
        measured, windows, dropped = measure_pipeline(
            stages, args.batch_sizes, meter, settings, args.cores, args.idle_s, device
        )
    finally:
        source.close()
    node_cpus = online_cpus(roots.procfs)
    precision = "fp32" + (f", {classifier_source(device)}" if on_gpu else "")
    extra = [f"torch {torch.__version__}, {args.cores} thread(s) per replica, random weights, {precision}"]
    extra.append("inputs: " + ", ".join(f"{name} {inputs}" for name, inputs in _inputs(stages).items()))
    if dropped:
        extra.append("batch sizes dropped as too slow: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    points = [p for stage in measured for v in stage.variants for p in v.result.points]
    extra.append(
        f"other processes kept {background_cores(points):.2f} of {node_cpus} cores busy on average meanwhile"
    )
    if args.note:
        extra.append(args.note)
    energy: ReplicaEnergy
    if on_gpu:
        gpu_energy = GpuEnergy.from_idle([windows[0], windows[-1]])
        host = f"host {node_cpus} cores, {cpu_model(roots.procfs)}"
        measured_on = describe_gpu_run(
            gpu_words, gpu_energy, args.idle_s, args.latency_stat, "; ".join([host, *extra])
        )
        energy, summary = gpu_energy, f"NVML energy, GPU idle {gpu_energy.idle_w:.1f} W"
        energy_source = "nvml"
    else:
        model = fit_power_model(windows)
        measured_on = describe_run(
            node_cpus,
            cpu_model(roots.procfs),
            source.name,
            source.measured,
            model,
            args.latency_stat,
            "; ".join(extra),
        )
        energy = CpuEnergy(model, node_cpus)
        energy_source = source.name
        summary = f"{source.name} energy, fit {model.idle_w:.2f} W idle + {model.busy_core_w:.2f} W/busy core"
    name = args.name or args.pipeline
    profile = build_profile(name, measured_on, measured, energy, args.latency_stat, energy_source)
    out = args.out or Path(f"{name}.yaml")
    write_profile(profile, out)
    print(f"wrote {out} ({summary})")
    return 0


def _inputs(stages: list[StageSpec]) -> dict[str, str]:
    return {s.name: s.variants[0].input_desc for s in stages if s.variants}


def measure_pipeline(
    stages: list[StageSpec],
    sizes: list[int],
    meter: EnergyMeter,
    settings: Settings,
    cores: int,
    idle_s: float,
    device: str = "cpu",
    clock: Clock = time.perf_counter,
    cpu_clock: Clock = time.process_time,
) -> tuple[list[MeasuredStage], list[Window], dict[str, list[int]]]:
    """Every variant at every size; the windows start and end with an idle window of `idle_s`."""
    windows = [meter.idle_window(idle_s)]
    measured: list[MeasuredStage] = []
    dropped: dict[str, list[int]] = {}
    total = sum(len(s.variants) for s in stages) * len(sizes)
    done = 0
    for stage in stages:
        variants = []
        for spec in stage.variants:

            def on_point(point: Point, label: str = f"{stage.name}/{spec.name}") -> None:
                nonlocal done
                done += 1
                print(
                    f"[{done}/{total}] {label} batch {point.size}: {len(point.latencies_s)} batches,"
                    f" {point.throughput_rps:.2f} req/s",
                    file=sys.stderr,
                    flush=True,
                )

            result = measure_variant(spec.build(device), sizes, meter, settings, on_point, clock, cpu_clock)
            done += len(result.dropped_sizes)
            if result.dropped_sizes:
                dropped[f"{stage.name}/{spec.name}"] = result.dropped_sizes
                print(
                    f"  {stage.name}/{spec.name}: dropped sizes {result.dropped_sizes} (too slow)",
                    file=sys.stderr,
                )
            windows += [p.window for p in result.points]
            variants.append(MeasuredVariant(spec.name, spec.accuracy, spec.accuracy_source, cores, result))
        measured.append(MeasuredStage(stage.name, tuple(variants)))
    windows.append(meter.idle_window(idle_s))
    return measured, windows, dropped
