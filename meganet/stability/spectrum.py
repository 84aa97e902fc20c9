r"""Spectrum of a layer's Jacobian w.r.t. its input, and the forward Euler stability check.

Haber & Ruthotto, "Stable architectures for deep neural networks" (Inverse
Problems 34, 2018), §3: the forward propagation ``Y_{j+1} = Y_j + h F(θ_j,
Y_j)`` of a ResNet is the forward Euler method for ``Y' = F(θ(t), Y)``.  Its
stability is governed by the eigenvalues ``λ_i`` of the Jacobian ``J_Y F``
along the trajectory:

* the continuous dynamics are stable when ``max_i Re λ_i ≤ 0`` (eq. 3.6), and
  well-posed for learning when ``Re λ_i ≈ 0`` (eq. 3.8);
* forward Euler is stable when ``max_i |1 + h λ_i| ≤ 1`` (Lemma 1).

Batches
-------
``J_Y`` of an element at a batch ``Y`` of ``n`` examples acts on the flat
``vec(Y)`` (length ``n · n_in``, examples first).  For every element that
treats examples independently (everything except batch normalization) it is
**block diagonal**, one ``n_in × n_in`` block per example, so its spectrum is
the union of the per-example spectra.  ``per_example=True`` returns the
spectrum of each block separately (computed at ``Y[i:i+1]``), which is both
cheaper (``n`` problems of size ``n_in`` instead of one of size ``n·n_in``)
and tells which example is least stable.  For an element that couples the
examples (batch normalization) the single-example Jacobian is *not* a block
of the batch Jacobian; use ``per_example=False`` there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import is_cupy_array, to_numpy
from ..core.element import Element
from ..core.validation import check_bool, check_int, check_option, check_positive

__all__ = ["jacobian_spectrum", "forward_euler_stable", "ForwardEulerStability"]

_METHODS = ("auto", "dense", "eigs")
_WHICH = ("LM", "SM", "LR", "SR", "LI", "SI")


def jacobian_spectrum(element, theta, Y, *, method="auto", k=6, which="LM", per_example=False,
                      dense_max_size=1024, **eigs_kwargs):
    r"""Eigenvalues of ``J_Y F(θ, Y)`` of an element with ``shape_in == shape_out``.

    Parameters
    ----------
    element : Element
        A layer (or any element) whose output has the shape of its input,
        e.g. the right-hand side ``F`` of a ResNet block.
    theta : array, shape (n_theta,)
    Y : array, shape (n_examples, *shape_in)
        The point of linearization (numpy or cupy, float32 or float64).
    method : {'auto', 'dense', 'eigs'}
        ``'dense'`` assembles ``J_Y`` column by column
        (:meth:`~meganet.core.operator.JacobianOperator.todense`, one ``Jmv``
        per column) and returns **all** eigenvalues from
        :func:`numpy.linalg.eigvals`.  ``'eigs'`` runs ARPACK
        (:func:`scipy.sparse.linalg.eigs`) on the matrix-free operator and
        returns ``k`` eigenvalues selected by ``which``.  ``'auto'`` is
        ``'dense'`` when the Jacobian has at most ``dense_max_size`` rows or
        when ``k ≥ size − 1`` (ARPACK's limit), else ``'eigs'``.
    k : int
        Number of eigenvalues for ``'eigs'`` (``1 ≤ k < size − 1``).
    which : {'LM', 'SM', 'LR', 'SR', 'LI', 'SI'}
        ARPACK's selection: largest/smallest magnitude, real part, imaginary
        part.  For stability questions ``'LR'`` (rightmost eigenvalues) and
        ``'LM'`` (largest ``|λ|``, which bounds ``h``) are the useful ones.
    per_example : bool
        Return the spectrum of every example's diagonal block (see the module
        notes) instead of the spectrum of the whole batch Jacobian.
    dense_max_size : int
        Size threshold of ``method='auto'``.
    **eigs_kwargs
        Passed on to :func:`scipy.sparse.linalg.eigs` (``tol``, ``maxiter``,
        ``v0``, ...).

    Returns
    -------
    eigenvalues : numpy complex array
        Shape ``(m,)`` (``m = n_examples·n_in`` for ``'dense'``, ``k`` for
        ``'eigs'``), or ``(n_examples, m)`` with ``per_example=True``
        (``m = n_in`` resp. ``k``).  Sorted by decreasing ``|λ|`` (ties by
        decreasing real, then imaginary part).  Always on the host: this is a reporting tool.

    Notes
    -----
    cupy arrays are supported: ``'dense'`` assembles on the GPU and copies the
    matrix to the host for ``eigvals`` (cupy has no non-symmetric
    eigensolver); ``'eigs'`` copies each ARPACK vector to the GPU and back.
    scipy offers the eigensolvers; nothing is hand-written here except the
    per-example loop.

    Examples
    --------
    >>> import numpy as np
    >>> from meganet.layers import SingleLayer
    >>> from meganet.transforms import Dense
    >>> layer = SingleLayer(Dense(2, 2), activation="identity", bias=False)
    >>> K = np.array([[0.0, -1.0], [1.0, 0.0]])
    >>> jacobian_spectrum(layer, K.reshape(-1), np.zeros((1, 2)))
    array([0.+1.j, 0.-1.j])
    """
    if not isinstance(element, Element):
        raise TypeError(f"element must be an Element, got {type(element).__name__}")
    if tuple(element.shape_in) != tuple(element.shape_out):
        raise ValueError(
            f"jacobian_spectrum needs a square Jacobian (shape_in == shape_out), got {type(element).__name__} "
            f"with shape_in {tuple(element.shape_in)} and shape_out {tuple(element.shape_out)}"
        )
    check_option("method", method, _METHODS)
    check_option("which", which, _WHICH)
    k = check_int("k", k, minimum=1)
    dense_max_size = check_int("dense_max_size", dense_max_size, minimum=1)
    per_example = check_bool("per_example", per_example)
    # validates θ and Y (shapes, dtype, backend, finiteness) once
    theta, _, _ = element._prepare(theta, Y)
    if Y.shape[0] == 0:
        raise ValueError("Y has 0 examples; the Jacobian at a batch without examples has no eigenvalues: "
                         "pass at least one example")
    if per_example:
        spectra = [_spectrum(element, theta, Y[i:i + 1], method, k, which, dense_max_size, eigs_kwargs)
                   for i in range(Y.shape[0])]
        return np.stack(spectra)
    return _spectrum(element, theta, Y, method, k, which, dense_max_size, eigs_kwargs)


def _spectrum(element, theta, Y, method, k, which, dense_max_size, eigs_kwargs):
    op = element.jacobian(theta, Y, wrt="Y")
    n = op.shape[0]
    if method == "auto":
        method = "dense" if (n <= dense_max_size or k >= n - 1) else "eigs"
    if method == "dense":
        J = to_numpy(op.todense())
        return _sort(np.linalg.eigvals(J))
    if k >= n - 1:
        raise ValueError(
            f"k must be < size - 1 = {n - 1} for method='eigs' (ARPACK), got k={k}; use method='dense' for all "
            "eigenvalues of a small Jacobian"
        )
    from scipy.sparse.linalg import LinearOperator, eigs

    if is_cupy_array(Y):
        import cupy

        def matvec(v):
            return to_numpy(op.matvec(cupy.asarray(np.asarray(v, dtype=op.dtype))))

        A = LinearOperator(op.shape, matvec=matvec, dtype=op.dtype)
    else:
        A = op.aslinearoperator()
    vals = eigs(A, k=k, which=which, return_eigenvectors=False, **eigs_kwargs)
    return _sort(np.asarray(vals))


def _sort(vals):
    vals = np.asarray(vals)
    if not np.iscomplexobj(vals):
        vals = vals.astype(np.result_type(vals.dtype, np.complex64))
    order = np.lexsort((-vals.imag, -vals.real, -np.abs(vals)))
    return vals[order]


@dataclass
class ForwardEulerStability:
    """Result of :func:`forward_euler_stable`; truthy when stable.

    Attributes
    ----------
    stable : bool
        ``amplification ≤ 1 + tol``.
    amplification : float
        ``max_i |1 + h λ_i|``, the largest growth factor of one forward Euler
        step of the linearized dynamics.
    worst_eigenvalue : complex
        The ``λ_i`` attaining the maximum.
    h : float
        The step size checked.
    tol : float
        The tolerance used.
    """

    stable: bool
    amplification: float
    worst_eigenvalue: complex
    h: float
    tol: float

    def __bool__(self):
        return bool(self.stable)

    def __str__(self):
        verdict = "stable" if self.stable else "UNSTABLE"
        return (f"forward Euler with h = {self.h:g}: {verdict}, max |1 + h λ| = {self.amplification:.6g} "
                f"at λ = {self.worst_eigenvalue:.4g} (tol {self.tol:g})")


def forward_euler_stable(eigenvalues, h, *, tol=1e-10):
    r"""Forward Euler stability check ``max_i |1 + h λ_i| ≤ 1`` (Lemma 1).

    Haber & Ruthotto, "Stable architectures for deep neural networks" (2017),
    Lemma 1: the forward Euler discretization of ``Y' = F(Y)`` with step ``h``
    is stable if ``max_i |1 + h λ_i(J)| ≤ 1`` for the eigenvalues of the
    Jacobian ``J`` along the trajectory.  For purely imaginary ``λ`` (the
    antisymmetric layers with γ = 0) the factor is ``√(1 + h²|λ|²) > 1``: such
    a network is unstable for every ``h > 0``, which is why eq. 4.12 shifts the
    spectrum by ``−γ``.

    Parameters
    ----------
    eigenvalues : array_like of complex
        E.g. from :func:`jacobian_spectrum` (any shape; all entries are used).
    h : float
        Step size ``h > 0`` (``block.h``).
    tol : float
        Slack for round-off: stable means ``max |1 + hλ| ≤ 1 + tol``.  Raise
        it for eigenvalues computed in float32 (about ``1e-6``).

    Returns
    -------
    ForwardEulerStability
        ``bool(result)`` is the verdict; ``result.amplification`` the factor.
    """
    h = check_positive("h", h)
    tol = check_positive("tol", tol, allow_zero=True)
    lam = np.asarray(to_numpy(eigenvalues) if is_cupy_array(eigenvalues) else eigenvalues).astype(complex).reshape(-1)
    if lam.size == 0:
        raise ValueError("eigenvalues must contain at least one eigenvalue, got an empty array")
    if not np.all(np.isfinite(lam)):
        raise ValueError("eigenvalues contain non-finite values (NaN or Inf)")
    amp = np.abs(1.0 + h * lam)
    i = int(np.argmax(amp))
    amax = float(amp[i])
    return ForwardEulerStability(stable=amax <= 1.0 + tol, amplification=amax, worst_eigenvalue=complex(lam[i]),
                                 h=h, tol=tol)
