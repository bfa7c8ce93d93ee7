"""An actuator that changes nothing: it logs and records what it would apply.

`adapter run` uses it unless `--apply` is given, so that a first start against a real cluster
shows its decisions before it is trusted with them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from adapter.problem import Decision

logger = logging.getLogger(__name__)

# (stage, variant, replicas, batch) per stage: what a reconfiguration would set.
Configuration = tuple[tuple[str, str, int, int], ...]


def configuration(decision: Decision) -> Configuration:
    return tuple((s.stage, s.variant, s.replicas, s.batch) for s in decision.stages)


def describe_change(old: Configuration | None, new: Configuration) -> str:
    """What a reconfiguration changes, per stage: "detect: yolov5n x1 b1 -> yolov5s x2 b1"
    (stages left as they were are not named); "no change" when none differs."""
    before = {stage: (variant, replicas, batch) for stage, variant, replicas, batch in old or ()}
    parts = []
    for stage, variant, replicas, batch in new:
        now = f"{variant} x{replicas} b{batch}"
        was = before.get(stage)
        if was is None:
            parts.append(f"{stage}: {now}")
        elif was != (variant, replicas, batch):
            parts.append(f"{stage}: {was[0]} x{was[1]} b{was[2]} -> {now}")
    return "; ".join(parts) or "no change"


class DryRunActuator:
    dry_run = True

    def __init__(self, keep: int = 100) -> None:
        self._lock = threading.Lock()
        self.current: dict[str, Configuration] = {}
        # Bounded: the daemon runs for weeks and only the recent decisions are of interest.
        self.applied: deque[tuple[str, Decision]] = deque(maxlen=keep)

    def apply(self, pipeline: str, decision: Decision) -> bool:
        """Record the decision; True when it differs from the last one recorded for `pipeline`."""
        wanted = configuration(decision)
        with self._lock:
            before = self.current.get(pipeline)
            changed = before != wanted
            self.current[pipeline] = wanted
            self.applied.append((pipeline, decision))
        if changed:
            logger.info("dry run: would reconfigure %s: %s", pipeline, describe_change(before, wanted))
        return changed
