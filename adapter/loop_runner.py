"""The adaptation loops on a timer: `adapter run` steps every loop each interval in a daemon
thread, keeps the metrics current, and says when the loop has stalled (a wedged step, a
Prometheus that never answers), which /healthz reports as unhealthy."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from adapter.errors import QueryError
from adapter.loop import AdaptLoop, StepResult
from adapter.metrics import AdapterMetrics

logger = logging.getLogger(__name__)

# The loop is unhealthy when no step completed for this many intervals (at least STALL_MIN_S,
# which covers a step's own worst case: query timeouts and retries, a solve at its time limit).
STALL_INTERVALS = 3
STALL_MIN_S = 60.0


class LoopRunner:
    """Steps every loop each `interval_s` in a daemon thread and keeps the metrics current."""

    def __init__(
        self,
        loops: Sequence[AdaptLoop],
        metrics: AdapterMetrics,
        interval_s: float,
        p99_latency_s: Callable[[str, float], float | None] | None = None,
        stall_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loops = list(loops)
        self.metrics = metrics
        self.interval_s = interval_s
        self.stall_after_s = (
            stall_after_s if stall_after_s is not None else max(STALL_INTERVALS * interval_s, STALL_MIN_S)
        )
        self._p99_latency_s = p99_latency_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adapt-loop", daemon=True)
        self._last_progress_s: float | None = None  # start, then the end of each pass
        for loop in self.loops:
            # The SLA is known before the first decision: export it at once.
            metrics.sla.labels(loop.settings.pipeline).set(loop.settings.sla_s)

    def liveness(self) -> dict[str, str]:
        """{"loop": why} when the loop thread has completed no pass for `stall_after_s` (wedged
        in a step) or has died; {} when it is alive, or was never started."""
        last = self._last_progress_s
        if last is None:
            return {}
        if not self._thread.is_alive() and not self._stop.is_set():
            return {"loop": "the loop thread has died"}
        waited_s = self._clock() - last
        if waited_s > self.stall_after_s:
            return {"loop": f"no step completed for {waited_s:.0f} s (interval {self.interval_s:g} s)"}
        return {}

    def step_all(self, now_s: float) -> list[StepResult]:
        results = []
        for loop in self.loops:
            pipeline = loop.settings.pipeline
            try:
                result = loop.step(now_s)
            except Exception as exc:
                # The thread must outlive any one bad step (a solver refusing the model, a bug):
                # a dead loop behind a healthy API would go unnoticed. Degraded says it.
                logger.exception("step of %s failed", pipeline)
                self.metrics.report(f"loop:{pipeline}", f"step failed: {exc.__class__.__name__}: {exc}")
                continue
            self.metrics.report(f"loop:{pipeline}", result.reason if result.degraded else None)
            self.metrics.set_rates(pipeline, result.observed_rps, result.predicted_rps)
            self.metrics.set_hold(pipeline, result.held_until_s)
            if not result.degraded and result.decision is not None:
                self.metrics.count_decision(pipeline, result.decision)
                self.metrics.set_in_force(loop.profile, result.decision, loop.settings.sla_s)
            if self._p99_latency_s is not None and not result.degraded:
                self._observe_latency(self._p99_latency_s, pipeline, now_s)
            results.append(result)
        return results

    def _observe_latency(
        self, p99_latency_s: Callable[[str, float], float | None], pipeline: str, now_s: float
    ) -> None:
        """The served p99 beside the predicted latency; no latency histogram is no failure."""
        try:
            p99_s = p99_latency_s(pipeline, now_s)
        except QueryError as exc:
            logger.info("no p99 latency for %s: %s", pipeline, exc)
            return
        if p99_s is not None:
            self.metrics.observed_p99.labels(pipeline).set(p99_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.step_all(time.time())
            self._last_progress_s = self._clock()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def start(self) -> None:
        self._last_progress_s = self._clock()
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread; a step stuck in a query is left behind (the thread is a daemon)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
