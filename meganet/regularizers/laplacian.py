"""The 2-D discrete Laplacian on image-shaped weights (e.g. the classifier of an image output)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..core.validation import check_option, check_positive, check_shape_tuple
from ._difference import BOUNDARIES, second_diff, second_diff_matrix
from .base import Operator

__all__ = ["Laplacian2D"]


class Laplacian2D(Operator):
    r"""Five-point Laplacian over the last two axes of image-shaped weights,

    .. math::

        (Δ_h u)_{ij} = \frac{u_{i−1,j} − 2u_{ij} + u_{i+1,j}}{h_1^2}
                     + \frac{u_{i,j−1} − 2u_{ij} + u_{i,j+1}}{h_2^2},

    applied to every image of θ viewed as an array of ``shape = (..., H, W)``.
    With ``Tikhonov(Laplacian2D(...), alpha=α)`` it is the smoothness penalty
    ``α/2 ‖Δ_h W‖²`` on classifier weights that are images (Haber & Ruthotto
    2017, eq. 5.25): for a classifier of an image output of shape ``(C, H, W)``
    with ``n_classes`` rows, ``shape = (n_classes, C, H, W)`` — the row-major
    ``W`` part of :class:`~meganet.losses.base.Loss` ``.layout``; combine with
    :class:`~meganet.regularizers.block.BlockRegularizer` to leave ``μ`` out.

    Boundary conditions (ghost values outside the image):

    * ``'neumann'`` (default): ``u_{−1} = u_0`` (zero flux); constants are the
      null space.  Equals ``scipy.ndimage.laplace(u, mode='nearest')`` per image.
    * ``'periodic'``: ``u_{−1} = u_{n−1}`` (``mode='wrap'``).
    * ``'dirichlet'``: ``u = 0`` outside (``mode='constant'``); invertible.

    ``Δ_h`` is symmetric for all three.  ``scipy.ndimage.laplace`` offers the
    forward stencil on numpy arrays; it is hand-written here with array slicing
    so that it runs on cupy and keeps float32.  :meth:`matrix` is
    ``I ⊗ (D²_H ⊗ I_W / h_1² + I_H ⊗ D²_W / h_2²)`` assembled with ``scipy.sparse``.

    Parameters
    ----------
    shape : tuple of int
        ``(..., H, W)``; θ has length ``prod(shape)``.
    boundary : {'neumann', 'periodic', 'dirichlet'}
    spacing : float or (float, float)
        Pixel sizes ``(h_1, h_2)`` (default 1).
    """

    def __init__(self, shape, *, boundary="neumann", spacing=1.0):
        shape = check_shape_tuple("shape", shape)
        if len(shape) < 2:
            raise ValueError(f"shape must have at least two axes (..., H, W), got {shape}")
        self.image_shape = shape
        self.boundary = check_option("boundary", boundary, BOUNDARIES)
        if np.ndim(spacing) == 0:
            spacing = (spacing, spacing)
        if len(spacing) != 2:
            raise ValueError(f"spacing must be a float or a pair (h_1, h_2), got {spacing!r}")
        self.spacing = (check_positive("spacing[0]", spacing[0]), check_positive("spacing[1]", spacing[1]))
        self.n_in = self.n_out = int(np.prod(shape))
        self.n_images = int(np.prod(shape[:-2]))
        self._w = (1.0 / self.spacing[0] ** 2, 1.0 / self.spacing[1] ** 2)

    def apply(self, x):
        u = x.reshape(self.image_shape)
        nd = len(self.image_shape)
        out = self._w[0] * second_diff(u, nd - 2, self.boundary) + self._w[1] * second_diff(u, nd - 1, self.boundary)
        return out.reshape(-1)

    def apply_T(self, y):
        return self.apply(y)

    def _image_matrix(self):
        H, W = self.image_shape[-2:]
        return (self._w[0] * sp.kron(second_diff_matrix(H, self.boundary), sp.identity(W))
                + self._w[1] * sp.kron(sp.identity(H), second_diff_matrix(W, self.boundary))).tocsr()

    def gram_diagonal(self):
        A = self._image_matrix()
        d = np.asarray(A.multiply(A).sum(axis=0)).ravel()
        return np.tile(d, self.n_images)

    def matrix(self):
        return sp.kron(sp.identity(self.n_images), self._image_matrix(), format="csr")

    def __repr__(self):
        return f"Laplacian2D(shape={self.image_shape}, boundary={self.boundary!r}, spacing={self.spacing})"
