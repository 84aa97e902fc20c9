"""Jacobians as linear operators on flat vectors."""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module, is_cupy_array

__all__ = ["JacobianOperator"]


class JacobianOperator:
    """The Jacobian of an element at a fixed point ``(θ, Y)``.

    ``matvec`` maps a flat perturbation to the flat ``dZ`` through the
    element's ``Jmv``; ``rmatvec`` maps a flat ``W`` to the flat adjoint through
    ``JTmv``.  Nothing is assembled; :meth:`todense` assembles column by column
    for small problems.

    Parameters
    ----------
    element : Element
    theta, Y : arrays (validated)
    cache : forward cache at ``(θ, Y)``
    wrt : {'both', 'theta', 'Y'}

    Attributes
    ----------
    shape : (n_examples * n_out, n_cols)
        ``n_cols`` is ``n_theta``, ``n_examples * n_in`` or their sum.
    dtype : numpy.dtype
    """

    def __init__(self, element, theta, Y, cache, wrt):
        self.element, self.theta, self.Y, self.cache, self.wrt = element, theta, Y, cache, wrt
        self.xp = get_array_module(theta, Y)
        self.dtype = Y.dtype
        n_ex = Y.shape[0]
        self._out_shape = (n_ex, *element.shape_out)
        self._n_theta = element.n_theta if wrt in ("both", "theta") else 0
        self._n_Y = Y.size if wrt in ("both", "Y") else 0
        self.shape = (int(np.prod(self._out_shape)), self._n_theta + self._n_Y)

    def matvec(self, v):
        """``J v`` for flat ``v`` of length ``shape[1]``."""
        v = v.reshape(-1)
        if v.shape[0] != self.shape[1]:
            raise ValueError(f"v must have length {self.shape[1]}, got {v.shape[0]}")
        dtheta = v[: self._n_theta] if self._n_theta else None
        dY = v[self._n_theta :].reshape(self.Y.shape) if self._n_Y else None
        if dtheta is None and dY is None:
            return self.xp.zeros(self.shape[0], dtype=self.dtype)
        return self.element.Jmv(dtheta, dY, self.theta, self.Y, self.cache).reshape(-1)

    def rmatvec(self, w):
        """``Jᵀ w`` for flat ``w`` of length ``shape[0]``."""
        w = w.reshape(-1)
        if w.shape[0] != self.shape[0]:
            raise ValueError(f"w must have length {self.shape[0]}, got {w.shape[0]}")
        W = w.reshape(self._out_shape)
        dtheta, dY = self.element.JTmv(W, self.theta, self.Y, self.cache, wrt=self.wrt)
        parts = []
        if self._n_theta:
            parts.append(dtheta.reshape(-1))
        if self._n_Y:
            parts.append(dY.reshape(-1))
        if not parts:
            return self.xp.zeros(0, dtype=self.dtype)
        return parts[0] if len(parts) == 1 else self.xp.concatenate(parts)

    def __matmul__(self, v):
        return self.matvec(v)

    @property
    def T(self):
        """The adjoint as an object with ``matvec``/``@`` (swapped products)."""
        return _Adjoint(self)

    def todense(self):
        """Assemble the Jacobian column by column (small problems only)."""
        xp = self.xp
        M = xp.zeros(self.shape, dtype=self.dtype)
        e = xp.zeros(self.shape[1], dtype=self.dtype)
        for j in range(self.shape[1]):
            e[j] = 1
            M[:, j] = self.matvec(e)
            e[j] = 0
        return M

    def aslinearoperator(self):
        """A ``scipy.sparse.linalg.LinearOperator`` view (CPU arrays only)."""
        if is_cupy_array(self.Y):
            raise TypeError(
                "aslinearoperator() needs numpy arrays; this Jacobian lives on the GPU "
                "(use matvec/rmatvec directly or cupyx.scipy.sparse.linalg)"
            )
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(self.shape, matvec=self.matvec, rmatvec=self.rmatvec, dtype=self.dtype)

    def __repr__(self):
        return f"JacobianOperator({type(self.element).__name__}, wrt={self.wrt!r}, shape={self.shape}, dtype={self.dtype})"


class _Adjoint:
    def __init__(self, op):
        self.op = op
        self.shape = (op.shape[1], op.shape[0])
        self.dtype = op.dtype

    def matvec(self, w):
        return self.op.rmatvec(w)

    def rmatvec(self, v):
        return self.op.matvec(v)

    def __matmul__(self, w):
        return self.op.rmatvec(w)

    @property
    def T(self):
        return self.op
