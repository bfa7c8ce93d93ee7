"""Exact solvers of the decision problem (adapter.problem), picked by name.

    auto        frontier; should it give up (a frontier past MAX_FRONTIER entries), gurobi when
                gurobipy imports and its licence admits the model, else highs
    frontier    Pareto-frontier merge over stages (numpy), exact
    highs       MILP in HiGHS, zero gap
    gurobi      MILP in Gurobi, zero gap
    exhaustive  the oracle: enumerates every (variant, batch, replicas); small instances only

Backends import their libraries on first use, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import Literal, get_args

from adapter.problem import Decision, Problem, Solver
from adapter.solve.common import SolverUnavailable

logger = logging.getLogger(__name__)

SolverName = Literal["auto", "frontier", "highs", "gurobi", "exhaustive"]
SOLVER_NAMES: tuple[str, ...] = get_args(SolverName)


class AutoSolver:
    """Answers with the first backend that can run; a backend that cannot (e.g. Gurobi's
    size-limited licence refusing a large model) passes the problem on to the next."""

    name = "auto"

    def __init__(self, backends: Sequence[Solver]) -> None:
        if not backends:
            raise ValueError("auto needs at least one backend")
        self._backends = tuple(backends)

    def solve(self, problem: Problem) -> Decision:
        for backend in self._backends[:-1]:
            try:
                return backend.solve(problem)
            except SolverUnavailable as exc:
                logger.debug("auto: %s", exc)
        return self._backends[-1].solve(problem)


def get_solver(name: str) -> Solver:
    """The solver called `name` (one of SOLVER_NAMES). Raises SolverUnavailable when it cannot
    run here (gurobi without gurobipy or a licence), ValueError for an unknown name."""
    from adapter.solve.exhaustive import ExhaustiveSolver
    from adapter.solve.frontier import FrontierSolver
    from adapter.solve.gurobi import GurobiSolver, unavailable_reason
    from adapter.solve.highs import HighsSolver

    if name == "auto":
        # Gurobi only answers when the frontier gives up; it finds out then, not here, whether
        # it can run (its licence check costs ~0.1 s).
        return AutoSolver([FrontierSolver(), GurobiSolver(), HighsSolver()])
    if name == "frontier":
        return FrontierSolver()
    if name == "highs":
        if importlib.util.find_spec("highspy") is None:
            raise SolverUnavailable("highs", "highspy is not installed; pip install highspy")
        return HighsSolver()
    if name == "gurobi":
        reason = unavailable_reason()
        if reason is not None:
            raise SolverUnavailable("gurobi", reason)
        return GurobiSolver()
    if name == "exhaustive":
        return ExhaustiveSolver()
    raise ValueError(f"unknown solver {name!r}; choose one of {', '.join(SOLVER_NAMES)}")


def available_solvers() -> list[str]:
    """The names get_solver accepts here, auto first and the oracle last."""
    names = []
    for name in SOLVER_NAMES:
        try:
            get_solver(name)
        except SolverUnavailable:
            continue
        names.append(name)
    return names


__all__ = ["SOLVER_NAMES", "AutoSolver", "SolverName", "SolverUnavailable", "available_solvers", "get_solver"]
