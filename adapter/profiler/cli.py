"""`adapter profile`: measure a pipeline's variants on this machine and write its profile file.

adapter/cli.py calls `register`; `python -m adapter.profiler profile ...` works on its own.
torch is imported only once a pipeline is actually measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adapter.profiler.measure import EnergyMeter, Point, Settings, background_cores, measure_variant
from adapter.profiler.models import PIPELINES, StageSpec
from adapter.profiler.stats import LATENCY_STATISTICS, Window, fit_power_model
from adapter.profiler.writer import (
    MeasuredStage,
    MeasuredVariant,
    build_profile,
    cpu_model,
    describe_run,
    write_profile,
)
from energyd.config import SOURCE_CHOICES, Roots
from energyd.procstat import online_cpus
from energyd.sources.base import EnergySource, SourceError
from energyd.sources.select import open_source

DEFAULT_BATCH_SIZES = "1,2,4,8,16,32,64"
PERF_INTERVAL_S = 0.1
INSTALL_HINT = "torch is not installed: pip install -e '.[profile]' (docs/profiles.md)"


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
    p.add_argument("--pipeline", choices=sorted(PIPELINES), required=True)
    p.add_argument("--batch-sizes", type=_sizes, default=_sizes(DEFAULT_BATCH_SIZES), help="e.g. 1,2,4,8")
    p.add_argument("--variants", default="", help="only these variants, comma-separated (default: all)")
    p.add_argument("--duration-s", type=float, default=2.0, help="least measuring time per batch size")
    p.add_argument("--repeats", type=int, default=3, help="least number of timed batches per batch size")
    p.add_argument("--max-batch-latency-s", type=float, default=3.0, help="drop larger batch sizes past this")
    p.add_argument("--latency-stat", choices=LATENCY_STATISTICS, default="median")
    p.add_argument("--cores", type=int, default=1, help="cores per replica = torch threads")
    p.add_argument("--idle-s", type=float, default=2.0, help="idle window for the node power fit")
    p.add_argument("--energy-source", choices=SOURCE_CHOICES, default="auto")
    p.add_argument("--sysfs-root", type=Path, default=Roots.sysfs)
    p.add_argument("--procfs-root", type=Path, default=Roots.procfs)
    p.add_argument("--note", default="", help="appended to measured_on (e.g. 'shared machine')")
    p.add_argument("--out", type=Path, default=None, help="profile file (default: <pipeline>.yaml)")
    p.set_defaults(func=_profile)


def _open_source(preferred: str, roots: Roots) -> EnergySource:
    # perf reports per interval: a short one keeps each window's energy close to its bounds.
    source, passed_over = open_source(preferred, roots, interval_s=PERF_INTERVAL_S)
    for skipped in passed_over:
        print(f"energy source {skipped.source} passed over: {skipped.reason}", file=sys.stderr)
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
    try:
        source = _open_source(args.energy_source, roots)
    except SourceError as exc:
        print(f"no energy source: {exc}", file=sys.stderr)
        return 2
    wanted = {v for v in args.variants.split(",") if v}
    stages = [
        StageSpec(s.name, tuple(v for v in s.variants if not wanted or v.name in wanted))
        for s in PIPELINES[args.pipeline]
    ]
    settings = Settings(
        repeats=args.repeats,
        duration_s=args.duration_s,
        max_batch_latency_s=args.max_batch_latency_s,
        latency_statistic=args.latency_stat,
    )
    try:
        meter = EnergyMeter(source, procfs=roots.procfs)
        measured, windows, dropped = _measure(
            stages, args.batch_sizes, meter, settings, args.cores, args.idle_s
        )
    finally:
        source.close()
    model = fit_power_model(windows)
    node_cpus = online_cpus(roots.procfs)
    extra = [f"torch {torch.__version__}, {args.cores} thread(s) per replica, random weights"]
    extra.append("inputs: " + ", ".join(f"{name} {inputs}" for name, inputs in _inputs(stages).items()))
    if dropped:
        extra.append("batch sizes dropped as too slow: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    points = [p for stage in measured for v in stage.variants for p in v.result.points]
    extra.append(
        f"other processes kept {background_cores(points):.2f} of {node_cpus} cores busy on average meanwhile"
    )
    if args.note:
        extra.append(args.note)
    measured_on = describe_run(
        node_cpus,
        cpu_model(roots.procfs),
        source.name,
        source.measured,
        model,
        args.latency_stat,
        "; ".join(extra),
    )
    profile = build_profile(args.pipeline, measured_on, measured, model, node_cpus, args.latency_stat)
    out = args.out or Path(f"{args.pipeline}.yaml")
    write_profile(profile, out)
    print(
        f"wrote {out} ({source.name} energy, fit {model.idle_w:.2f} W idle + {model.busy_core_w:.2f} W/busy core)"
    )
    return 0


def _inputs(stages: list[StageSpec]) -> dict[str, str]:
    return {s.name: s.variants[0].input_desc for s in stages if s.variants}


def _measure(
    stages: list[StageSpec],
    sizes: list[int],
    meter: EnergyMeter,
    settings: Settings,
    cores: int,
    idle_s: float,
) -> tuple[list[MeasuredStage], list[Window], dict[str, list[int]]]:
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

            result = measure_variant(spec.build(), sizes, meter, settings, on_point)
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
