r"""Multilevel in depth: weights of a block with N steps ↔ 2N steps, same final time.

Haber & Ruthotto, "Stable architectures for deep neural networks" (2017),
§5.3: train a network with few layers, interpolate its weights in time to a
network with twice as many layers (``h`` halved, ``T`` fixed), and use them
as the starting guess of the next level (Meganet.m ``prolongateWeights`` of
``ResNN``, ``LeapFrogNN``, ``HamiltonianNN``, ``Meganet``, with
``utils/inter1D.m``).  The multilevel *driver* belongs with the solvers; this
module provides the transfer operators.

Time grids
----------
A block with ``N`` steps of size ``H = T/N`` uses the weight ``θ_j`` at the
step time ``t_j = j·H``, ``j = 0, …, N−1`` (identity time basis, see
:mod:`meganet.integrators.time_basis`).  The fine block has ``2N`` steps of
size ``H/2`` at ``t'_i = i·H/2``.  All blocks (ResNet, RK4, antisymmetric,
Hamiltonian Verlet, leapfrog) lay θ out as the coefficient rows
``(θ_0, …, θ_{n_basis−1})`` (``block.coefficients(θ)`` is the
``(n_basis, n_θ)`` view), so the transfer acts on whole rows — every weight
part (K, b, …) of a step is interpolated alike.  RK4 with the identity basis
holds θ_j over its whole step; the interpolation is the same.

Prolongation ``P`` (``2N × N``), piecewise linear interpolation in time::

    θ'_{2j}   = θ_j                          (coinciding times)
    θ'_{2j+1} = (θ_j + θ_{j+1}) / 2          (midpoints), j < N − 1
    θ'_{2N−1} = θ_{N−1}                      (t = T − H/2 lies beyond the
                                              last coarse time: constant
                                              extension, as Meganet.m inter1D)

It equals ``numpy.interp(t', t, θ)`` componentwise.

Restriction ``R`` (``N × 2N``) — two choices, both with ``R P = I`` (so
``restrict(prolongate(θ)) == θ`` exactly):

``'injection'`` (default)
    ``θ_j = θ'_{2j}``: keep the weights at the coarse step times.
``'projection'``
    ``R = (PᵀP)⁻¹Pᵀ``: the coarse weights whose interpolation is closest to
    the fine weights in the least-squares sense (the discrete L2 projection
    onto piecewise linear weights on the coarse grid); it averages out
    oscillations between neighbouring fine steps instead of sampling them.

To move a *gradient* (a linear functional on the weights) from the fine to
the coarse level use ``Pᵀ`` (:func:`prolongation_matrix` ``.T``), the adjoint
of the prolongation; it is not a restriction of weights and does not satisfy
``Pᵀ P = I``.

Other time bases: for ``'constant'`` and hat-function bases the weight
function θ(t) does not depend on N, so the 2N-step block reuses θ unchanged
(:meth:`~meganet.integrators.TimeBasis.resample`).  User matrices are
rejected.
"""

from __future__ import annotations

import copy

import numpy as np

from ..backend import get_array_module, to_backend
from ..core.chain import Chain
from ..core.element import Element
from ..core.validation import check_int, check_option

__all__ = [
    "prolongation_matrix",
    "restriction_matrix",
    "prolongate_weights",
    "restrict_weights",
    "prolongate_block",
    "restrict_block",
    "prolongate_network",
    "restrict_network",
    "is_time_stepping_block",
]

_RESTRICTIONS = ("injection", "projection")


# ------------------------------------------------------------------- matrices
def prolongation_matrix(n_steps):
    """``P`` of shape ``(2N, N)`` (float64 numpy): piecewise linear in time, see the module notes."""
    N = check_int("n_steps", n_steps, minimum=1)
    P = np.zeros((2 * N, N))
    j = np.arange(N)
    P[2 * j, j] = 1.0
    P[2 * j[:-1] + 1, j[:-1]] = 0.5
    P[2 * j[:-1] + 1, j[:-1] + 1] = 0.5
    P[2 * N - 1, N - 1] = 1.0
    return P


