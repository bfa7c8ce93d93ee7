"""The exact MILP in HiGHS: one binary per (stage, throughput-feasible option), one option per
stage, the latency sum within the SLA, maximise the sum of values; zero optimality gap."""

from __future__ import annotations

from adapter.problem import Option, Problem
from adapter.solve.common import (
    OptionSolver,
    SolverTimeout,
    SolverUnavailable,
    picked_options,
    scaled_costs,
)

# HiGHS's default feasibility tolerances (1e-7, 1e-6) would let it accept a latency sum that
# Problem.is_feasible (slack LATENCY_TOLERANCE_S) refuses; these keep both on the same side.
_FEASIBILITY_TOLERANCE = 1e-9
# The default dual tolerance (1e-7) lets an LP relaxation stop at a vertex whose objective is
# worse by less than that: the zero gap would then be zero only up to 1e-7. 1e-10 is the least.
_DUAL_TOLERANCE = 1e-10


class HighsSolver(OptionSolver):
    name = "highs"

    def choose(self, problem: Problem, per_stage: list[list[Option]]) -> list[Option] | None:
        return _solve_milp(problem, per_stage, self.time_limit_s)


def _solve_milp(problem: Problem, per_stage: list[list[Option]], time_limit_s: float) -> list[Option] | None:
    try:
        import highspy
        from highspy import _core
    except ImportError as exc:  # pragma: no cover - highspy is a hard dependency
        raise SolverUnavailable("highs", f"highspy does not import: {exc}") from exc

    num_stages = len(per_stage)
    flat = [o for options in per_stage for o in options]
    lp = highspy.HighsLp()
    lp.num_col_ = len(flat)
    lp.num_row_ = num_stages + 1
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = scaled_costs(per_stage)
    lp.col_lower_ = [0.0] * len(flat)
    lp.col_upper_ = [1.0] * len(flat)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * len(flat)
    # Rows 0..S-1: exactly one option per stage. Row S: the latency budget.
    lp.row_lower_ = [1.0] * num_stages + [-highspy.kHighsInf]
    lp.row_upper_ = [1.0] * num_stages + [problem.sla_s]
    starts: list[int] = []
    index: list[int] = []
    values: list[float] = []
    for o in flat:
        starts.append(len(index))
        index += [o.stage, num_stages]
        values += [1.0, o.total_latency_s]
    starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = starts
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = values

    # The bare core object: highspy.Highs adds per-instance callback plumbing and prints a banner.
    h = _core._Highs()
    for option, value in (
        ("output_flag", False),
        ("mip_rel_gap", 0.0),
        ("mip_abs_gap", 0.0),
        ("primal_feasibility_tolerance", _FEASIBILITY_TOLERANCE),
        ("mip_feasibility_tolerance", _FEASIBILITY_TOLERANCE),
        ("dual_feasibility_tolerance", _DUAL_TOLERANCE),
        # Models of a few hundred binaries cost more to spread over threads than they gain:
        # one thread halved the median solve time (bench/bench_solvers.py).
        ("threads", 1),
        ("time_limit", time_limit_s),
    ):
        h.setOptionValue(option, value)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return None
    if status == highspy.HighsModelStatus.kTimeLimit:
        raise SolverTimeout("highs", time_limit_s)
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS ended with {h.modelStatusToString(status)}")
    x = h.getSolution().col_value
    return picked_options(per_stage, x)
