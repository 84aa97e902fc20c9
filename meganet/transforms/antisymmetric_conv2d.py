"""Antisymmetric convolution ``A(θ) = s·(K − Kᵀ − γI)`` (Haber & Ruthotto 2017, eq. 4.12 with a
convolutional ``K``, as in their §6.4 MNIST experiment)."""

from __future__ import annotations

from ..core.layout import Layout
from ..core.validation import check_nonnegative, check_positive
from .base import Transform
from .conv2d import Conv2d

__all__ = ["AntisymmetricConv2d"]


class AntisymmetricConv2d(Transform):
    r"""Convolution with an antisymmetric (shifted) operator,

    .. math:: Z = A(θ)\,Y,\qquad A(θ) = s\,(K(θ) − K(θ)^\top − γ I),

    where ``K(θ)`` is the same-size ``C → C`` convolution of :class:`Conv2d` and
    ``K(θ)ᵀ`` its adjoint (the transposed convolution: flipped stencil, swapped
    channels).  ``A + Aᵀ = −2sγI``, so the eigenvalues of ``A`` have real part
    ``−sγ`` and, for γ = 0, the ODE ``Ẏ = σ(A Y + b)`` is marginally stable:
    the antisymmetric ResNet of Haber & Ruthotto, "Stable architectures for
    deep neural networks" (2017), eq. (4.12), with the "3 × 3 convolution
    operators that are fully connected within a given layer" of their §6.4.
    ``s = 1/2`` with γ = 0 is ``½(K − Kᵀ)``.

    Derivatives, with ``c`` the convolution and ``cᵀ`` its adjoint (``Conv2d``'s pieces):

    * ``∂A[dθ] Y = s (c(dθ, Y) − cᵀ(dθ, Y))`` (no γ: ``A`` is affine in θ);
    * ``Aᵀ Z = s (cᵀ(θ, Z) − c(θ, Z) − γZ)``;
    * θ-adjoint of ``dθ ↦ ∂A[dθ] Y`` at ``W``: ``s (G(Y, W) − G(W, Y))`` with
      ``G(Y, W) = ∂_θ⟨W, c(θ, Y)⟩`` the kernel gradient, because
      ``⟨W, cᵀ(dθ, Y)⟩ = ⟨c(dθ, W), Y⟩``.

    Parameters
    ----------
    channels : int
        ``C`` (input and output channels; the operator is square).
    image_shape : (int, int)
    kernel_size : int or (int, int), default 3
    gamma : float, default 0.0
        Shift γ ≥ 0.
    scale : float, default 0.5
        s > 0.
    boundary : {'zero', 'periodic'}, default 'zero'
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'

    Shapes
    ------
    Y : (n_examples, C, H, W) → Z : same; θ : (C·C·kh·kw,).
    """

    def __init__(self, channels, image_shape, *, kernel_size=3, gamma=0.0, scale=0.5, boundary="zero",
                 engine="auto"):
        self.conv = Conv2d(channels, channels, image_shape, kernel_size=kernel_size, boundary=boundary,
                           engine=engine)
        self.channels = self.conv.in_channels
        self.image_shape = self.conv.image_shape
        self.gamma = check_nonnegative("gamma", gamma)
        self.scale = check_positive("scale", scale)
        self.linear_in_theta = self.gamma == 0.0
        self.affine_in_theta = True  # ∂A[dθ] has no γ term: second-order products need only that
        self.shape_in = self.shape_out = self.conv.shape_in
        self.layout = Layout([("K", self.conv.n_theta)])

    def _init_theta(self, rng):
        return self.conv._init_theta(rng)

    def _apply(self, theta, Y):
        c = self.conv
        Z = c._apply(theta, Y) - c._apply_T(theta, Y)
        if self.gamma:
            Z = Z - self.gamma * Y
        return self.scale * Z

    def _apply_T(self, theta, Z):
        c = self.conv
        Y = c._apply_T(theta, Z) - c._apply(theta, Z)
        if self.gamma:
            Y = Y - self.gamma * Z
        return self.scale * Y

    def _dK_mv(self, theta, dtheta, Y):
        c = self.conv
        return self.scale * (c._apply(dtheta, Y) - c._apply_T(dtheta, Y))

    def _dKT_mv(self, theta, dtheta, Z):
        c = self.conv
        return self.scale * (c._apply_T(dtheta, Z) - c._apply(dtheta, Z))

    def _dK_adj(self, theta, Y, W, per_example):
        c = self.conv
        return self.scale * (c._dK_adj(theta, Y, W, per_example) - c._dK_adj(theta, W, Y, per_example))

    def __repr__(self):
        return (f"AntisymmetricConv2d({self.channels}, image {self.image_shape}, kernel {self.conv.kernel_size}, "
                f"gamma={self.gamma}, scale={self.scale}, boundary={self.conv.boundary!r})")
