"""The evaluation's figures. matplotlib's object API (Figure, no pyplot) renders with Agg and
needs no display and no global backend switch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

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
    """Arrival rate, then per policy: cores, PAS and modelled power of each decision."""
    fig = Figure(figsize=(10, 10))
    axes = fig.subplots(4, 1, sharex=True)
    axes[0].plot(range(len(counts)), counts, color="black", linewidth=0.6, label="arrivals")
    # Every policy sees the same load and predictor, so one prediction line serves them all.
    first = next(iter(logs.values()), [])
    axes[0].step(
        [e["t_s"] for e in first],
        [e["predicted_rps"] for e in first],
        where="post",
        color="tab:red",
        label="predicted",
    )
    for policy, log in logs.items():
        t = [e["t_s"] for e in log]
        colour = COLOURS.get(policy)
        axes[1].step(t, [e["cores"] for e in log], where="post", color=colour, label=policy)
        axes[2].step(t, [e["pas"] for e in log], where="post", color=colour, label=policy)
        axes[3].step(t, [e["power_w"] for e in log], where="post", color=colour, label=policy)
    for ax, label in zip(axes, ("requests/s", "cores", "PAS", "modelled power (W)"), strict=True):
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7, ncol=3)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def tradeoff(
    path: Path,
    title: str,
    sweep: Sequence[Mapping[str, float]],
    baselines: Mapping[str, Mapping[str, float]],
) -> None:
    """PAS against joules for each gamma of the sweep (annotated), baselines as markers, and
    the SLA violations of each sweep point on a second panel."""
    fig = Figure(figsize=(12, 5))
    (ax, ax2) = fig.subplots(1, 2)
    ax.plot(
        [p["energy_j"] for p in sweep],
        [p["pas_mean"] for p in sweep],
        "-o",
        color="tab:green",
        label="IPA, gamma sweep",
    )
    for p in sweep:
        ax.annotate(
            f"{p['gamma']:g}",
            (p["energy_j"], p["pas_mean"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    for policy, m in baselines.items():
        ax.scatter(
            [m["energy_j"]], [m["pas_mean"]], marker="s", color=COLOURS.get(policy), label=policy, zorder=3
        )
    ax.set_xlabel("joules (all four workloads, mean over seeds)")
    ax.set_ylabel("PAS (mean)")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    gammas = [max(p["gamma"], 1e-6) for p in sweep]
    ax2.plot(gammas, [p["sla_violation_pct"] for p in sweep], "-o", label="dropped + late")
    ax2.plot(gammas, [p["dropped_pct"] for p in sweep], "-s", label="dropped")
    ax2.set_xscale("log")
    ax2.set_xlabel("gamma (per watt; 0 drawn at 1e-6)")
    ax2.set_ylabel("SLA violations (% of requests)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def energy_bars(path: Path, title: str, table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    """Joules per workload and policy, dynamic and idle stacked."""
    workloads = list(table)
    policies = list(next(iter(table.values())))
    width = 0.8 / len(policies)
    fig = Figure(figsize=(10, 4.5))
    ax = fig.subplots()
    for i, policy in enumerate(policies):
        xs = [w + i * width for w in range(len(workloads))]
        dyn = [table[w][policy]["dynamic_energy_j"] / 1000 for w in workloads]
        idle = [table[w][policy]["idle_energy_j"] / 1000 for w in workloads]
        colour = COLOURS.get(policy)
        ax.bar(xs, dyn, width, color=colour, label=f"{policy}")
        ax.bar(xs, idle, width, bottom=dyn, color=colour, alpha=0.4, hatch="//")
    ax.set_xticks([w + 0.4 - width / 2 for w in range(len(workloads))], workloads)
    ax.set_ylabel("kJ (solid: dynamic, hatched: idle)")
    ax.legend(fontsize=8, ncol=3)
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
