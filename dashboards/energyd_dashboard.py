"""energyd dashboard: node and pod watts (node totals and per zone), energy per day and its CO2,
power per namespace, one pod drilled into, idle vs dynamic power, unattributed energy, health."""

from __future__ import annotations

from grafanalib.core import Dashboard

from dashboards.panels import dashboard, label_variable, number_variable, stat, table, timeseries

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
# energyd exports pod series for the node_total zones only unless it runs with --pod-zones all.
POD_ZONES = (
    "Pod series exist for the node_total zones only, unless energyd runs with --pod-zones all "
    "(then for every zone, sub-zones included)."
)
DRILL = f'{TOTAL}, namespace=~"$namespace", pod=~"$pod"'
# gCO2 per kWh of the grid that feeds the nodes: the `carbon_intensity` variable, this default
# until the user types theirs. 475 g/kWh is the IEA's world average for electricity generation.
CARBON_INTENSITY_G_PER_KWH = 475
JOULES_PER_KWH = 3.6e6
DAY_KWH = f"sum(increase(energyd_node_energy_joules_total{{{TOTAL}}}[1d])) / {JOULES_PER_KWH:g}"


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
            "Top 10 pods by power",
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
            "Top 10 pods by power per zone",
            [
                (
                    f"topk(10, sum by (namespace, pod, zone) "
                    f"(rate(energyd_pod_energy_joules_total{{{POD}}}[$__rate_interval])))",
                    "{{namespace}}/{{pod}} {{zone}}",
                )
            ],
            "watt",
            "Each pod's share of a zone's energy, by its share of the node's CPU time. "
            + PER_ZONE
            + " "
            + POD_ZONES,
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
            "the rest 'idle'. "
            + POD_ZONES
            + " A zone without pod series shows system and idle only: its pods' share is the rest.",
        ),
        timeseries(
            "Power per namespace",
            [
                (
                    f"sum by (namespace) (rate(energyd_pod_energy_joules_total{{{POD_TOTAL}}}[$__rate_interval]))",
                    "{{namespace}}",
                )
            ],
            "watt",
            'The pods of each namespace together, over the node_total="true" zones: each joule once.',
        ),
        timeseries(
            "Idle vs dynamic power",
            [
                (
                    f'sum(rate(energyd_unattributed_energy_joules_total{{{TOTAL}, kind="idle"}}[$__rate_interval]))',
                    "idle",
                ),
                (
                    f"sum(rate(energyd_pod_energy_joules_total{{{TOTAL}}}[$__rate_interval])) + "
                    f'sum(rate(energyd_unattributed_energy_joules_total{{{TOTAL}, kind="system"}}[$__rate_interval]))',
                    "dynamic (pods + system)",
                ),
            ],
            "watt",
            "Idle: the share of the node's energy spent while its CPUs were idle (energyd's 'idle'). "
            "Dynamic: the rest, spent on busy CPU time, in pods or outside them ('system'). "
            "Idle power is paid whatever runs: consolidating work onto fewer nodes is what lowers it.",
        ),
        stat(
            "Energy per day",
            [(DAY_KWH, "")],
            "kwatth",
            description="The selected nodes' energy over the last 24 hours, in kWh "
            '(node_total="true" zones). A node that has not run a whole day counts what it has.',
        ),
        stat(
            "CO2 per day",
            [(f"{DAY_KWH} * $carbon_intensity", "")],
            "massg",
            description="Energy per day times the carbon_intensity variable (gCO2/kWh of your grid; "
            f"default {CARBON_INTENSITY_G_PER_KWH}, the IEA's world average for electricity).",
        ),
        timeseries(
            "Energy per day by node",
            [
                (
                    f"sum by (instance) (increase(energyd_node_energy_joules_total{{{TOTAL}}}[1d])) / {JOULES_PER_KWH:g}",
                    "{{instance}}",
                )
            ],
            "kwatth",
            "Each node's energy over the 24 hours before each point, in kWh.",
        ),
        timeseries(
            "Pod power ($pod)",
            [
                (
                    f"sum by (namespace, pod) (rate(energyd_pod_energy_joules_total{{{DRILL}}}[$__rate_interval]))",
                    "{{namespace}}/{{pod}}",
                ),
            ],
            "watt",
            'The pods picked in the pod variable, over the node_total="true" zones.',
        ),
        timeseries(
            "Pod share of its node ($pod)",
            [
                (
                    f"sum by (instance, namespace, pod) "
                    f"(rate(energyd_pod_energy_joules_total{{{DRILL}}}[$__rate_interval])) "
                    f"/ on (instance) group_left sum by (instance) "
                    f"(rate(energyd_node_energy_joules_total{{{TOTAL}}}[$__rate_interval]))",
                    "{{namespace}}/{{pod}} on {{instance}}",
                )
            ],
            "percentunit",
            "The picked pods' part of their node's energy (idle included in the node, not in the pod).",
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
            description="Time one sampling pass took. With 1,000 pods on a real cgroupfs, measured: "
            "8-9 ms for pods only (the default); with --containers ~13 ms when pods are named through "
            "the API, 19-34 ms when not (docs/energyd.md).",
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
            label_variable("pod", "energyd_pod_energy_joules_total", "pod"),
            number_variable("carbon_intensity", "Carbon intensity (gCO2/kWh)", CARBON_INTENSITY_G_PER_KWH),
        ],
        panels,
    )
