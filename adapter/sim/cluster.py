"""A discrete-event simulation of one pipeline on a cluster, behind the adapter's LoadHistory and
Actuator seams so that the real AdaptLoop drives it.

The model (docs/simulator.md has the why of each choice):
- Each stage has one FIFO batching queue feeding `replicas` identical servers of one variant.
  A free server takes a batch when `batch` requests wait, or takes what waits (a partial batch)
  once the oldest has waited `batch_timeout_s`, like IPA's central queue with max_batch_time.
- A batch of k requests takes the variant's latency at size k, interpolated linearly between the
  measured sizes (clamped outside them); each request costs energy_per_request_j at size k.
- A request that has waited more than `drop_timeout_s` in a stage queue is dropped when it
  reaches the head of the queue; one served more than `sla_s` after its arrival is late.
- A decision takes effect `switch_delay_s` after the actuator receives it; in-flight batches
  finish on the servers that started them. The first decision takes effect at once (the pipeline
  was deployed before the trace starts).
- The loop sees only what Prometheus would (`demand_signal`): a served-requests counter and an
  in-flight gauge (requests arrived and neither served nor dropped), sampled every second, and
  optionally an arrival counter. `request_rate_history` turns them into the offered-load
  estimate exactly as adapter/query.py's PromQL does (docs/adapter.md, "controller").
- Idle energy: Σ replicas · idle_power_w of the configuration in force, over the whole run
  (until the last request leaves); dynamic energy: the per-request energy of every batch served,
  also by a stage whose requests a later stage drops.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from adapter.errors import ActuationError, QueryError
from adapter.loop import RateSample
from adapter.problem import Decision
from adapter.profiles import Profile, Variant

logger = logging.getLogger(__name__)

_TICK, _SWITCH, _DONE, _TIMER = 0, 1, 2, 3


@dataclass(frozen=True)
class ClusterSettings:
    sla_s: float
    switch_delay_s: float = 5.0
    batch_timeout_s: float = 1.0
    drop_timeout_s: float = 10.0
    # What the serving stack exposes to the loop: "served" (the served counter alone, whose rate
    # saturates at capacity), "backlog" (served + the growth of the in-flight gauge) or
    # "arrivals" (an arrival counter). The default is what `make run`'s stand-in exposes.
    demand_signal: Literal["served", "backlog", "arrivals"] = "backlog"
    rate_window_s: int = 1  # the [range] of rate() over the per-second samples
    # Node packing for the node power floor: the configuration's replicas, all stages together,
    # fill ceil(replicas / replicas_per_node) nodes; SimStats.node_s integrates that count, and
    # the report charges each node-second a node's idle power (0 W: no floor).
    replicas_per_node: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.replicas_per_node <= 10_000:
            raise ValueError(f"replicas_per_node must be in [1, 10000], got {self.replicas_per_node}")


@dataclass(frozen=True)
class StageConfig:
    variant: Variant
    batch: int
    replicas: int


@dataclass(frozen=True)
class SimStats:
    requests: int
    served: int
    dropped: int
    late: int
    latencies_s: npt.NDArray[np.float64]  # end-to-end, of the served requests
    dynamic_energy_j: float
    idle_energy_j: float
    horizon_s: float  # from 0 until the last request left the pipeline (at least the trace)
    cores_mean: float  # time-weighted over the horizon
    pas_mean: float  # time-weighted over the horizon
    switches: int  # configurations that took effect
    node_s: float = 0.0  # node-seconds occupied (ClusterSettings.replicas_per_node packing)


class SimObserver(Protocol):
    """Told of what the simulation schedules when it schedules it, ahead of its simulated time
    (the stand-in replays that in wall time)."""

    def batch_scheduled(
        self, stage: int, start_s: float, end_s: float, variant: Variant, request_ids: list[int]
    ) -> None: ...

    def switch_scheduled(self, at_s: float, config: tuple[StageConfig, ...]) -> None: ...

    def request_dropped(self, stage: int, at_s: float) -> None: ...


class _VariantTable:
    """Latency and energy per request of every batch size 1..max, interpolated once."""

    def __init__(self, variant: Variant, max_batch: int) -> None:
        sizes = np.array([p.size for p in variant.batches], dtype=float)
        ks = np.arange(max_batch + 1, dtype=float)
        self.latency_s = np.interp(ks, sizes, [p.latency_s for p in variant.batches]).tolist()
        self.energy_j = np.interp(ks, sizes, [p.energy_per_request_j for p in variant.batches]).tolist()


class SimCluster:
    """Replays `arrivals_s` (sorted) through `profile`'s stages. Implements LoadHistory and
    Actuator; `run(on_tick, interval_s)` calls `on_tick(now_s)` every interval from t = 0.
    `observer`, if given, hears of every batch and configuration switch as it is scheduled."""

    def __init__(
        self,
        profile: Profile,
        counts: Sequence[int],
        arrivals_s: npt.NDArray[np.float64],
        settings: ClusterSettings,
        warm_rps: float | None = None,
        observer: SimObserver | None = None,
    ) -> None:
        if len(arrivals_s) != sum(counts):
            raise ValueError(f"{len(arrivals_s)} arrival times for a trace of {sum(counts)} requests")
        self.profile = profile
        self.settings = settings
        self._counts = list(counts)
        self._arrivals_s = arrivals_s
        # Before t = 0 the pipeline is taken to have seen the trace's first second all along.
        self._warm_rps = float(counts[0]) if warm_rps is None else warm_rps
        max_batch = max(p.size for s in profile.stages for v in s.variants for p in v.batches)
        self._tables = {
            (si, v.name): _VariantTable(v, max_batch)
            for si, s in enumerate(profile.stages)
            for v in s.variants
        }
        self.now_s = 0.0
        self._config: list[StageConfig] | None = None
        self._last_scheduled: tuple[StageConfig, ...] | None = None
        self._events: list[tuple[float, int, int, int, object]] = []
        self._seq = 0
        self._observer = observer
        # Scraped every whole second t: requests served, and in flight, by time t.
        self._served_at: list[int] = []
        self._in_flight_at: list[int] = []
        self._arrived_at: list[int] = np.concatenate(([0], np.cumsum(counts))).astype(int).tolist()

    # LoadHistory
    def request_rate_history(self, pipeline: str, now_s: float, window_s: float) -> Sequence[RateSample]:
        """The offered-load estimate at every whole second in (now_s - window_s, now_s] already
        scraped, oldest first; before `rate_window_s` of samples exist, the warm rate."""
        if pipeline != self.profile.pipeline:
            raise QueryError(f"no pipeline {pipeline!r} in the simulated cluster")
        first = int(np.floor(now_s - window_s)) + 1
        last = min(int(np.floor(now_s)), len(self._served_at) - 1)
        return [(float(t), self._estimate_rps(t)) for t in range(first, last + 1)]

    def _estimate_rps(self, t: int) -> float:
        w = self.settings.rate_window_s
        if t - w < 0:
            return self._warm_rps  # the pipeline saw the trace's first second all along
        signal = self.settings.demand_signal
        if signal == "arrivals":
            last = len(self._counts)
            return (self._arrived_at[min(t, last)] - self._arrived_at[min(t - w, last)]) / w
        served_rps = (self._served_at[t] - self._served_at[t - w]) / w
        if signal == "served":
            return served_rps
        # As the production PromQL (clamp_min(..., 0)): drops empty the backlog without serving.
        return max(0.0, served_rps + (self._in_flight_at[t] - self._in_flight_at[t - w]) / w)

    # Actuator
    def apply(self, pipeline: str, decision: Decision) -> bool:
        if pipeline != self.profile.pipeline:
            raise ActuationError(f"no pipeline {pipeline!r} in the simulated cluster")
        try:
            config = tuple(
                StageConfig(stage.variant(choice.variant), choice.batch, choice.replicas)
                for stage, choice in zip(self.profile.stages, decision.stages, strict=True)
            )
        except (KeyError, ValueError) as exc:
            raise ActuationError(f"decision does not fit the profile: {exc}") from exc
        if config == self._last_scheduled:
            return False
        self._last_scheduled = config
        at_s = self.now_s + (0.0 if self._config is None else self.settings.switch_delay_s)
        self._push(at_s, _SWITCH, 0, config)
        if self._observer is not None:
            self._observer.switch_scheduled(at_s, config)
        return True

    def _push(self, time_s: float, kind: int, stage: int, data: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (time_s, self._seq, kind, stage, data))

    def run(self, on_tick: Callable[[float], object], interval_s: float) -> SimStats:
        duration_s = float(len(self._counts))
        n_stages = len(self.profile.stages)
        tick = 0.0
        while tick < duration_s:
            self._push(tick, _TICK, 0, None)
            tick += interval_s
        queues: list[deque[tuple[float, int]]] = [deque() for _ in range(n_stages)]
        busy = [0] * n_stages
        timer_at: list[float | None] = [None] * n_stages
        arrivals = self._arrivals_s.tolist()
        done_s = [0.0] * len(arrivals)
        served_ids: list[int] = []
        settings = self.settings
        observer = self._observer
        dropped = 0
        dynamic_j = 0.0
        switches = 0
        # Time integrals of the configuration in force: idle watts, cores, PAS.
        last_t = 0.0
        idle_w = cores = pas = nodes = 0.0
        idle_j = cores_s = pas_s = node_s = 0.0

        def dispatch(s: int, now: float) -> None:
            nonlocal dropped, dynamic_j
            if self._config is None:
                return
            cfg = self._config[s]
            q = queues[s]
            table = self._tables[(s, cfg.variant.name)]
            while busy[s] < cfg.replicas and q:
                while q and now - q[0][0] > settings.drop_timeout_s:
                    q.popleft()
                    dropped += 1
                    if observer is not None:
                        observer.request_dropped(s, now)
                if not q:
                    return
                if len(q) >= cfg.batch or now - q[0][0] >= settings.batch_timeout_s - 1e-12:
                    k = min(len(q), cfg.batch)
                    batch = [q.popleft()[1] for _ in range(k)]
                    dynamic_j += k * table.energy_j[k]
                    busy[s] += 1
                    end = now + table.latency_s[k]
                    self._push(end, _DONE, s, batch)
                    if observer is not None:
                        observer.batch_scheduled(s, now, end, cfg.variant, batch)
                else:
                    fire = q[0][0] + settings.batch_timeout_s
                    if timer_at[s] != fire:
                        timer_at[s] = fire
                        self._push(fire, _TIMER, s, None)
                    return

        i, n = 0, len(arrivals)
        events = self._events
        served_at, in_flight_at = self._served_at, self._in_flight_at
        while events or i < n:
            next_s = arrivals[i] if i < n and (not events or arrivals[i] < events[0][0]) else events[0][0]
            while len(served_at) <= next_s:  # scrape every whole second passed
                served_at.append(len(served_ids))
                in_flight_at.append(i - len(served_ids) - dropped)
            if i < n and (not events or arrivals[i] < events[0][0]):
                now = arrivals[i]
                self.now_s = now
                queues[0].append((now, i))
                i += 1
                dispatch(0, now)
                continue
            now, _, kind, s, data = heapq.heappop(events)
            self.now_s = now
            if kind == _DONE:
                busy[s] -= 1
                batch_ids: list[int] = data  # type: ignore[assignment]
                if s + 1 < n_stages:
                    queues[s + 1].extend((now, rid) for rid in batch_ids)
                    dispatch(s + 1, now)
                else:
                    for rid in batch_ids:
                        done_s[rid] = now
                    served_ids.extend(batch_ids)
                dispatch(s, now)
            elif kind == _TIMER:
                if timer_at[s] == now:
                    timer_at[s] = None
                    dispatch(s, now)
            elif kind == _TICK:
                on_tick(now)
            else:
                idle_j += idle_w * (now - last_t)
                cores_s += cores * (now - last_t)
                pas_s += pas * (now - last_t)
                node_s += nodes * (now - last_t)
                last_t = now
                self._config = list(data)  # type: ignore[call-overload]
                idle_w = sum(c.replicas * c.variant.idle_power_w for c in self._config)
                cores = sum(c.replicas * c.variant.cores for c in self._config)
                pas = 100.0 * float(np.prod([c.variant.accuracy / 100.0 for c in self._config]))
                nodes = float(-(-sum(c.replicas for c in self._config) // settings.replicas_per_node))
                switches += 1
                for stage in range(n_stages):
                    dispatch(stage, now)
        horizon_s = max(duration_s, self.now_s)
        idle_j += idle_w * (horizon_s - last_t)
        cores_s += cores * (horizon_s - last_t)
        pas_s += pas * (horizon_s - last_t)
        node_s += nodes * (horizon_s - last_t)
        ids = np.asarray(served_ids, dtype=np.int64)
        latencies = np.asarray(done_s)[ids] - self._arrivals_s[ids]
        return SimStats(
            requests=n,
            served=len(served_ids),
            dropped=dropped,
            late=int(np.count_nonzero(latencies > settings.sla_s)),
            latencies_s=latencies,
            dynamic_energy_j=dynamic_j,
            idle_energy_j=idle_j,
            horizon_s=horizon_s,
            cores_mean=cores_s / horizon_s,
            pas_mean=pas_s / horizon_s,
            switches=switches,
            node_s=node_s,
        )
