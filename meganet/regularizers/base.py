"""Base classes of the regularizers ``R(θ)`` on flat parameter vectors and of the
sparse linear operators ``L`` they are built from.

A regularizer offers ``value``, ``gradient``, ``hess_mv`` (exact Hessian
products, or the documented Gauss-Newton one), ``hessian_diagonal`` (a Jacobi
preconditioner) and ``hessian_matrix`` (the Hessian as a ``scipy.sparse``
matrix on the host, for factorized preconditioners such as the regularizer
Hessian used in the MNIST experiment of Haber & Ruthotto 2017, §6.4).

Meganet.m counterpart: ``regularization/tikhonovReg.m``, ``l1Reg.m``,
``blockReg.m`` (``regularizer(x)`` returning ``Sc, dS, d2S``).
"""

from __future__ import annotations

import copy

import numpy as np

from ..backend import get_array_module, is_cupy_array, resolve_xp, to_backend, to_numpy
from ..core.validation import check_array, check_nonnegative

__all__ = ["Regularizer", "Operator"]


def _move(val, xp):
    """Move numpy/cupy arrays (and objects with a ``to`` method, recursively) to ``xp``."""
    if isinstance(val, np.ndarray) or is_cupy_array(val):
        return to_backend(val, xp)
    if isinstance(val, (Regularizer, Operator)):
        return val.to(xp)
    if isinstance(val, (list, tuple)):
        return type(val)(_move(v, xp) for v in val)
    return val


class _Movable:
    def to(self, xp):
        """A copy whose array constants (``theta_ref``, precomputed diagonals)
        live on backend ``xp`` (numpy or cupy)."""
        xp = resolve_xp(xp)
        new = copy.copy(self)
        for key, val in vars(self).items():
            setattr(new, key, _move(val, xp))
        return new


def _const(a, like, name="constant"):
    """The host-built constant ``a`` in the dtype of ``like``; the backends must agree."""
    get_array_module(like, a, names=["theta", f"the regularizer's {name}"])
    return a.astype(like.dtype, copy=False)


class Operator(_Movable):
    """A sparse linear map ``L`` of shape ``(n_out, n_in)`` on flat vectors.

    Products are hand-written with array slicing so that they run on any
    backend and keep float32; :meth:`matrix` assembles the same map with
    ``scipy.sparse`` (host, float64) for preconditioners and tests.

    Subclasses implement ``apply(x)``, ``apply_T(y)``, ``gram_diagonal()``
    (``diag(LᵀL)`` as a float64 numpy vector, computed once) and ``matrix()``.
    """

    n_in: int = 0
    n_out: int = 0

    @property
    def shape(self):
        return (self.n_out, self.n_in)

    def apply(self, x):  # pragma: no cover - abstract
        """``L x``; ``x`` of shape ``(n_in,)``."""
        raise NotImplementedError

    def apply_T(self, y):  # pragma: no cover - abstract
        """``Lᵀ y``; ``y`` of shape ``(n_out,)``."""
        raise NotImplementedError

    def gram_diagonal(self):  # pragma: no cover - abstract
        """``diag(LᵀL)``, float64 numpy array of shape ``(n_in,)``."""
        raise NotImplementedError

    def matrix(self):  # pragma: no cover - abstract
        """``L`` as a ``scipy.sparse.csr_matrix`` (float64)."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(shape={self.shape})"


class Regularizer(_Movable):
    """A twice differentiable penalty ``R(θ)`` on a flat vector θ of length ``n_theta``.

    Subclasses implement the private methods on validated input:
    ``_value_and_gradient(theta, need_grad) -> (value, grad or None)``,
    ``_hess_mv(v, theta)``, ``_hess_diag(theta)``, ``_hess_matrix(theta)``
    (``theta`` is a numpy array there).  Composite regularizers call the
    private methods of their children (validation happens once, at the top).

    Attributes
    ----------
    n_theta : int
    is_quadratic : bool
        The Hessian does not depend on θ (Tikhonov terms).
    """

    n_theta: int = 0
    is_quadratic: bool = False

    # -------------------------------------------------------------- public
    def value(self, theta):
        """``R(θ)``, a 0-d array of θ's dtype."""
        self._check_theta(theta)
        return self._value_and_gradient(theta, False)[0]

    def gradient(self, theta):
        """``∇R(θ)``, shape ``(n_theta,)``."""
        self._check_theta(theta)
        return self._value_and_gradient(theta, True)[1]

    def value_and_gradient(self, theta):
        """``(R(θ), ∇R(θ))``."""
        self._check_theta(theta)
        return self._value_and_gradient(theta, True)

    def hess_mv(self, v, theta):
        """``∇²R(θ) v``, shape ``(n_theta,)``."""
        self._check_theta(theta)
        check_array("v", v, shape=(self.n_theta,), dtype=theta.dtype, xp=get_array_module(theta))
        return self._hess_mv(v, theta)

    def hessian_diagonal(self, theta):
        """``diag ∇²R(θ)``, shape ``(n_theta,)`` (e.g. a Jacobi preconditioner)."""
        self._check_theta(theta)
        return self._hess_diag(theta)

    def hessian_matrix(self, theta):
        """``∇²R(θ)`` as a ``scipy.sparse.csr_matrix`` (host, float64).

        For preconditioners that factorize the regularizer's Hessian; θ is
        copied to the host when it lives on the GPU.
        """
        self._check_theta(theta)
        return self._hess_matrix(to_numpy(theta).astype(np.float64)).tocsr()

    # ---------------------------------------------------------- helpers
    def _check_theta(self, theta):
        check_array("theta", theta, shape=(self.n_theta,))

    def _init_ref(self, theta_ref):
        if theta_ref is None:
            return None
        if not isinstance(theta_ref, np.ndarray) and not is_cupy_array(theta_ref):
            raise TypeError(f"theta_ref must be None or an array of shape ({self.n_theta},), got {type(theta_ref).__name__}")
        check_array("theta_ref", theta_ref, shape=(self.n_theta,))
        return to_numpy(theta_ref).astype(np.float64)

    def _shifted(self, theta):
        """``θ − θ_ref`` in θ's dtype."""
        if getattr(self, "theta_ref", None) is None:
            return theta
        return theta - _const(self.theta_ref, theta, "theta_ref")

    @staticmethod
    def _alpha(alpha):
        return check_nonnegative("alpha", alpha)

    # ------------------------------------------------------- to implement
    def _value_and_gradient(self, theta, need_grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def _hess_mv(self, v, theta):  # pragma: no cover - abstract
        raise NotImplementedError

    def _hess_diag(self, theta):  # pragma: no cover - abstract
        raise NotImplementedError

    def _hess_matrix(self, theta):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(n_theta={self.n_theta})"
