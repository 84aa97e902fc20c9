"""Optimizers for training as PDE-constrained optimization.

Every solver is a function ``minimize_<name>(problem, x0, *, options...,
callback=None, verbose=False, label=None) -> OptimizeResult``.  ``problem``
follows the protocol of :mod:`meganet.optimizers.problem`
(``value_and_gradient`` and, for second-order methods, ``hessian_matvec``);
options are keyword-only and validated; nothing is printed unless
``verbose=True``, which prints a header naming the solver (``label``, by
default derived from the solver and the problem, e.g. ``Gauss-Newton-CG``),
its preconditioner and main options, then one row per iteration; a callback
``callback(x, row)`` receives a read-only view of the iterate (a copy on
cupy) and may stop a run by raising ``StopIteration``.  The result describes
one point: ``fun == f(x)`` and the history's last row is ``x``'s.

=================================  =========================================================
first order                        :func:`minimize_sgd`, :func:`minimize_adam`,
                                   :func:`minimize_steepest_descent`
quasi-Newton / CG                  :func:`minimize_lbfgs`, :func:`minimize_nonlinear_cg`
second order                       :func:`minimize_newton_cg` (Newton / Gauss-Newton-PCG),
                                   :func:`minimize_trust_region_steihaug`,
                                   :func:`minimize_trust_region_krylov`,
                                   :func:`minimize_gnvpro` (GNvpro: Gauss-Newton-Krylov trust
                                   region on the reduced VarPro objective)
box constraints                    :func:`minimize_projected_gradient`,
                                   :func:`minimize_projected_newton_cg` (and ``lower``/``upper``
                                   of SGD/Adam)
building blocks                    :func:`pcg`, :func:`steihaug_cg`,
                                   :func:`solve_trust_region_subproblem`,
                                   :func:`armijo_backtracking`, :func:`strong_wolfe`
=================================  =========================================================
"""

from .adam import minimize_adam
from .cg import CGResult, SteihaugResult, pcg, steihaug_cg
from .gnvpro import GNVPRO_LABEL, minimize_gnvpro
from .krylov_trust_region import (
    LanczosSubproblem,
    TRSolution,
    minimize_trust_region_krylov,
    solve_trust_region_subproblem,
)
from .lbfgs import minimize_lbfgs
from .linesearch import LineSearchResult, armijo_backtracking, strong_wolfe
from .newton_cg import minimize_newton_cg
from .nonlinear_cg import minimize_nonlinear_cg
from .problem import FunctionProblem, LinearLeastSquares, Problem, QuadraticProblem, Rosenbrock, WorkCounter
from .projected import Box, minimize_projected_gradient, minimize_projected_newton_cg
from .result import History, OptimizeResult, Status
from .sgd import ConstantLR, ExponentialDecayLR, LearningRateSchedule, PiecewiseConstantLR, minimize_sgd
from .steepest_descent import minimize_steepest_descent
from .trust_region import SteihaugSubproblem, TRStep, minimize_trust_region_steihaug

__all__ = [
    # problems and results
    "Problem", "WorkCounter", "QuadraticProblem", "LinearLeastSquares", "Rosenbrock", "FunctionProblem",
    "OptimizeResult", "Status", "History",
    # solvers
    "minimize_sgd", "minimize_adam", "minimize_steepest_descent", "minimize_lbfgs", "minimize_nonlinear_cg",
    "minimize_newton_cg", "minimize_trust_region_steihaug", "minimize_trust_region_krylov",
    "minimize_gnvpro", "GNVPRO_LABEL", "minimize_projected_gradient", "minimize_projected_newton_cg",
    # schedules
    "LearningRateSchedule", "ConstantLR", "PiecewiseConstantLR", "ExponentialDecayLR",
    # building blocks
    "pcg", "CGResult", "steihaug_cg", "SteihaugResult", "solve_trust_region_subproblem", "TRSolution",
    "LanczosSubproblem", "SteihaugSubproblem", "TRStep", "Box",
    "armijo_backtracking", "strong_wolfe", "LineSearchResult",
]
