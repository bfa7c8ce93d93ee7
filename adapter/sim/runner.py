"""One simulation: (profile, trace, policy, seed) -> the JSON of `adapter simulate`.

The very same AdaptLoop as production (10-s interval, IPA's max-of-window predictor) drives a
SimCluster that stands in for Prometheus and Seldon.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapter.loop import AdaptLoop, LoopSettings, StepResult
from adapter.predict import make_predictor
from adapter.problem import Solver
from adapter.profiles import Profile, default_sla_s
from adapter.sim.cluster import ClusterSettings, SimCluster
from adapter.sim.policies import make_policy
from adapter.sim.trace import arrival_times_s

logger = logging.getLogger(__name__)

INTERVAL_S = 10.0
HISTORY_WINDOW_S = 120.0


@dataclass(frozen=True)
class RunSpec:
    policy: str
    seed: int = 0
    sla_s: float | None = None  # None: default_sla_s(profile)
    solver: str = "auto"
    switch_delay_s: float | None = None  # None: ClusterSettings' default
    gamma: float | None = None  # the energy policy's weight; None: policies.ENERGY_GAMMA
    beta: float | None = None  # the cost weight; None: IPA's for the pipeline (policies.ipa_weights)
    interval_s: float = INTERVAL_S
    node_idle_power_w: float = 0.0  # the node power floor (0: none), per ClusterSettings' node
    predictor: str = "max"  # "max" (IPA's max of the window), "holt" or "learned" (adapter.predict)


def run(
    profile: Profile, counts: Sequence[int], spec: RunSpec, base_solver: Solver | None = None
) -> dict[str, Any]:
    """Simulate; `base_solver` defaults to adapter.solve.get_solver(spec.solver)."""
    if base_solver is None:
        from adapter.solve import get_solver

        base_solver = get_solver(spec.solver)
    if not 0.0 <= spec.node_idle_power_w <= 10_000.0:
        raise ValueError(f"node_idle_power_w must be in [0, 10000] W, got {spec.node_idle_power_w}")
    sla_s = spec.sla_s if spec.sla_s is not None else default_sla_s(profile)
    policy = make_policy(spec.policy, base_solver, profile, spec.seed, spec.gamma, spec.beta)
    cluster_settings = ClusterSettings(sla_s=sla_s)
    if spec.switch_delay_s is not None:
        cluster_settings = ClusterSettings(sla_s=sla_s, switch_delay_s=spec.switch_delay_s)
    cluster = SimCluster(profile, counts, arrival_times_s(counts, spec.seed), cluster_settings)
    loop = AdaptLoop(
        profile,
        LoopSettings(
            pipeline=profile.pipeline,
            sla_s=sla_s,
            weights=policy.weights,
            history_window_s=HISTORY_WINDOW_S,
            replicas_min=policy.replicas or LoopSettings.replicas_min,
            replicas_max=policy.replicas or LoopSettings.replicas_max,
        ),
        load=cluster,
        predictor=make_predictor(
            spec.predictor,
            window_s=HISTORY_WINDOW_S,
            horizon_s=spec.interval_s + cluster_settings.switch_delay_s,
        ),
        solver=policy.solver,
        actuator=cluster,
    )
    steps: list[StepResult] = []
    stats = cluster.run(lambda now_s: steps.append(loop.step(now_s)), spec.interval_s)
    floor_j = spec.node_idle_power_w * stats.node_s
    energy_j = stats.dynamic_energy_j + stats.idle_energy_j + floor_j
    requests = max(stats.requests, 1)
    return {
        "policy": spec.policy,
        "requests": stats.requests,
        "served": stats.served,
        "dropped": stats.dropped,
        "late": stats.late,
        "p99_latency_s": float(np.percentile(stats.latencies_s, 99)) if stats.served else 0.0,
        "pas_mean": stats.pas_mean,
        "cores_mean": stats.cores_mean,
        "energy_j": energy_j,
        "energy_per_request_j": energy_j / stats.served if stats.served else 0.0,
        "decisions": len(steps),
        "dynamic_energy_j": stats.dynamic_energy_j,
        "idle_energy_j": stats.idle_energy_j,
        "node_s": stats.node_s,
        "node_floor_energy_j": floor_j,
        "dropped_pct": 100.0 * stats.dropped / requests,
        "late_pct": 100.0 * stats.late / requests,
        "sla_violation_pct": 100.0 * (stats.dropped + stats.late) / requests,
        "switches": stats.switches,
        "infeasible_decisions": sum(1 for r in steps if r.decision is not None and not r.decision.feasible),
        "duration_s": stats.horizon_s,
        "sla_s": sla_s,
        "seed": spec.seed,
        "gamma": policy.weights.gamma,
        "weights": dataclasses.asdict(policy.weights),
        "switch_delay_s": cluster_settings.switch_delay_s,
        "log": [_log_entry(r) for r in steps],
    }


def _log_entry(result: StepResult) -> dict[str, Any]:
    d = result.decision
    return {
        "t_s": result.now_s,
        "observed_rps": result.observed_rps,
        "predicted_rps": result.predicted_rps,
        "provisioned_rps": d.arrival_rate_rps if d else None,  # the window's highest prediction
        "changed": result.changed,
        "degraded": result.degraded,
        "feasible": d.feasible if d else None,
        "pas": d.pas if d else None,
        "cores": d.cores if d else None,
        "power_w": d.power_w if d else None,
        "stages": [
            {"stage": s.stage, "variant": s.variant, "replicas": s.replicas, "batch": s.batch}
            for s in d.stages
        ]
        if d
        else [],
    }
