r"""Hamiltonian network with convolutional weights and Verlet steps (Haber & Ruthotto 2017, eq. 4.15/4.17
with the 3 × 3 convolutions of their §6.4 MNIST experiment)."""

from __future__ import annotations

import numpy as np

from ..activations import get_activation
from ..core.validation import check_int, check_option
from ..transforms.conv2d import Conv2d
from .verlet import HamiltonianVerlet, VerletState

__all__ = ["HamiltonianVerletCNN"]

_BIAS = ("scalar", "none")


class HamiltonianVerletCNN(HamiltonianVerlet):
    r"""The Hamiltonian network of Haber & Ruthotto 2017 (eq. 4.15) on images, Verlet steps (eq. 4.17):

    .. math::
        z_{j+½} = z_{j−½} − h\,σ(K_jᵀ y_j + b_j), \qquad
        y_{j+1} = y_j + h\,σ(K_j z_{j+½} + b_j),

    where ``K_j`` is a same-size 3 × 3 convolution from the ``C_z`` channels of
    ``z`` to the ``C_y`` channels of ``y`` (fully connected across channels,
    :class:`~meganet.transforms.Conv2d`) and ``K_jᵀ`` its adjoint, the
    transposed convolution from ``C_y`` to ``C_z`` channels; ``b_j`` is one
    scalar per step (as in the paper and Meganet.m ``HamiltonianNN``), or none.
    The linear part ``[[0, K], [−Kᵀ, 0]]`` of the augmented system is
    antisymmetric for any ``K``, so the ODE is stable whatever the weights
    (§4.2); the Verlet scheme is symplectic and explicitly invertible, so
    ``reversible=True`` stores no states.

    A subclass of :class:`~meganet.integrators.HamiltonianVerlet`: the step, its
    inverse and the state maps (``y`` = the first ``C_y`` channels) are the
    dense network's; the half steps, their linearization and adjoint are
    written here with :class:`Conv2d`'s forward, adjoint and kernel gradient
    (no fused kernel: the convolutions are the cost).  It differs from
    the Hamiltonian CNN of JMIV 2019 (:class:`~meganet.integrators.HamiltonianCNN`),
    whose steps are symmetric layers ``−Kᵀσ(N(KX + b))``.

    Derivatives of one step (``A = Kᵀy + b``, ``B = K z_{j+½} + b``)::

        dz' = dz − hσ'(A)⊙(Kᵀdy + dKᵀ y + db)
        dy' = dy + hσ'(B)⊙(K dz' + dK z' + db)
        adjoint: g_B = hσ'(B)⊙W_y',  W_z = W_z' + Kᵀ g_B,  g_A = −hσ'(A)⊙W_z,  W_y = W_y' + K g_A
                 dK = G(z', g_B) + G(g_A, y),  db = Σ g_B + Σ g_A

    with ``G(X, W)`` the kernel gradient of ``dK ↦ ⟨W, dK X⟩`` (``⟨g_A, dKᵀy⟩ = ⟨dK g_A, y⟩``).

    The element maps ``Y = [y_0, z_{−½}]`` (channels of ``y`` first, shape
    ``(n, C_y + C_z, H, W)``) to ``[y_N, z_{N−½}]``; usually ``z_{−½} = 0``.

    Parameters
    ----------
    channels_y, channels_z : int
        ``C_y`` and ``C_z``.
    image_shape : (int, int)
    n_steps : int ≥ 1
    final_time : float > 0
    activation : str or Activation, default 'tanh'
    bias : {'scalar', 'none'}, default 'scalar'
    kernel_size : int, default 3
    basis : None, 'identity', 'constant', TimeBasis or array
    reversible : bool, default False

    Shapes
    ------
    Y : (n_examples, C_y + C_z, H, W) → Z : same;
    θ : (n_basis · (C_y·C_z·k² + n_b),) with n_b = 1 for a scalar bias.
    """

    _has_fused = False

    def __init__(self, channels_y, channels_z, image_shape, *, n_steps, final_time, activation="tanh",
                 bias="scalar", kernel_size=3, basis=None, reversible=False):
        self.channels_y = self.n_y = check_int("channels_y", channels_y, minimum=1)
        self.channels_z = self.n_z = check_int("channels_z", channels_z, minimum=1)
        self.conv = Conv2d(self.channels_z, self.channels_y, image_shape, kernel_size=kernel_size)  # z → y
        self.image_shape = self.conv.image_shape
        self.activation = get_activation(activation)
        self.bias = check_option("bias", bias, _BIAS)
        self.n_b = 1 if self.bias == "scalar" else 0
        self.engine = "numpy"
        self._n_K = self.conv.n_theta
        self.shape_in = self.shape_out = (self.channels_y + self.channels_z, *self.image_shape)
        self._setup_integrator(n_steps=n_steps, final_time=final_time, basis=basis, reversible=reversible,
                               n_theta_step=self._n_K + self.n_b)

    def _init_step(self, rng):
        K = self.conv._init_theta(rng) / np.sqrt(2.0)  # He scaling of Conv2d, halved variance for tanh
        return np.concatenate([K, 0.1 * rng.standard_normal(self.n_b)])

    def _unpack(self, w):
        """``(θ_K, b)``: the convolution's weights and the scalar bias (None without bias), views of ``w``."""
        return w[:self._n_K], (w[self._n_K] if self.n_b else None)

    # ------------------- the half steps (HamiltonianVerlet's _step / _unstep call them) and their derivatives
    def _half_z(self, K, b, y, z, sign, need_dsigma=True):
        """``z ± h σ(Kᵀ y + b)``; ``sign=-1`` forward, ``+1`` inverse."""
        A = self.conv._apply_T(K, y) + b
        s, ds = self.activation.value_and_derivative(A) if need_dsigma else (self.activation.value(A), None)
        return z + (sign * self.h) * s, ds

    def _half_y(self, K, b, z_half, y, sign, need_dsigma=True):
        """``y ± h σ(K z + b)``; ``sign=+1`` forward, ``-1`` inverse."""
        B = self.conv._apply(K, z_half) + b
        s, ds = self.activation.value_and_derivative(B) if need_dsigma else (self.activation.value(B), None)
        return y + (sign * self.h) * s, ds

    def _step_jmv(self, w, dw, c, ds):
        K, _ = self._unpack(w)
        conv = self.conv
        dA = conv._apply_T(K, ds.y)
        dB_extra = None
        if dw is not None:
            dK, db = self._unpack(dw)
            db = 0.0 if db is None else db
            dA = dA + conv._apply_T(dK, c.y) + db
            dB_extra = conv._apply(dK, c.z_half) + db
        dz = ds.z - self.h * (c.dsigma_z * dA)
        dB = conv._apply(K, dz)
        if dB_extra is not None:
            dB = dB + dB_extra
        return VerletState(y=ds.y + self.h * (c.dsigma_y * dB), z=dz)

    # the maps of HamiltonianVerlet's second-order step, with the convolution
    def _map_A(self, K, y):
        return self.conv._apply_T(K, y)

    def _map_B(self, K, z):
        return self.conv._apply(K, z)

    def _map_A_T(self, K, g):
        return self.conv._apply(K, g)

    def _map_B_T(self, K, g):
        return self.conv._apply_T(K, g)

    def _map_K_adj(self, K, y, z, gA, gB):
        return self.conv._dK_adj(K, z, gB, False) + self.conv._dK_adj(K, gA, y, False)

    def _step_adjoint(self, w, c, Ws, out, per_example, propagate):
        K, _ = self._unpack(w)
        conv = self.conv
        gB = self.h * (c.dsigma_y * Ws.y)
        Wz = Ws.z + conv._apply_T(K, gB)
        gA = -self.h * (c.dsigma_z * Wz)
        Wy = Ws.y + conv._apply(K, gA) if propagate else None
        if out is not None:
            nK = self._n_K
            out[..., :nK] = conv._dK_adj(K, c.z_half, gB, per_example) + conv._dK_adj(K, gA, c.y, per_example)
            if self.n_b:
                if per_example:
                    out[:, nK] = gB.reshape(gB.shape[0], -1).sum(axis=1) + gA.reshape(gA.shape[0], -1).sum(axis=1)
                else:
                    out[nK] = gB.sum() + gA.sum()
        return VerletState(y=Wy, z=Wz)

    def __repr__(self):
        return (f"HamiltonianVerletCNN({self.channels_y}+{self.channels_z} channels, image {self.image_shape}, "
                f"n_steps={self.n_steps}, final_time={self.final_time:g}, activation={self.activation!r}, "
                f"bias={self.bias!r}, mode={self.mode!r})")