def restriction_matrix(n_steps_fine, *, method="injection"):
    """``R`` of shape ``(N, 2N)`` (float64 numpy) with ``R P = I``, for ``n_steps_fine = 2N``.

    Parameters
    ----------
    n_steps_fine : int
        Even number of fine steps ``2N ≥ 2``.
    method : {'injection', 'projection'}
        See the module notes.
    """
    N = _half("n_steps_fine", n_steps_fine)
    check_option("method", method, _RESTRICTIONS)
    if method == "injection":
        R = np.zeros((N, 2 * N))
        R[np.arange(N), 2 * np.arange(N)] = 1.0
        return R
    P = prolongation_matrix(N)
    return np.linalg.solve(P.T @ P, P.T)


# -------------------------------------------------------------- weight arrays
def prolongate_weights(W):
    r"""Apply ``P`` along axis 0: ``(N, …) → (2N, …)``.

    Parameters
    ----------
    W : array, shape (N, ...)
        Row ``j`` is the weight at ``t_j = j·H`` (numpy or cupy, dtype kept).

    Returns
    -------
    array, shape (2N, ...)
        A new array (never a view of ``W``).
    """
    xp = get_array_module(W, names=["W"])
    if W.ndim < 1 or W.shape[0] < 1:
        raise ValueError(f"W must have at least one row (one weight set per step), got shape {tuple(W.shape)}")
    N = W.shape[0]
    out = xp.empty((2 * N, *W.shape[1:]), dtype=W.dtype)
    out[0::2] = W
    if N > 1:
        out[1:-1:2] = 0.5 * (W[:-1] + W[1:])
    out[-1] = W[-1]
    return out


def restrict_weights(W, *, method="injection"):
    r"""Apply ``R`` along axis 0: ``(2N, …) → (N, …)``; ``restrict_weights(prolongate_weights(W)) == W``.

    Parameters
    ----------
    W : array, shape (2N, ...)
    method : {'injection', 'projection'}

    Returns
    -------
    array, shape (N, ...)
        A new array, dtype and backend of ``W``.
    """
    xp = get_array_module(W, names=["W"])
    check_option("method", method, _RESTRICTIONS)
    if W.ndim < 1:
        raise ValueError(f"W must have at least one axis, got shape {tuple(W.shape)}")
    _half("W.shape[0]", W.shape[0])
    if method == "injection":
        return W[0::2].copy()
    R = to_backend(restriction_matrix(W.shape[0], method=method).astype(W.dtype), xp)
    return xp.tensordot(R, W, axes=(1, 0))


# ------------------------------------------------------------------- blocks
def is_time_stepping_block(element):
    """True for the blocks this module can prolongate/restrict (ResNet, RK4,
    antisymmetric ResNet, Hamiltonian Verlet, leapfrog)."""
    from ..integrators._reversible import ReversibleIntegrator
    from ..integrators.block import TimeSteppingBlock

    return isinstance(element, (TimeSteppingBlock, ReversibleIntegrator))


def prolongate_block(block, theta):
    r"""The block with ``2N`` steps (same final time, ``h`` halved) and its weights.

    Parameters
    ----------
    block : ResNet, RK4ResNet, AntisymmetricResNet, HamiltonianVerlet or Leapfrog
        With ``N`` steps.
    theta : array, shape (block.n_theta,)

    Returns
    -------
    new_block : same type, ``n_steps = 2N``, same final time and layer
    new_theta : array, shape (new_block.n_theta,)
        Identity basis: every weight part interpolated piecewise linearly in
        time (module notes).  Constant and hat bases: a copy of θ (the basis is
        resampled on the fine grid).  dtype and backend of θ are kept.

    Raises
    ------
    TypeError
        ``block`` is not a time-stepping block.
    ValueError
        The block has a user basis matrix (no time interpolation defined).
    """
    return _transfer(block, theta, fine=True, method=None)


def restrict_block(block, theta, *, method="injection"):
    r"""The block with ``N/2`` steps (same final time, ``h`` doubled) and its weights.

    The inverse of :func:`prolongate_block`:
    ``restrict_block(*prolongate_block(b, θ))`` returns a block equal in
    configuration to ``b`` and exactly ``θ``.

    Parameters
    ----------
    block : as in :func:`prolongate_block`, with an even number of steps N ≥ 2
    theta : array, shape (block.n_theta,)
    method : {'injection', 'projection'}
        Restriction of per-step weights (module notes); ignored for constant
        and hat bases.

    Returns
    -------
    coarse_block, coarse_theta
    """
    check_option("method", method, _RESTRICTIONS)
    return _transfer(block, theta, fine=False, method=method)


