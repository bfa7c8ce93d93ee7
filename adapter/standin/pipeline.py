"""The simulator's cluster model (adapter.sim.cluster.SimCluster) replayed in real time, with what
a real cluster would show: pods that come and go with the configuration, CPU time per pod,
requests served and their latencies.

SimCluster runs its event loop as fast as it can and calls `on_tick(now_s)` every interval of
simulated time; here on_tick sleeps until the wall clock reaches that time, so the simulation
runs at most one interval ahead of the wall clock. What it schedules ahead (a batch occupying a
replica from its start to its end, a request finishing, a configuration taking effect) is
noted when scheduled and published only once the wall clock has passed it. Configurations
arrive from the stand-in API (a patched SeldonDeployment) and are handed to SimCluster.apply at
the next tick, from the simulation's own thread. The trace loops; each pass is a fresh
SimCluster that starts from the configuration last asked for.
"""

from __future__ import annotations

import functools
import heapq
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from adapter.errors import ActuationError
from adapter.problem import Decision, StageChoice
from adapter.profiles import Profile, Variant
from adapter.sim.cluster import ClusterSettings, SimCluster, StageConfig
from adapter.sim.trace import arrival_times_s

log = logging.getLogger(__name__)

Config = tuple[StageConfig, ...]


@dataclass(frozen=True)
class Tick:
    """What happened in the wall-clock interval (start_s, end_s] of the replay."""

    start_s: float
    end_s: float
    config: Config | None  # the configuration that took effect in the interval, if any
    stage_cpu_s: tuple[float, ...]  # CPU-seconds each stage's replicas computed
    latencies_s: list[float] = field(default_factory=list)  # of the requests completed
    arrived: int = 0
    dropped: int = 0  # requests a stage queue dropped (waited past the drop timeout)


def decision_for(profile: Profile, config: Config) -> Decision:
    """A Decision carrying only the choices (SimCluster.apply reads nothing else)."""
    stages = tuple(
        StageChoice(s.name, c.variant.name, c.replicas, c.batch, 0.0, 0.0, 0.0, 0.0)
        for s, c in zip(profile.stages, config, strict=True)
    )
    return Decision(True, 0.0, stages, 0.0, 0.0, 0.0, 0.0, 0.0, "standin", 0.0, None)


def initial_config(profile: Profile) -> Config:
    """One replica of each stage's first variant at its smallest batch."""
    return tuple(StageConfig(s.variants[0], s.variants[0].batches[0].size, 1) for s in profile.stages)


class _Stopped(Exception):
    pass


class _Pass:
    """One pass over the trace: its SimCluster, observed, with what it schedules noted on the
    owner in replay time (the pass starts at `offset_s`)."""

    def __init__(self, owner: PacedPipeline, offset_s: float, counts: Sequence[int], seed: int) -> None:
        arrivals = arrival_times_s(counts, seed)
        self._owner = owner
        self._offset_s = offset_s
        self._pass_arrivals_s = arrivals
        self._last_stage = len(owner.profile.stages) - 1
        self.arrivals_s: npt.NDArray[np.float64] = arrivals + offset_s
        self.cluster = SimCluster(owner.profile, counts, arrivals, owner.settings, observer=self)

    def batch_scheduled(
        self, stage: int, start_s: float, end_s: float, variant: Variant, request_ids: list[int]
    ) -> None:
        self._owner.note_batch(stage, start_s + self._offset_s, end_s + self._offset_s, variant.cores)
        if stage == self._last_stage:
            arrivals = self._pass_arrivals_s
            self._owner.note_done(end_s + self._offset_s, [end_s - float(arrivals[i]) for i in request_ids])

    def switch_scheduled(self, at_s: float, config: Config) -> None:
        self._owner.note_switch(at_s + self._offset_s, config)

    def request_dropped(self, stage: int, at_s: float) -> None:
        self._owner.note_drop(at_s + self._offset_s)


