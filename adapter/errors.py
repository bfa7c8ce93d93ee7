"""The adapter's error tree; the API maps each class to one status code.

AdapterError
├── ProfileError      a profile file or object breaks the schema       (422)
├── QueryError        Prometheus unreachable or answered badly         (503; the loop: degraded)
├── InfeasibleError   no configuration meets the constraints           (200, feasible=false)
├── ActuationError    the Kubernetes API refused or failed a patch     (502)
├── RequestError      a request refused, naming its field              (its status: 422, 503)
│                     (adapter/decide.py)
├── SolverUnavailable a solver cannot run here (adapter/solve/common.py) (422)
│   └── SolverTimeout a solve ran past its time limit                  (503)
└── InstanceTooLarge  too large for the exhaustive oracle               (422)

A Problem argument past its bounds is an InvalidProblem (adapter/problem.py), a ValueError
naming the field (422).
"""

from __future__ import annotations


class AdapterError(Exception):
    """Base of every error the adapter raises on purpose."""


class ProfileError(AdapterError):
    """A profile breaks the rules; the message names the file, the field and why."""

    def __init__(self, source: str, field: str, why: str) -> None:
        super().__init__(f"{source}: {field}: {why}")
        self.source = source
        self.field = field
        self.why = why


class QueryError(AdapterError):
    """Prometheus could not answer."""


class InfeasibleError(AdapterError):
    """No configuration satisfies the constraints; `binding` is "latency" or "throughput"."""

    def __init__(self, binding: str, message: str) -> None:
        super().__init__(message)
        self.binding = binding


class ActuationError(AdapterError):
    """A reconfiguration could not be applied."""
