"""The same exact MILP as highs.py, in Gurobi. The pip wheel carries a size-limited licence:
models past its limit raise SolverUnavailable, which `auto` answers by using HiGHS instead."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from adapter.problem import Option, Problem
from adapter.solve.common import (
    OptionSolver,
    SolverTimeout,
    SolverUnavailable,
    picked_options,
    scaled_costs,
)

# Gurobi's error code for "Model too large for size-limited license".
_SIZE_LIMIT_EXCEEDED = 10010
# The tightest tolerances Gurobi accepts: feasibility so that its answers also pass
# Problem.is_feasible (slack 1e-9 on the latency sum), optimality so that LP relaxations do not
# stop at a vertex worse by up to the default 1e-6 (values are scaled to a spread of 1).
_TOLERANCE = 1e-9


@functools.cache
def _environment() -> tuple[Any, str | None]:
    """(a started gurobipy Env or None, why not): decided once per process, on first use, so
    that importing adapter.solve neither imports gurobipy nor checks a licence."""
    try:
        import gurobipy
    except ImportError as exc:
        return None, f"gurobipy does not import ({exc}); pip install gurobipy"
    try:
        env = gurobipy.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
    except gurobipy.GurobiError as exc:
        return None, f"no usable Gurobi licence: {exc}"
    return env, None


def unavailable_reason() -> str | None:
    """Why Gurobi cannot be used here, or None when it can."""
    return _environment()[1]


class GurobiSolver(OptionSolver):
    name = "gurobi"

    def choose(self, problem: Problem, per_stage: list[list[Option]]) -> list[Option] | None:
        return _solve_milp(problem, per_stage, self.time_limit_s)


def _solve_milp(problem: Problem, per_stage: list[list[Option]], time_limit_s: float) -> list[Option] | None:
    env, reason = _environment()
    if env is None:
        raise SolverUnavailable("gurobi", reason or "unknown")
    import gurobipy
    from gurobipy import GRB

    flat = [o for options in per_stage for o in options]
    with gurobipy.Model(env=env) as model:
        for param, value in (
            ("MIPGap", 0.0),
            ("MIPGapAbs", 0.0),
            ("FeasibilityTol", _TOLERANCE),
            ("IntFeasTol", _TOLERANCE),
            ("OptimalityTol", _TOLERANCE),
            ("Threads", 1),
            ("TimeLimit", time_limit_s),
        ):
            model.setParam(param, value)
        x = model.addMVar(len(flat), vtype=GRB.BINARY)
        offset = 0
        for options in per_stage:
            model.addConstr(x[offset : offset + len(options)].sum() == 1)
            offset += len(options)
        model.addConstr(np.array([o.total_latency_s for o in flat]) @ x <= problem.sla_s)
        model.setObjective(np.array(scaled_costs(per_stage)) @ x, GRB.MAXIMIZE)
        try:
            model.optimize()
        except gurobipy.GurobiError as exc:
            if exc.errno == _SIZE_LIMIT_EXCEEDED:
                raise SolverUnavailable("gurobi", f"the licence is size-limited: {exc}") from exc
            raise
        if model.Status in (GRB.INFEASIBLE, GRB.INF_OR_UNBD):
            return None
        if model.Status == GRB.TIME_LIMIT:
            raise SolverTimeout("gurobi", time_limit_s)
        if model.Status != GRB.OPTIMAL:
            raise RuntimeError(f"Gurobi ended with status {model.Status}")
        values = np.asarray(x.X, dtype=float)
    return picked_options(per_stage, values.tolist())
