"""The problem protocol the optimizers work with, and small concrete problems.

A *problem* is any object with

``value_and_gradient(x) -> (f, g, state)``
    Objective value (a real scalar), gradient (array like ``x``) and an opaque
    ``state`` (e.g. the forward-propagated states of a network) that the
    Hessian product may reuse.  Required by every solver.
``hessian_matvec(x, v, state) -> Hv``
    Product with the Hessian or a Gauss-Newton approximation at ``x``
    (``state`` from the evaluation at ``x``).  Required by Newton-CG and the
    trust-region methods.

and optionally

``value(x) -> (f, state)``
    A cheaper objective-only evaluation (one forward pass).  Line searches
    and trust-region acceptance tests use it at trial points, so rejected
    trials cost no gradient.
``gradient(x, state) -> g``
    The gradient at a point just evaluated by ``value`` (one adjoint pass).
``preconditioner(x, state) -> callable | None``
    A callable ``r ↦ M⁻¹r`` with ``M`` symmetric positive definite (e.g. the
    regularizer's Hessian, Haber & Ruthotto 2017 §6.4), used by PCG.
``n_batches`` and ``stochastic_gradient(x, batch_index, rng) -> (f_B, g_B)``
    Mini-batch estimates for SGD/Adam; ``shuffle(rng)``, if present, is
    called at the start of every epoch to re-partition the examples.
``hessian`` (attribute)
    ``'exact'`` or ``'gauss_newton'``: what ``hessian_matvec`` multiplies
    with (a boolean ``gauss_newton`` says the same).  Solvers name
    themselves after it (``Gauss-Newton-CG`` rather than ``Newton-CG``) and
    word their stop messages for it.
``preconditioner_kind`` (attribute)
    A short name of the preconditioner ``preconditioner`` returns (e.g.
    ``'regularizer'``), ``None`` when it returns none; shown in the solvers'
    table header.
``counter``
    A :class:`WorkCounter` the problem increments itself (forward and
    adjoint passes).  When present, solvers report the work units it counted
    during the run; otherwise they use the model ``value = 1``,
    ``gradient = 1``, ``Hessian matvec = 2`` (a linearized forward and an
    adjoint pass, as in the GNvpro paper), mini-batch gradient = ``2/n_batches``.

The concrete problems below follow that convention and are meant for tests,
examples and checking a solver before pointing it at a network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core.validation import check_array, check_int
from ._common import callable_name, check_real

__all__ = [
    "WorkCounter",
    "Problem",
    "QuadraticProblem",
    "LinearLeastSquares",
    "Rosenbrock",
    "FunctionProblem",
]


@dataclass
class WorkCounter:
    """Forward and adjoint passes ("work units" of Newman et al. 2020, GNvpro).

    Problems increment it; callers may increment it too (e.g. for a
    validation pass they want to account for) and :meth:`reset` it.
    """

    forward: float = 0.0
    adjoint: float = 0.0

    def add(self, *, forward: float = 0.0, adjoint: float = 0.0) -> None:
        self.forward += forward
        self.adjoint += adjoint

    @property
    def work_units(self) -> float:
        return self.forward + self.adjoint

    def reset(self) -> None:
        self.forward = self.adjoint = 0.0


class Problem:
    """Optional base class: holds a :class:`WorkCounter` and documents the protocol
    (see the module docstring).  Solvers accept any object with the methods."""

    def __init__(self):
        self.counter = WorkCounter()

    def value_and_gradient(self, x):  # pragma: no cover - interface
        raise NotImplementedError


def _check_matrix(name, A, *, square):
    check_array(name, A)
    if A.ndim != 2 or (square and A.shape[0] != A.shape[1]):
        what = "a square 2-D array" if square else "a 2-D array"
        raise ValueError(f"{name} must be {what}, got shape {tuple(A.shape)}")
    return A


def _check_precond(preconditioner):
    if preconditioner is not None and not callable(preconditioner):
        raise TypeError(f"preconditioner must be a callable r -> M^-1 r or None, got {type(preconditioner).__name__}")
    return preconditioner


class QuadraticProblem(Problem):
    r"""The quadratic :math:`f(x) = \tfrac12 x^\top A x - b^\top x + c`, gradient
    :math:`Ax - b`, Hessian :math:`A` (symmetric, possibly indefinite).

    Parameters
    ----------
    A : array, shape (n, n)
        Symmetric (checked to ``1e-10`` relative); numpy or cupy, float32/64.
    b : array, shape (n,)
        Same backend and dtype as ``A``.
    c : float, default 0.0
    preconditioner : callable ``r -> M⁻¹r``, optional
    """

    #: ``hessian_matvec`` multiplies with the exact Hessian ``A``.
    hessian = "exact"

    def __init__(self, A, b, *, c=0.0, preconditioner=None):
        super().__init__()
        _check_matrix("A", A, square=True)
        check_array("b", b, dtype=A.dtype, xp=get_array_module(A), shape=(A.shape[0],))
        An = to_numpy(A)
        if not np.allclose(An, An.T, rtol=1e-10, atol=1e-10 * max(1.0, float(np.abs(An).max()))):
            raise ValueError("A must be symmetric (the Hessian of a quadratic)")
        self.A, self.b, self.c = A, b, check_real("c", c)
        self._precond = _check_precond(preconditioner)
        self.preconditioner_kind = None if self._precond is None else callable_name(self._precond)

    def value(self, x):
        Ax = self.A @ x
        self.counter.add(forward=1)
        return 0.5 * float(x @ Ax) - float(self.b @ x) + self.c, Ax

    def gradient(self, x, state):
        self.counter.add(adjoint=1)
        return state - self.b

    def value_and_gradient(self, x):
        f, Ax = self.value(x)
        return f, self.gradient(x, Ax), Ax

    def hessian_matvec(self, x, v, state):
        self.counter.add(forward=1, adjoint=1)
        return self.A @ v

    def preconditioner(self, x, state):
        return self._precond


class LinearLeastSquares(Problem):
    r"""Regularized linear least squares
    :math:`f(x) = \tfrac12\|Ax - b\|^2 + \tfrac{\alpha}{2}\|x\|^2`
    (gradient :math:`A^\top(Ax-b) + \alpha x`, Hessian :math:`A^\top A + \alpha I`).

    With ``batch_size`` it is also a finite-sum problem for SGD/Adam: the rows
    are shuffled each epoch and split into ``n_batches`` mini-batches ``B``;
    ``stochastic_gradient`` returns the unbiased estimates
    :math:`\tfrac{m}{|B|}\tfrac12\|A_Bx-b_B\|^2 + \tfrac{\alpha}{2}\|x\|^2` and
    its gradient.

    Parameters
    ----------
    A : array, shape (m, n)
    b : array, shape (m,)
    alpha : float, default 0.0
        Tikhonov (weight-decay) parameter, ``>= 0``.
    batch_size : int, optional
        Mini-batch size for the stochastic methods (default: one batch of all rows).
    preconditioner : callable ``r -> M⁻¹r``, optional
    """

    #: ``hessian_matvec`` multiplies with the exact Hessian ``AᵀA + αI`` (which is also the Gauss-Newton matrix).
    hessian = "exact"

    def __init__(self, A, b, *, alpha=0.0, batch_size=None, preconditioner=None):
        super().__init__()
        _check_matrix("A", A, square=False)
        check_array("b", b, dtype=A.dtype, xp=get_array_module(A), shape=(A.shape[0],))
        self.A, self.b = A, b
        self.alpha = check_real("alpha", alpha, low=0.0)
        m = A.shape[0]
        self.batch_size = m if batch_size is None else min(check_int("batch_size", batch_size, minimum=1), m)
        self.n_batches = -(-m // self.batch_size)
        self._perm = np.arange(m)
        self._precond = _check_precond(preconditioner)
        self.preconditioner_kind = None if self._precond is None else callable_name(self._precond)

    def value(self, x):
        r = self.A @ x - self.b
        self.counter.add(forward=1)
        return 0.5 * float(r @ r) + 0.5 * self.alpha * float(x @ x), r

    def gradient(self, x, state):
        self.counter.add(adjoint=1)
        return self.A.T @ state + self.alpha * x

    def value_and_gradient(self, x):
        f, r = self.value(x)
        return f, self.gradient(x, r), r

    def hessian_matvec(self, x, v, state):
        self.counter.add(forward=1, adjoint=1)
        return self.A.T @ (self.A @ v) + self.alpha * v

    def preconditioner(self, x, state):
        return self._precond

    def shuffle(self, rng):
        """Draw a new partition of the rows into mini-batches."""
        self._perm = rng.permutation(self.A.shape[0])

    def stochastic_gradient(self, x, batch_index, rng):
        xp = get_array_module(x)
        idx = self._perm[batch_index * self.batch_size:(batch_index + 1) * self.batch_size]
        idx = xp.asarray(idx)
        AB, bB = self.A[idx], self.b[idx]
        scale = self.A.shape[0] / len(idx)
        r = AB @ x - bB
        self.counter.add(forward=1.0 / self.n_batches, adjoint=1.0 / self.n_batches)
        f = 0.5 * scale * float(r @ r) + 0.5 * self.alpha * float(x @ x)
        return f, scale * (AB.T @ r) + self.alpha * x


class Rosenbrock(Problem):
    r"""The extended Rosenbrock function (as ``scipy.optimize.rosen``)

    .. math:: f(x) = \sum_{i=1}^{n-1} 100\,(x_{i+1} - x_i^2)^2 + (1 - x_i)^2,

    minimized at :math:`x = (1, \dots, 1)` with :math:`f = 0`.

    Parameters
    ----------
    n : int, default 2
        Dimension (``>= 2``).
    hessian : {'exact', 'gauss_newton'}
        ``hessian_matvec`` multiplies with the exact Hessian (indefinite away
        from the valley) or with the Gauss-Newton matrix :math:`2J^\top J` of
        the residuals :math:`r = (10(x_{i+1} - x_i^2),\ 1 - x_i)`, which is
        positive semidefinite.
    """

    def __init__(self, n=2, *, hessian="exact"):
        super().__init__()
        self.n = check_int("n", n, minimum=2)
        if hessian not in ("exact", "gauss_newton"):
            raise ValueError(f"hessian must be one of {{'exact', 'gauss_newton'}}, got {hessian!r}")
        self.hessian = hessian

    def _check(self, x):
        if x.shape != (self.n,):
            raise ValueError(f"x must have shape ({self.n},), got {tuple(x.shape)}")

    def value(self, x):
        self._check(x)
        self.counter.add(forward=1)
        a, b = x[:-1], x[1:]
        return float(100.0 * ((b - a * a) ** 2).sum() + ((1.0 - a) ** 2).sum()), None

    def gradient(self, x, state):
        xp = get_array_module(x)
        self.counter.add(adjoint=1)
        g = xp.zeros_like(x)
        a, b = x[:-1], x[1:]
        t = b - a * a
        g[:-1] += -400.0 * a * t - 2.0 * (1.0 - a)
        g[1:] += 200.0 * t
        return g

    def value_and_gradient(self, x):
        f, state = self.value(x)
        return f, self.gradient(x, state), state

    def hessian_matvec(self, x, v, state):
        xp = get_array_module(x)
        self.counter.add(forward=1, adjoint=1)
        a, b = x[:-1], x[1:]
        if self.hessian == "gauss_newton":
            # r1 = 10 (b - a^2), r2 = 1 - a;  J v = (10 (v_b - 2 a v_a), -v_a);  H_GN v = 2 Jᵀ J v
            u1 = 10.0 * (v[1:] - 2.0 * a * v[:-1])
            u2 = -v[:-1]
            out = xp.zeros_like(v)
            out[:-1] += -20.0 * a * u1 - u2
            out[1:] += 10.0 * u1
            return 2.0 * out
        # exact Hessian (tridiagonal), as scipy.optimize.rosen_hess_prod
        out = xp.zeros_like(v)
        out[:-1] += (1200.0 * a * a - 400.0 * b + 2.0) * v[:-1] - 400.0 * a * v[1:]
        out[1:] += 200.0 * v[1:] - 400.0 * a * v[:-1]
        return out

    def residuals(self, x):
        """The residual vector ``r(x)`` with ``f = ‖r‖²`` (length ``2(n-1)``)."""
        xp = get_array_module(x)
        a, b = x[:-1], x[1:]
        return xp.concatenate([10.0 * (b - a * a), 1.0 - a])


class FunctionProblem(Problem):
    """Adapter from plain functions to the problem protocol.

    Parameters
    ----------
    fun : callable ``x -> float``
    grad : callable ``x -> array like x``
    hessp : callable ``(x, v) -> array``, optional
        Hessian(-approximation) vector product; needed by the second-order solvers.
    preconditioner : callable ``r -> M⁻¹r``, optional
    hessian : {None, 'exact', 'gauss_newton'}
        What ``hessp`` multiplies with, if you want the solvers to say so
        (``None``: not declared).

    Work units follow the default model: ``fun`` 1, ``grad`` 1, ``hessp`` 2.
    """

    def __init__(self, fun, grad, hessp=None, *, preconditioner=None, hessian=None):
        super().__init__()
        for name, f in (("fun", fun), ("grad", grad)):
            if not callable(f):
                raise TypeError(f"{name} must be callable, got {type(f).__name__}")
        if hessp is not None and not callable(hessp):
            raise TypeError(f"hessp must be callable (x, v) -> Hv or None, got {type(hessp).__name__}")
        if hessian not in (None, "exact", "gauss_newton"):
            raise ValueError(f"hessian must be one of {{None, 'exact', 'gauss_newton'}}, got {hessian!r}")
        self.fun, self.grad, self.hessp, self.hessian = fun, grad, hessp, hessian
        self._precond = _check_precond(preconditioner)
        self.preconditioner_kind = None if self._precond is None else callable_name(self._precond)

    def value(self, x):
        self.counter.add(forward=1)
        return self.fun(x), None

    def gradient(self, x, state):
        self.counter.add(adjoint=1)
        return self.grad(x)

    def value_and_gradient(self, x):
        f, state = self.value(x)
        return f, self.gradient(x, state), state

    def hessian_matvec(self, x, v, state):
        if self.hessp is None:
            raise TypeError("this FunctionProblem was built without hessp; second-order solvers need "
                            "FunctionProblem(fun, grad, hessp)")
        self.counter.add(forward=1, adjoint=1)
        return self.hessp(x, v)

    def preconditioner(self, x, state):
        return self._precond
