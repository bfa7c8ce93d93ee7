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
            changed = self.current.get(pipeline) != wanted
            self.current[pipeline] = wanted
            self.applied.append((pipeline, decision))
        if changed:
            logger.info("dry run: would set %s to %s", pipeline, wanted)
        return changed
