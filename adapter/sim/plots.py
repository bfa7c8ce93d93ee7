"""The evaluation's figures. matplotlib's object API (Figure, no pyplot) renders with Agg and
needs no display and no global backend switch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

COLOURS = {
    "ipa": "tab:blue",
    "energy": "tab:green",
    "fa2-low": "tab:orange",
    "fa2-high": "tab:red",
    "rim-high": "tab:purple",
    "qlearning": "tab:gray",
}


def decisions_over_time(
    path: Path, title: str, counts: Sequence[int], logs: Mapping[str, list[dict[str, Any]]]
) -> None:
    """Arrivals and prediction on top; then one column per policy with, per stage, its variant,
    batch and replicas tracks (each on its own axis, so no line hides another)."""
    policies = list(logs)
    first = next(iter(logs.values()), [])
    stages = [c["stage"] for c in first[0]["stages"]] if first and first[0]["stages"] else []
    rows = 1 + 3 * len(stages)
    fig = Figure(figsize=(5 * max(len(policies), 1), 1.6 * rows + 1))
    axes = fig.subplots(rows, max(len(policies), 1), sharex=True, squeeze=False)
    # One variant axis per stage for every policy: the union of the variants any policy chose.
    names_by_stage = [
        sorted({e["stages"][s]["variant"] for log in logs.values() for e in log if e["stages"]})
        for s in range(len(stages))
    ]
    for col, policy in enumerate(policies):
        log = [e for e in logs[policy] if e["stages"]]
        t = [e["t_s"] for e in log]
        top = axes[0][col]
        top.plot(range(len(counts)), counts, color="black", linewidth=0.6, label="arrivals")
        top.step(t, [e["predicted_rps"] for e in log], where="post", color="tab:red", label="predicted")
        colour = COLOURS.get(policy.split(" ")[0], "black")
        top.set_title(policy, fontsize=10, color=colour)
        top.set_ylabel("req/s", fontsize=8)
        top.legend(fontsize=7, loc="upper right")
        for s, stage in enumerate(stages):
            variants = [e["stages"][s]["variant"] for e in log]
            names = names_by_stage[s]
            tracks = (
                ("variant", [names.index(v) for v in variants]),
                ("batch", [e["stages"][s]["batch"] for e in log]),
                ("replicas", [e["stages"][s]["replicas"] for e in log]),
            )
            for k, (label, values) in enumerate(tracks):
                ax = axes[1 + 3 * s + k][col]
                if col:
                    ax.sharey(axes[1 + 3 * s + k][0])
                ax.step(t, values, where="post", color=colour)
                ax.set_ylabel(f"{stage}\n{label}", fontsize=7)
                if label == "variant":
                    ax.set_yticks(range(len(names)), names, fontsize=7)
                    ax.set_ylim(-0.5, len(names) - 0.5)
                ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _log_x(ax: Axes) -> None:
    """A log x axis labelled at 1-2-5 steps in plain numbers: the default labels some minor ticks
    as 3x10^2 and 4x10^2, which run into each other."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def frontiers(path: Path, pipeline: str, summary: Mapping[str, Any]) -> None:
    """PAS against kJ over the test windows: the cost-only and energy frontiers with IPA, the
    tuned energy point and fa2-low, without and with the node floor; a third panel on a log
    axis holds every baseline, the ones that dwarf the others included."""
    fig = Figure(figsize=(16, 5))
    axes = fig.subplots(1, 3)
    policies = summary["policies"]
    for ax, key, label in (
        (axes[0], "energy_j", "kJ, no node floor (estimate)"),
        (axes[1], "floor_energy_j", "kJ with node floor (estimate)"),
    ):
        for name, colour, marker in (
            ("cost_frontier", "tab:blue", "-o"),
            ("energy_frontier", "tab:green", "-s"),
        ):
            points = summary[name]
            ax.plot(
                [p[key] / 1000 for p in points],
                [p["pas_mean"] for p in points],
                marker,
                color=colour,
                markersize=4,
                label="cost-only (beta swept)" if name == "cost_frontier" else "energy (gamma swept, beta 0)",
            )
        for policy, marker in (("ipa", "*"), ("energy frontier, tuned gamma", "D"), ("fa2-low", "v")):
            m = policies[policy]
            ax.scatter(
                [m[key] / 1000],
                [m["pas_mean"]],
                marker=marker,
                s=90,
                zorder=3,
                label=policy,
                color=COLOURS.get(policy.split(" ")[0], "black"),
                edgecolors="black",
            )
        _log_x(ax)
        ax.set_xlabel(label)
        ax.set_ylabel("PAS (mean over test windows)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
    ax = axes[2]
    for policy, m in policies.items():
        ax.scatter(
            [m["energy_j"] / 1000],
            [m["pas_mean"]],
            s=60,
            label=policy,
            color=COLOURS.get(policy.split(" ")[0], "black"),
            marker="D" if "tuned" in policy else "o",
        )
    _log_x(ax)
    ax.set_xlabel("kJ, no node floor (estimate), log")
    ax.set_ylabel("PAS")
    ax.set_title("every policy", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{pipeline}: PAS against joules (energy ESTIMATED: linear in busy cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