def prolongate_network(network, theta):
    r"""Prolongate every time-stepping block of a network of blocks.

    Parameters
    ----------
    network : Meganet, Sequential, Chain, or a time-stepping block
        Blocks that are not time-stepping (connectors, single layers) are
        kept with their weights.
    theta : array, shape (network.n_theta,)

    Returns
    -------
    new_network : same type (same part names), new_theta
    """
    return _transfer_network(network, theta, fine=True, method=None)


def restrict_network(network, theta, *, method="injection"):
    """Restrict every time-stepping block of a network of blocks (see :func:`prolongate_network`)."""
    check_option("method", method, _RESTRICTIONS)
    return _transfer_network(network, theta, fine=False, method=method)


# ----------------------------------------------------------------- internals
def _half(name, n):
    n = check_int(name, n, minimum=2)
    if n % 2:
        raise ValueError(f"{name} must be even to halve the number of steps, got {n}")
    return n // 2


def _check_theta(element, theta):
    get_array_module(theta, names=["theta"])
    if theta.shape != (element.n_theta,):
        raise ValueError(f"theta must have shape ({element.n_theta},) for {type(element).__name__}, "
                         f"got {tuple(theta.shape)}")


def _transfer_network(network, theta, fine, method):
    if not isinstance(network, Element):
        raise TypeError(f"network must be an Element, got {type(network).__name__}")
    if is_time_stepping_block(network):
        return _transfer(network, theta, fine, method)
    _check_theta(network, theta)
    from ..networks import Meganet, Sequential

    if type(network) not in (Meganet, Sequential, Chain):
        raise TypeError(
            f"network must be a Meganet, Sequential, Chain or a time-stepping block, got {type(network).__name__}; "
            "its blocks cannot be rebuilt generically"
        )
    xp = get_array_module(theta)
    new_elements, new_parts = [], []
    for e, th in zip(network.elements, network.split(theta)):
        if is_time_stepping_block(e):
            e, th = _transfer(e, th, fine, method)
        elif isinstance(e, Chain) and type(e) in (Meganet, Sequential, Chain):
            e, th = _transfer_network(e, th, fine, method)
        else:
            th = th.copy()
        new_elements.append(e)
        new_parts.append(th.reshape(-1))
    new_theta = xp.concatenate(new_parts) if new_parts else theta.copy()
    return type(network)(new_elements, names=list(network.layout.names)), new_theta


def _transfer(block, theta, fine, method):
    if not is_time_stepping_block(block):
        raise TypeError(
            "block must be a time-stepping block (ResNet, RK4ResNet, AntisymmetricResNet, HamiltonianVerlet, "
            f"Leapfrog), got {type(block).__name__}; for networks of blocks use prolongate_network/restrict_network"
        )
    _check_theta(block, theta)
    N = block.n_steps
    new_N = 2 * N if fine else _half("block.n_steps", N)
    basis = block.basis
    if basis.kind == "identity":
        # one weight set per step: rows of the (N, n_θ) coefficient view
        C = block.coefficients(theta)
        new_theta = (prolongate_weights(C) if fine else restrict_weights(C, method=method)).reshape(-1)
        new_basis = None
    elif basis.kind in ("constant", "hat"):
        new_theta = theta.copy()
        new_basis = basis.resample(new_N)
    else:
        raise ValueError(_matrix_message(block))
    return _rebuild(block, new_N, new_basis), new_theta


def _rebuild(block, n_steps, basis):
    """The same block with ``n_steps`` steps, the same final time and ``basis``."""
    if not hasattr(block, "with_steps"):
        raise TypeError(f"do not know how to rebuild a {type(block).__name__} with another number of steps "
                        "(it has no with_steps method)")
    return block.with_steps(n_steps, basis)


def _matrix_message(block):
    return (
        f"{type(block).__name__} has a user basis matrix; its coefficients are not weights at step times, so "
        "there is no interpolation in time to apply (use the identity, constant or hat basis)"
    )
