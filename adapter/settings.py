"""Settings of the adapter service, one frozen value built by the CLI and handed to each part."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapter.problem import Weights
from adapter.profiles import Profile, default_sla_s
from adapter.query import NODE_TOTAL_MATCHER, SELDON_V1_LATENCY_BUCKETS, SELDON_V1_REQUESTS

TOKEN_ENV = "ADAPTER_API_TOKEN"


def default_profiles_dir() -> Path:
    """The profiles shipped inside the package (adapter/data/profiles)."""
    return Path(__file__).resolve().parent / "data" / "profiles"


@dataclass(frozen=True)
class AdapterSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    profiles_dir: Path = field(default_factory=default_profiles_dir)
    prometheus_url: str | None = "http://127.0.0.1:9090"
    interval_s: float = 10.0
    pipelines: tuple[str, ...] = ()  # () = every loaded profile
    sla_s: float | None = None  # None: adapter.profiles.default_sla_s per pipeline
    weights: Weights = field(default_factory=Weights)
    replicas_min: int = 1
    replicas_max: int = 32
    solver: str = "auto"
    predictor: str = "max"
    headroom: float = 1.1
    history_window_s: float = 120.0
    apply: bool = False
    seldon: str = "v1"
    namespace: str = "default"
    kubeconfig: Path | None = None  # None: in-cluster, else $KUBECONFIG or ~/.kube/config
    variant_uris: Mapping[str, str] = field(default_factory=dict)
    query_timeout_s: float = 2.0
    query_retries: int = 2
    rate_window_s: float = 30.0  # the [range] of rate(): a few scrape intervals at least
    request_metric: str = SELDON_V1_REQUESTS
    latency_bucket_metric: str = SELDON_V1_LATENCY_BUCKETS
    pipeline_label: str = "deployment_name"
    arrival_metric: str | None = None  # an arrival counter: the offered load directly
    backlog_metric: str | None = None  # else an in-flight/queue gauge: served + its growth
    refresh_energy: bool = False
    energy_matchers: str = NODE_TOTAL_MATCHER  # label matchers on energyd's series
    api_token: str | None = None  # from ADAPTER_API_TOKEN; None refuses every apply

    def sla_for(self, profile: Profile) -> float:
        return self.sla_s if self.sla_s is not None else default_sla_s(profile)