class PacedPipeline:
    """Replays `counts` (requests per second, looped) through `profile` paced to `clock`.

    `on_tick(tick)` is called from the replay thread once per `interval_s` of wall time."""

    def __init__(
        self,
        profile: Profile,
        counts: Sequence[int],
        on_tick: Callable[[Tick], None],
        settings: ClusterSettings,
        interval_s: float = 0.5,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not counts:
            raise ValueError("an empty trace")
        self.profile = profile
        self.settings = settings
        self._counts = list(counts)
        self._on_tick = on_tick
        self._interval_s = interval_s
        self._seed = seed
        self._clock = clock
        self._stop = threading.Event()
        self._wanted: queue.SimpleQueue[Config] = queue.SimpleQueue()
        self._config: Config = initial_config(profile)
        # Scheduled ahead, in replay seconds: (end, start, stage, cores), (done, latencies),
        # (at, config); heaps so each tick pops what the wall clock has passed.
        self._batches: list[tuple[float, float, int, float]] = []
        self._done: list[tuple[float, int, list[float]]] = []
        self._switches: list[tuple[float, int, Config]] = []
        self._drops: list[float] = []
        self._seq = 0
        self._last_s = 0.0
        self._carried = 0  # arrivals of a finished pass not yet reported

    @property
    def config(self) -> Config:
        """The configuration last asked for (in force once the switch delay has passed)."""
        return self._config

    def request(self, config: Config) -> None:
        """Asks for a configuration; thread-safe. It reaches the simulation at the next tick."""
        if len(config) != len(self.profile.stages):
            raise ActuationError(f"{len(config)} stages for a {len(self.profile.stages)}-stage pipeline")
        self._wanted.put(config)

    def note_batch(self, stage: int, start_s: float, end_s: float, cores: float) -> None:
        heapq.heappush(self._batches, (end_s, start_s, stage, cores))

    def note_done(self, at_s: float, latencies_s: list[float]) -> None:
        self._seq += 1
        heapq.heappush(self._done, (at_s, self._seq, latencies_s))

    def note_switch(self, at_s: float, config: Config) -> None:
        self._seq += 1
        heapq.heappush(self._switches, (at_s, self._seq, config))

    def note_drop(self, at_s: float) -> None:
        heapq.heappush(self._drops, at_s)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Replays the trace, looping, until stop(); returns then."""
        start = self._clock()
        offset_s = 0.0
        passes = 0
        try:
            while True:
                run = _Pass(self, offset_s, self._counts, self._seed + passes)
                run.cluster.apply(self.profile.pipeline, decision_for(self.profile, self._config))
                run.cluster.run(functools.partial(self._tick, run, offset_s, start), self._interval_s)
                # The last tick came before the pass's end: its last arrivals go to the next tick.
                self._carried += int(np.count_nonzero(run.arrivals_s > self._last_s))
                offset_s += len(self._counts)
                passes += 1
                log.info("trace pass %d done; looping", passes)
        except _Stopped:
            pass

    def _tick(self, run: _Pass, offset_s: float, start: float, pass_s: float) -> None:
        now_s = offset_s + pass_s
        wait_s = start + now_s - self._clock()
        if wait_s > 0 and self._stop.wait(wait_s):
            raise _Stopped
        if self._stop.is_set():
            raise _Stopped
        while True:
            try:
                config = self._wanted.get_nowait()
            except queue.Empty:
                break
            self._config = config
            run.cluster.apply(self.profile.pipeline, decision_for(self.profile, config))
        self._on_tick(self._collect(run, now_s))

    def _collect(self, run: _Pass, now_s: float) -> Tick:
        last_s, self._last_s = self._last_s, now_s
        config = None
        while self._switches and self._switches[0][0] <= now_s:
            config = heapq.heappop(self._switches)[2]
        cpu_s = [0.0] * len(self.profile.stages)
        for end_s, start_s, stage, cores in self._batches:
            overlap_s = min(end_s, now_s) - max(start_s, last_s)
            if overlap_s > 0:
                cpu_s[stage] += overlap_s * cores
        while self._batches and self._batches[0][0] <= now_s:
            heapq.heappop(self._batches)
        latencies: list[float] = []
        while self._done and self._done[0][0] <= now_s:
            latencies.extend(heapq.heappop(self._done)[2])
        arrivals = run.arrivals_s
        arrived = int(np.searchsorted(arrivals, now_s, "right") - np.searchsorted(arrivals, last_s, "right"))
        arrived, self._carried = arrived + self._carried, 0
        dropped = 0
        while self._drops and self._drops[0] <= now_s:
            heapq.heappop(self._drops)
            dropped += 1
        return Tick(last_s, now_s, config, tuple(cpu_s), latencies, arrived, dropped)
