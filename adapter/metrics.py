"""The adapter's own metrics, on its own CollectorRegistry (never the global one).

Counters and the solve-time histogram count every decision (loop and POST /decide); the
configuration gauges describe what is in force, so they follow the loop and applied /decide
calls only, never a what-if /decide. The names are fixed: dashboards are built against them.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from adapter.problem import Decision
from adapter.profiles import Profile

# Solve times run from ~100 µs (tiny exhaustive) to seconds (20 stages under Gurobi).
SOLVE_BUCKETS_S = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


class AdapterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._lock = threading.Lock()
        self._degraded: dict[str, str] = {}
        self._variants: dict[tuple[str, str], str] = {}
        self.decisions = Counter(
            "adapter_decisions", "Decisions made", ["pipeline", "solver", "feasible"], registry=r
        )
        self.solve_duration = Histogram(
            "adapter_solve_duration_seconds",
            "Solver time per decision",
            ["solver"],
            buckets=SOLVE_BUCKETS_S,
            registry=r,
        )
        self.degraded = Gauge("adapter_degraded", "1 while an input or the actuator is failing", registry=r)
        self.predicted_rps = Gauge(
            "adapter_predicted_requests_per_second", "Arrival rate provisioned for", ["pipeline"], registry=r
        )
        self.observed_rps = Gauge(
            "adapter_observed_requests_per_second", "Latest observed arrival rate", ["pipeline"], registry=r
        )
        self.replicas = Gauge(
            "adapter_stage_replicas", "Replicas in force", ["pipeline", "stage"], registry=r
        )
        self.batch = Gauge(
            "adapter_stage_batch_size", "Batch size in force", ["pipeline", "stage"], registry=r
        )
        self.variant = Gauge(
            "adapter_stage_variant_info",
            "1 for the variant in force",
            ["pipeline", "stage", "variant"],
            registry=r,
        )
        self.power = Gauge(
            "adapter_predicted_power_watts", "Predicted pipeline power", ["pipeline"], registry=r
        )
        self.latency = Gauge(
            "adapter_predicted_latency_seconds", "Predicted end-to-end latency", ["pipeline"], registry=r
        )
        self.observed_p99 = Gauge(
            "adapter_observed_p99_latency_seconds",
            "Served p99 latency (serving metrics)",
            ["pipeline"],
            registry=r,
        )
        self.sla = Gauge("adapter_sla_seconds", "End-to-end latency SLA", ["pipeline"], registry=r)
        self.hold_end = Gauge(
            "adapter_hold_end_timestamp_seconds",
            "Unix time until which a manual apply holds the pipeline's configuration; 0 when none",
            ["pipeline"],
            registry=r,
        )
        self.pas = Gauge(
            "adapter_pas", "Pipeline accuracy score (100 x product of accuracies)", ["pipeline"], registry=r
        )
        self.energy_per_request = Gauge(
            "adapter_stage_energy_per_request_joules",
            "Energy per request of the variant in force at its batch size",
            ["pipeline", "stage", "variant"],
            registry=r,
        )

    def count_decision(self, pipeline: str, decision: Decision) -> None:
        self.decisions.labels(pipeline, decision.solver, str(decision.feasible).lower()).inc()
        self.solve_duration.labels(decision.solver).observe(decision.solve_time_s)

    def set_rates(self, pipeline: str, observed_rps: float | None, predicted_rps: float | None) -> None:
        if observed_rps is not None:
            self.observed_rps.labels(pipeline).set(observed_rps)
        if predicted_rps is not None:
            self.predicted_rps.labels(pipeline).set(predicted_rps)

    def set_hold(self, pipeline: str, held_until_s: float | None) -> None:
        self.hold_end.labels(pipeline).set(held_until_s or 0.0)

    def set_in_force(self, profile: Profile, decision: Decision, sla_s: float) -> None:
        """The configuration gauges of one pipeline, from the decision now in force."""
        pipeline = profile.pipeline
        self.sla.labels(pipeline).set(sla_s)
        self.power.labels(pipeline).set(decision.power_w)
        self.latency.labels(pipeline).set(decision.latency_s)
        self.pas.labels(pipeline).set(decision.pas)
        for choice in decision.stages:
            self.replicas.labels(pipeline, choice.stage).set(choice.replicas)
            self.batch.labels(pipeline, choice.stage).set(choice.batch)
            stage = next(s for s in profile.stages if s.name == choice.stage)
            joules = stage.variant(choice.variant).batch(choice.batch).energy_per_request_j
            with self._lock:
                previous = self._variants.get((pipeline, choice.stage))
                self._variants[(pipeline, choice.stage)] = choice.variant
                if previous is not None and previous != choice.variant:
                    self.variant.remove(pipeline, choice.stage, previous)
                    self.energy_per_request.remove(pipeline, choice.stage, previous)
            self.variant.labels(pipeline, choice.stage, choice.variant).set(1)
            self.energy_per_request.labels(pipeline, choice.stage, choice.variant).set(joules)

    def report(self, component: str, reason: str | None) -> None:
        """Mark `component` ("prometheus", "loop:video", ...) failing with `reason`, or healthy."""
        with self._lock:
            if reason:
                self._degraded[component] = reason
            else:
                self._degraded.pop(component, None)
            self.degraded.set(1 if self._degraded else 0)

    def degraded_reasons(self) -> dict[str, str]:
        with self._lock:
            return dict(self._degraded)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
