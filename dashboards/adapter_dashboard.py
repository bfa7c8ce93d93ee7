"""adapter dashboard: decisions over time (variant, replicas, batch), predicted vs observed load,
energy per request per stage and variant, latency against the SLA, and degraded status."""

from __future__ import annotations

from grafanalib.core import Dashboard

from dashboards.panels import dashboard, label_variable, stat, state_timeline, timeseries

UID = "energyd-adapter"
PIPE = 'pipeline=~"$pipeline"'
# Seldon Core v1 executor metrics name the SeldonDeployment in `deployment_name`; the example
# pipeline names its SeldonDeployment after the profile's pipeline, so the variable matches both.
SELDON = 'deployment_name=~"$pipeline"'
# Recorded by deploy/prometheus/rules.yaml: energyd's pod energy joined to pipelines, summed over
# the zones that make up the node (node_total="true": what the planned figures compare with),
# and per zone (zones overlap, so those are read one at a time with the zone picker).
TOTAL = "namespace_pipeline:energyd_"
MEASURED = "namespace_pipeline_zone:energyd_"
MEASURED_SEL = f'{PIPE}, zone=~"$zone"'


def build() -> Dashboard:
    panels = [
        timeseries(
            "Load: predicted vs observed",
            [
                (f"adapter_predicted_requests_per_second{{{PIPE}}}", "{{pipeline}} predicted"),
                (f"adapter_observed_requests_per_second{{{PIPE}}}", "{{pipeline}} observed"),
            ],
            "reqps",
        ),
        state_timeline(
            "Variant per stage",
            [(f"adapter_stage_variant_info{{{PIPE}}} == 1", "{{pipeline}}/{{stage}}: {{variant}}")],
            "The variant the adapter chose for each stage (one lane per stage and variant).",
        ),
        timeseries(
            "Replicas per stage",
            [(f"adapter_stage_replicas{{{PIPE}}}", "{{pipeline}}/{{stage}}")],
            "short",
        ),
        timeseries(
            "Batch size per stage",
            [(f"adapter_stage_batch_size{{{PIPE}}}", "{{pipeline}}/{{stage}}")],
            "short",
        ),
        timeseries(
            "Energy per request by stage and variant",
            [
                (
                    f"adapter_stage_energy_per_request_joules{{{PIPE}}}",
                    "{{pipeline}}/{{stage}} {{variant}}",
                )
            ],
            "joule",
            "The joules per request the adapter plans with: the profile's, refreshed from energyd.",
        ),
        timeseries(
            "Energy per request: planned vs measured",
            [
                (
                    f"sum by (pipeline) (adapter_stage_energy_per_request_joules{{{PIPE}}})",
                    "{{pipeline}} planned",
                ),
                (f"{TOTAL}energy_per_request_joules:ratio_rate2m{{{PIPE}}}", "{{pipeline}} measured"),
                (
                    f"{MEASURED}energy_per_request_joules:ratio_rate2m{{{MEASURED_SEL}}}",
                    "{{pipeline}} measured {{zone}}",
                ),
            ],
            "joule",
            "Measured: the pipeline pods' watts from energyd over its request rate, over the node's "
            "zones (node_total) and per picked zone (recording rules in deploy/prometheus/rules.yaml).",
        ),
        timeseries(
            "Pipeline power: predicted vs measured",
            [
                (f"adapter_predicted_power_watts{{{PIPE}}}", "{{pipeline}} predicted"),
                (f"{TOTAL}pod_energy_joules:rate2m{{{PIPE}}}", "{{pipeline}} measured"),
                (f"{MEASURED}pod_energy_joules:rate2m{{{MEASURED_SEL}}}", "{{pipeline}} measured {{zone}}"),
            ],
            "watt",
        ),
        timeseries(
            "Latency vs SLA",
            [
                (f"adapter_predicted_latency_seconds{{{PIPE}}}", "{{pipeline}} predicted"),
                (f"adapter_sla_seconds{{{PIPE}}}", "{{pipeline}} SLA"),
                (
                    "histogram_quantile(0.99, sum by (le, deployment_name) "
                    f"(rate(seldon_api_executor_server_requests_seconds_bucket{{{SELDON}}}[$__rate_interval])))",
                    "{{deployment_name}} observed p99",
                ),
            ],
            "s",
        ),
        timeseries(
            "Pipeline accuracy (PAS)",
            [(f"adapter_pas{{{PIPE}}}", "{{pipeline}}")],
            "percent",
        ),
        stat(
            "Predicted latency / SLA",
            [(f"max(adapter_predicted_latency_seconds{{{PIPE}}} / adapter_sla_seconds{{{PIPE}}})", "")],
            "percentunit",
            thresholds=((0.0, "green"), (0.8, "orange"), (1.0, "red")),
            description="Above 100 % the chosen configuration is predicted to miss the SLA.",
        ),
        stat(
            "Adapter status",
            [("max(adapter_degraded)", "")],
            "none",
            thresholds=((0.0, "green"), (1.0, "red")),
            mappings=[
                {
                    "type": "value",
                    "options": {"0": {"text": "OK", "index": 0}, "1": {"text": "DEGRADED", "index": 1}},
                }
            ],
            description="Degraded: Prometheus unreachable, the adapter keeps its last decision.",
        ),
        timeseries(
            "Decisions",
            [
                (
                    f"sum by (pipeline, solver, feasible) (rate(adapter_decisions_total{{{PIPE}}}[$__rate_interval]))",
                    "{{pipeline}} {{solver}} feasible={{feasible}}",
                )
            ],
            "ops",
        ),
        timeseries(
            "Solve time p99",
            [
                (
                    "histogram_quantile(0.99, sum by (le, solver) "
                    "(rate(adapter_solve_duration_seconds_bucket[$__rate_interval])))",
                    "{{solver}}",
                )
            ],
            "s",
        ),
    ]
    return dashboard(
        "energyd: adapter decisions",
        UID,
        ["energyd", "adapter", "seldon"],
        [
            label_variable("pipeline", "adapter_sla_seconds", "pipeline"),
            label_variable("zone", "energyd_node_power_watts", "zone"),
        ],
        panels,
    )
