"""energyd dashboard: node and pod watts (node totals and per zone), unattributed energy, health."""

from __future__ import annotations

from grafanalib.core import Dashboard

from dashboards.panels import dashboard, label_variable, stat, table, timeseries

UID = "energyd-node-energy"
NODE_ONLY = 'instance=~"$instance"'
NODE = f'{NODE_ONLY}, zone=~"$zone"'
POD = f'{NODE}, namespace=~"$namespace"'
# Zones overlap (core inside package, psys around packages and dram): a sum over zones keeps to
# those energyd labels node_total="true", which count each joule once; the per-zone panels show
# one series per zone, and the zone picker chooses the zones to look at.
TOTAL = f'{NODE_ONLY}, node_total="true"'
POD_TOTAL = f'{TOTAL}, namespace=~"$namespace"'
PER_ZONE = "One series per zone: zones overlap, so read packages + dram, or psys alone, never both."


def build() -> Dashboard:
    panels = [
        timeseries(
            "Node power",
            [(f"sum by (instance) (energyd_node_power_watts{{{TOTAL}}})", "{{instance}}")],
            "watt",
            'The zones that make up the node (node_total="true": packages + dram, or psys alone), '
            "summed: each joule once.",
        ),
        timeseries(
            "Top 10 pods by power per zone",
            [
                (
                    f"topk(10, sum by (namespace, pod) "
                    f"(rate(energyd_pod_energy_joules_total{{{POD_TOTAL}}}[$__rate_interval])))",
                    "{{namespace}}/{{pod}}",
                )
            ],
            "watt",
            "Each pod's share of the node's energy (the node_total zones), by its share of CPU time.",
        ),
        timeseries(
            "Node power by zone",
            [(f"sum by (instance, zone) (energyd_node_power_watts{{{NODE}}})", "{{instance}} {{zone}}")],
            "watt",
            "Power over energyd's last sampling interval, per RAPL zone (or the estimate's zone). "
            + PER_ZONE,
        ),
        timeseries(
            "Node power by source",
            [
                (
                    f"sum by (instance, zone, source) "
                    f"(rate(energyd_node_energy_joules_total{{{NODE}}}[$__rate_interval]))",
                    "{{instance}} {{zone}} ({{source}})",
                )
            ],
            "watt",
            "Which reader measured the energy: powercap, perf, or estimate (not a measurement).",
        ),
        timeseries(
            "Top 10 pods by power",
            [
                (
                    f"topk(10, sum by (namespace, pod, zone) "
                    f"(rate(energyd_pod_energy_joules_total{{{POD}}}[$__rate_interval])))",
                    "{{namespace}}/{{pod}} {{zone}}",
                )
            ],
            "watt",
            "Each pod's share of a zone's energy, by its share of the node's CPU time. " + PER_ZONE,
        ),
        timeseries(
            "Attributed and unattributed power",
            [
                (
                    f"sum by (zone) (rate(energyd_pod_energy_joules_total{{{NODE}}}[$__rate_interval]))",
                    "pods {{zone}}",
                ),
                (
                    f"sum by (zone, kind) "
                    f"(rate(energyd_unattributed_energy_joules_total{{{NODE}}}[$__rate_interval]))",
                    "{{kind}} {{zone}}",
                ),
            ],
            "watt",
            "Per zone, pods + system + idle = the zone's energy: busy time outside pods is 'system', "
            "the rest 'idle'.",
        ),
        table(
            "Energy per pod over the time range",
            [
                (
                    f"topk(20, sum by (namespace, pod) "
                    f"(increase(energyd_pod_energy_joules_total{{{POD_TOTAL}}}[$__range])))",
                    "",
                )
            ],
            "joule",
            'Over the node_total="true" zones: each joule once.',
        ),
        table(
            "Energy source per node",
            [(f"max by (instance, source, measured, reason) (energyd_source_info{{{NODE_ONLY}}})", "")],
            "none",
            'reason="selected" is the source in use (measured=false: the CPU-utilisation estimate); '
            "the other rows say why each source was passed over.",
        ),
        timeseries(
            "Read errors",
            [
                (
                    f"sum by (instance, reader) (rate(energyd_read_errors_total{{{NODE_ONLY}}}[$__rate_interval]))",
                    "{{instance}} {{reader}}",
                )
            ],
            "ops",
        ),
        stat(
            "Sampling cost (slowest node)",
            [(f"max(energyd_sample_duration_seconds{{{NODE_ONLY}}})", "")],
            "s",
            thresholds=((0.0, "green"), (0.05, "orange"), (0.5, "red")),
            description="Time one sampling pass took. With 1,000 pods, measured: 15-26 ms on fixture "
            "files, 21-36 ms on real cgroupfs with per-container series, 11-13 ms with --no-containers "
            "(docs/energyd.md).",
        ),
    ]
    return dashboard(
        "energyd: node and pod energy",
        UID,
        ["energyd", "energy"],
        [
            label_variable("instance", "energyd_node_power_watts", "instance"),
            label_variable("zone", "energyd_node_power_watts", "zone"),
            label_variable("namespace", "energyd_pod_energy_joules_total", "namespace"),
        ],
        panels,
    )
