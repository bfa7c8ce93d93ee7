"""A fixture exporter, NOT energyd or the adapter: a tiny loopback HTTP server that serves, in
Prometheus text format, sample series under exactly the metric names and labels energyd, the
adapter and Seldon Core v1 export (plus kube-state-metrics' kube_pod_labels for the pipeline
rules), so that the dashboards' PromQL can run through a real Prometheus before those services
are wired into this test. Counters and histograms grow with wall time at the rates below, so
`rate()` of each is known: Prometheus' answers can be compared with them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIPELINE = "video"
NAMESPACE = "video"
# (pod, uid, stage, variant, watts on package-0, watts on dram)
PODS = (
    ("video-default-0-detect-7c9d", "0b6c3a52-0001", "detect", "yolov5n", 2.0, 1.0),
    ("video-default-1-classify-5f2e", "0b6c3a52-0002", "classify", "resnet18", 1.0, 0.0),
)
NODE_W = {"package-0": 60.0, "dram": 12.0}
SYSTEM_W, IDLE_W = 4.0, 45.0
OBSERVED_RPS, PREDICTED_RPS = 11.0, 12.5
DECISIONS_PER_S, SOLVE_TIME_S = 0.1, 0.004
LATENCY_S = 0.4  # every request's latency, for the Seldon latency histogram
READ_ERRORS_PER_S = 0.05
SOLVE_BUCKETS_S = (0.001, 0.01, 0.1)
LATENCY_BUCKETS_S = (0.25, 0.5, 1.0)


def _histogram(
    name: str, labels: str, observations: float, value_s: float, buckets: tuple[float, ...]
) -> list[str]:
    lines = [f"# TYPE {name} histogram"]
    for le in buckets:
        lines.append(f'{name}_bucket{{{labels},le="{le}"}} {observations if value_s <= le else 0.0}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {observations}')
    lines.append(f"{name}_sum{{{labels}}} {observations * value_s}")
    lines.append(f"{name}_count{{{labels}}} {observations}")
    return lines


def exposition(elapsed_s: float) -> str:
    """Every series at `elapsed_s` seconds after start: counters are rate x elapsed."""
    t = elapsed_s
    out = ["# TYPE energyd_node_energy_joules_total counter"]
    out += [
        f'energyd_node_energy_joules_total{{zone="{z}",source="powercap"}} {w * t}' for z, w in NODE_W.items()
    ]
    out += ["# TYPE energyd_node_power_watts gauge"]
    out += [f'energyd_node_power_watts{{zone="{z}"}} {w}' for z, w in NODE_W.items()]
    out += ["# TYPE energyd_pod_energy_joules_total counter"]
    for pod, uid, _, _, pkg_w, dram_w in PODS:
        for zone, watts in (("package-0", pkg_w), ("dram", dram_w)):
            labels = f'namespace="{NAMESPACE}",pod="{pod}",pod_uid="{uid}",zone="{zone}"'
            out.append(f"energyd_pod_energy_joules_total{{{labels}}} {watts * t}")
    out += ["# TYPE energyd_container_energy_joules_total counter"]
    for pod, uid, stage, _, pkg_w, _ in PODS:
        labels = f'namespace="{NAMESPACE}",pod="{pod}",pod_uid="{uid}",container="{stage}",zone="package-0"'
        out.append(f"energyd_container_energy_joules_total{{{labels}}} {pkg_w * t}")
    out += ["# TYPE energyd_unattributed_energy_joules_total counter"]
    out += [
        f'energyd_unattributed_energy_joules_total{{zone="package-0",kind="{kind}"}} {w * t}'
        for kind, w in (("system", SYSTEM_W), ("idle", IDLE_W))
    ]
    out += [
        "# TYPE energyd_source_info gauge",
        'energyd_source_info{source="powercap",reason="selected",measured="true"} 1',
        "# TYPE energyd_read_errors_total counter",
        f'energyd_read_errors_total{{reader="powercap"}} {READ_ERRORS_PER_S * t}',
        "# TYPE energyd_sample_duration_seconds gauge",
        "energyd_sample_duration_seconds 0.004",
        "# TYPE adapter_decisions_total counter",
        f'adapter_decisions_total{{pipeline="{PIPELINE}",solver="highs",feasible="true"}} {DECISIONS_PER_S * t}',
    ]
    out += _histogram(
        "adapter_solve_duration_seconds", 'solver="highs"', DECISIONS_PER_S * t, SOLVE_TIME_S, SOLVE_BUCKETS_S
    )
    p = f'pipeline="{PIPELINE}"'
    out += [
        "# TYPE adapter_degraded gauge",
        "adapter_degraded 0",
        "# TYPE adapter_predicted_requests_per_second gauge",
        f"adapter_predicted_requests_per_second{{{p}}} {PREDICTED_RPS}",
        "# TYPE adapter_observed_requests_per_second gauge",
        f"adapter_observed_requests_per_second{{{p}}} {OBSERVED_RPS}",
        "# TYPE adapter_predicted_power_watts gauge",
        f"adapter_predicted_power_watts{{{p}}} 31.0",
        "# TYPE adapter_predicted_latency_seconds gauge",
        f"adapter_predicted_latency_seconds{{{p}}} 0.55",
        "# TYPE adapter_sla_seconds gauge",
        f"adapter_sla_seconds{{{p}}} 6.89",
        "# TYPE adapter_pas gauge",
        f"adapter_pas{{{p}}} 31.9",
    ]
    # Per stage: replicas 2, batch 4, the chosen variant (info = 1) and its 0.3 J per request.
    for name, value, with_variant in (
        ("adapter_stage_replicas", 2, False),
        ("adapter_stage_batch_size", 4, False),
        ("adapter_stage_variant_info", 1, True),
        ("adapter_stage_energy_per_request_joules", 0.3, True),
    ):
        out.append(f"# TYPE {name} gauge")
        for _, _, stage, variant, _, _ in PODS:
            labels = f'{p},stage="{stage}"' + (f',variant="{variant}"' if with_variant else "")
            out.append(f"{name}{{{labels}}} {value}")
    out += _histogram(
        "seldon_api_executor_server_requests_seconds",
        # `namespace` as a Kubernetes scrape attaches it
        f'namespace="{NAMESPACE}",deployment_name="{PIPELINE}",predictor_name="default",'
        'service="predictions",method="post",code="200"',
        OBSERVED_RPS * t,
        LATENCY_S,
        LATENCY_BUCKETS_S,
    )
    out += ["# TYPE kube_pod_labels gauge"]
    out += [
        f'kube_pod_labels{{namespace="{NAMESPACE}",pod="{pod}",label_seldon_deployment_id="{PIPELINE}"}} 1'
        for pod, *_ in PODS
    ]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class FixtureExporter:
    address: str  # host:port, for a scrape config


@contextmanager
def serve_fixture_exporter() -> Iterator[FixtureExporter]:
    """Serve /metrics on a free loopback port until the block exits."""
    start_s = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition(time.monotonic() - start_s).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FixtureExporter(f"127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
