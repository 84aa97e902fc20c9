r"""Antisymmetric ResNet (Haber & Ruthotto 2017, eq. 4.12)."""

from __future__ import annotations

from ..core.validation import check_bool, check_int, check_nonnegative
from ..layers.single import SingleLayer
from ..transforms.antisymmetric import AntisymmetricDense
from .resnet import ResNet

__all__ = ["AntisymmetricResNet"]


class AntisymmetricResNet(ResNet):
    r"""Forward Euler ResNet whose layer has an antisymmetric weight matrix,

    .. math:: Y_{j+1} = Y_j + h\,σ\big(\tfrac12 (K_j − K_jᵀ − γI)\,Y_j + b_j\big),

    (Haber & Ruthotto, "Stable architectures for deep neural networks",
    Inverse Problems 2017, eq. 4.12; Meganet.m builds it as ``ResNN`` of a
    ``singleLayer`` with ``denseAntiSym``).  The eigenvalues of
    ``½(K − Kᵀ − γI)`` have real part ``−γ/2``, so the continuous dynamics are
    stable and, for γ = 0, the linearized forward propagation neither grows
    nor decays.  Forward Euler is stable only if ``max|1 + hλ_i| ≤ 1``
    (Lemma 1), which for purely imaginary ``λ`` needs ``γ > 0``: with γ = 0 the
    norm of a linear block grows by ``O(h²)`` per step, ``O(h)`` over ``[0, T]``.

    A :class:`~meganet.integrators.resnet.ResNet` of
    ``SingleLayer(AntisymmetricDense(n, gamma=γ, scale=0.5), activation=σ)``;
    all derivatives are the ResNet's.

    Parameters
    ----------
    n_features : int
        Width n (vector features, shape ``(n,)``).
    n_steps : int
        N ≥ 1.
    final_time : float
        T > 0.
    gamma : float, default 0.0
        Shift γ ≥ 0 (γ > 0, e.g. 1e-2, makes forward Euler stable for small h).
    activation : str or Activation, default 'tanh'
    bias : bool, default True
        Include ``b_j``.
    basis : None, 'identity', 'constant', TimeBasis or array (n_steps, n_basis)
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        Fused sweeps of :mod:`meganet.kernels.timestep` (see :class:`ResNet`).

    Shapes
    ------
    theta : (n_basis · (n² + n),) with bias, Y : (n_examples, n) → Z : same shape.
    """

    def __init__(self, n_features, *, n_steps, final_time, gamma=0.0, activation="tanh", bias=True, basis=None,
                 engine="auto"):
        n = check_int("n_features", n_features, minimum=1)
        self.gamma = check_nonnegative("gamma", gamma)
        layer = SingleLayer(AntisymmetricDense(n, gamma=self.gamma, scale=0.5), activation=activation, bias=check_bool("bias", bias))
        super().__init__(layer, n_steps=n_steps, final_time=final_time, basis=basis, engine=engine)
        self.n_features = n

    def __repr__(self):
        return (f"AntisymmetricResNet({self.n_features}, n_steps={self.n_steps}, final_time={self.final_time:g}, "
                f"gamma={self.gamma:g}, activation={self.layer.activation!r}, basis={self.basis!r})")
