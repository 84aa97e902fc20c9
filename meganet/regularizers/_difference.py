"""Finite differences along one axis, hand-written with array slicing (any
backend, dtype preserved), and the same operators assembled with
``scipy.sparse`` (host, float64) for Hessian matrices and tests.

``numpy.diff`` / ``scipy.ndimage.laplace`` offer the forward products on numpy
arrays; the versions here also provide the adjoints and run on cupy.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..backend import get_array_module

BOUNDARIES = ("neumann", "periodic", "dirichlet")
_PAD_MODE = {"neumann": "edge", "periodic": "wrap", "dirichlet": "constant"}


def _take(x, start, stop, axis):
    idx = [slice(None)] * x.ndim
    idx[axis] = slice(start, stop)
    return x[tuple(idx)]


def _pad1(x, axis, mode):
    widths = [(0, 0)] * x.ndim
    widths[axis] = (1, 1)
    return get_array_module(x).pad(x, widths, mode=mode)


def forward_diff(x, axis):
    """``(Dx)_i = x_{i+1} − x_i``, ``i = 0..n−2`` along ``axis`` (no boundary rows)."""
    return _take(x, 1, None, axis) - _take(x, None, -1, axis)


def forward_diff_T(y, axis):
    """Adjoint of :func:`forward_diff`: ``(Dᵀy)_i = y_{i−1} − y_i`` with ``y_{−1} = y_{n−1} = 0``."""
    yp = _pad1(y, axis, "constant")
    return _take(yp, None, -1, axis) - _take(yp, 1, None, axis)


def second_diff(x, axis, boundary):
    """``x_{i−1} − 2x_i + x_{i+1}`` along ``axis`` with ghost values from ``boundary``:
    'neumann' (``x_{−1} = x_0``: zero flux, ``= −DᵀD``), 'periodic', 'dirichlet' (zero outside)."""
    xp_ = _pad1(x, axis, _PAD_MODE[boundary])
    return _take(xp_, None, -2, axis) + _take(xp_, 2, None, axis) - 2 * x


def diff_matrix(n):
    """``scipy.sparse`` forward difference ``D`` of shape ``(n−1, n)``."""
    if n == 1:
        return sp.csr_matrix((0, 1))
    return sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n), format="csr")


def second_diff_matrix(n, boundary):
    """``scipy.sparse`` 1-D second difference (3-point stencil) with the given boundary condition."""
    rows, cols, vals = [], [], []
    for i in range(n):
        for j in (i - 1, i + 1):
            if 0 <= j < n:
                rows.append(i), cols.append(j), vals.append(1.0)
                rows.append(i), cols.append(i), vals.append(-1.0)
            elif boundary == "periodic":
                rows.append(i), cols.append(j % n), vals.append(1.0)
                rows.append(i), cols.append(i), vals.append(-1.0)
            elif boundary == "dirichlet":
                rows.append(i), cols.append(i), vals.append(-1.0)
            # neumann: the ghost value equals x_i, the pair contributes nothing
    return sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
