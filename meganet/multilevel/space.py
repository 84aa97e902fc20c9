r"""Multiscale in space: convolution stencils between image resolutions.

Galerkin coarsening with average restriction (Meganet.m
``utils/avgRestrictionGalerkin.m``, used by ``prolongateConvStencils`` /
``restrictConvStencils`` of ``convKernel.m`` and the blocks; Haber, Ruthotto,
Holtham & Jun, "Learning across scales — multiscale methods for convolution
neural networks", AAAI 2018).

Operators
---------
Fine images ``(H, W)`` (both even), coarse images ``(H/2, W/2)``.

* Restriction ``R``: the average of every 2×2 block of pixels,
  :func:`restrict_image`.
* Prolongation ``P``, :func:`prolongate_image`:

  ``'constant'`` (default, Meganet.m)
      ``P = 4Rᵀ``: every fine pixel takes the value of its coarse parent
      (piecewise constant).
  ``'bilinear'``
      cell-centred bilinear interpolation: along each axis the fine pixels
      ``2I`` and ``2I+1`` get ``¾y_I + ¼y_{I−1}`` and ``¾y_I + ¼y_{I+1}``.

  The constant one satisfies ``R P = I``; the bilinear one does not (``R P``
  smooths with ``(⅛, ¾, ⅛)`` along each axis).

Galerkin coarse operator
------------------------
For a fine convolution ``A_h`` with stencil ``K_h`` (cross-correlation as in
:class:`~meganet.transforms.Conv2d`: ``z[x] = Σ_a K[a] y[x + a − p]``) the
coarse operator is ``A_H = R A_h P``.  Both ``R`` and ``P`` are tensor
products of 1-D operators and commute with shifts by two fine pixels, so
``A_H`` is again a convolution, whose stencil is

.. math:: K_H = M_{k_h} K_h M_{k_w}^\top \quad (\text{per channel pair}),

with the 1-D matrix ``M[A, a] = Σ_{r∈\{0,1\}} ½ Σ_d π_{(r+a−p) mod 2}(d)
[A − p = ⌊(r + a − p)/2⌋ + d]`` (``π_s`` the interpolation weights of ``P``
for a fine pixel of parity ``s``).  For 3×3 stencils and ``'constant'``

.. math:: M = \begin{pmatrix} ½ & 0 & 0 \\ ½ & 1 & ½ \\ 0 & 0 & ½ \end{pmatrix},

e.g. the 1-D stencil ``(k_{−1}, k_0, k_1)`` becomes
``(½k_{−1}, ½k_{−1} + k_0 + ½k_1, ½k_1)``.  The column sums of ``M`` are 1,
so the sum of the stencil (its action on constants) is preserved.  A stencil
of half-width ``p`` has a coarse stencil of half-width ``⌈p/2⌉`` (3×3 stays
3×3, 5×5 becomes 3×3, 1×1 is unchanged); the coarse stencil is returned
zero-padded to the fine kernel size, so the coarse network keeps the θ
layout of the fine one.

What holds exactly (tested):

* ``boundary='periodic'``: ``R A_h(K_h) P y = A_H(K_H) y`` for every coarse
  ``y``, for both prolongations.
* ``boundary='zero'``, ``'constant'`` prolongation: also exact — a fine pixel
  lies outside the image exactly when its coarse parent does, so zero padding
  on the fine grid is zero padding on the coarse grid.
* ``boundary='zero'``, ``'bilinear'``: exact away from the boundary; in the
  first and last coarse row/column the two sides differ because the fine
  padding cuts the interpolation stencil.

Prolongation of stencils
------------------------
:func:`prolongate_stencil` returns the fine stencil that satisfies the
Galerkin relation: ``K_h = M⁺ K_H M⁺ᵀ``.  For 3×3 stencils ``M`` is
invertible (for ``'constant'``, ``M⁻¹ = [[2, 0, 0], [−1, 1, −1], [0, 0, 2]]``),
so ``restrict(prolongate(K_H)) == K_H`` and ``prolongate(restrict(K_h)) ==
K_h`` exactly (Meganet.m's ``convKernel.prolongateConvStencils`` likewise
solves a 9×9 linear system, set up by ``getFineScaleConvAlgCC``).  For larger
stencils with ``'constant'``, ``M`` has zero rows and ``M⁺`` (pseudo-inverse)
gives the minimum-norm fine stencil whose Galerkin coarsening is ``K_H``, for
``K_H`` supported in the central ``(2⌈p/2⌉+1)²`` window.

Scaling (1-D, constant prolongation, fine step ``h``): the centred
difference ``(−1, 0, 1)/(2h)`` becomes ``(−1, 0, 1)/(4h)``, exactly the
centred difference of step ``2h``; the second difference ``(1, −2, 1)/h²``
becomes ``(1, −2, 1)/(2h²)``, twice the rediscretized ``(1, −2, 1)/(4h²)`` — a
known property of Galerkin coarsening with piecewise constant interpolation.
Learned stencils absorb such factors in training; the multiscale method uses
the map as a starting guess.
"""

from __future__ import annotations

import numpy as np

from ..backend import get_array_module, to_backend
from ..core.chain import Chain
from ..core.element import Element
from ..core.validation import check_int, check_option

__all__ = [
    "galerkin_matrix",
    "restrict_stencil",
    "prolongate_stencil",
    "restrict_image",
    "prolongate_image",
    "restrict_conv_theta",
    "prolongate_conv_theta",
]

_PROLONGATIONS = ("constant", "bilinear")
_BOUNDARIES = ("zero", "periodic")

# interpolation weights π_s(d) of P: fine pixel of parity s reads coarse I + d
_PI = {
    "constant": ({0: 1.0}, {0: 1.0}),
    "bilinear": ({0: 0.75, -1: 0.25}, {0: 0.75, 1: 0.25}),
}


def galerkin_matrix(kernel_size, *, prolongation="constant"):
    """The 1-D matrix ``M`` (float64 numpy, ``kernel_size × kernel_size``) with ``K_H = M K_h Mᵀ``.

    Rows and columns are stencil offsets ``−p, …, p`` (``p = (kernel_size − 1)/2``);
    rows with ``|offset| > ⌈p/2⌉`` are zero.  See the module notes.
    """
    k = check_int("kernel_size", kernel_size, minimum=1, odd=True)
    check_option("prolongation", prolongation, _PROLONGATIONS)
    p = (k - 1) // 2
    pi = _PI[prolongation]
    M = np.zeros((k, k))
    for a in range(-p, p + 1):  # fine offset
        for r in (0, 1):  # parity of the fine pixel inside its coarse cell (R averages both, weight ½)
            x = r + a  # fine neighbour relative to the cell's first pixel 2I
            J, s = x // 2, x % 2  # its coarse parent offset and parity
            for d, w in pi[s].items():
                A = J + d
                if abs(A) > p:  # only bilinear with a 1×1 stencil: R P itself is a 3-point smoother
                    raise ValueError(
                        f"prolongation={prolongation!r} needs kernel_size >= 3: the coarse operator of a "
                        f"{k}x{k} stencil is wider than {k}x{k}"
                    )
                M[A + p, a + p] += 0.5 * w
    return M


def restrict_stencil(K, *, prolongation="constant"):
    r"""Galerkin coarse stencil ``K_H = M K_h Mᵀ`` (applied over the last two axes).

    Parameters
    ----------
    K : array, shape (..., kh, kw)
        Fine stencils, e.g. ``(C_out, C_in, kh, kw)`` of a
        :class:`~meganet.transforms.Conv2d` (numpy or cupy, dtype kept).
    prolongation : {'constant', 'bilinear'}

    Returns
    -------
    array, shape (..., kh, kw)
        The coarse stencils (zero-padded to the fine size), such that
        ``R conv(K, P y) = conv(K_H, y)`` on the half-resolution grid.
    """
    Mh, Mw = _matrices(K, prolongation, inverse=False)
    return _sandwich(Mh, K, Mw)


def prolongate_stencil(K, *, prolongation="constant"):
    r"""Fine stencil ``K_h = M⁺ K_H M⁺ᵀ`` whose Galerkin coarsening is ``K_H``.

    Parameters
    ----------
    K : array, shape (..., kh, kw)
        Coarse stencils.
    prolongation : {'constant', 'bilinear'}

    Returns
    -------
    array, shape (..., kh, kw)
        ``restrict_stencil(prolongate_stencil(K)) == K`` (exactly for 3×3).
    """
    Mh, Mw = _matrices(K, prolongation, inverse=True)
    return _sandwich(Mh, K, Mw)


def _matrices(K, prolongation, inverse):
    xp = get_array_module(K, names=["K"])
    check_option("prolongation", prolongation, _PROLONGATIONS)
    if K.ndim < 2:
        raise ValueError(f"K must have shape (..., kh, kw), got {tuple(K.shape)}")
    out = []
    for name, k in (("K.shape[-2]", K.shape[-2]), ("K.shape[-1]", K.shape[-1])):
        if k % 2 != 1:
            raise ValueError(f"{name} (stencil size) must be odd, got {k}")
        M = galerkin_matrix(k, prolongation=prolongation)
        if inverse:
            M = np.linalg.pinv(M)
        out.append(to_backend(M.astype(K.dtype), xp))
    return out


def _sandwich(Mh, K, Mw):
    # (..., kh, kw): Mh @ K @ Mwᵀ, broadcasting over the leading axes
    return Mh @ K @ Mw.T


# ---------------------------------------------------------------- images
def restrict_image(Y):
    r"""``R Y``: the average of every 2×2 block, ``(n, C, H, W) → (n, C, H/2, W/2)``.

    Parameters
    ----------
    Y : array, shape (n_examples, C, H, W) with H, W even

    Returns
    -------
    array, shape (n_examples, C, H/2, W/2)
    """
    get_array_module(Y, names=["Y"])
    n, C, H, W = _image_shape(Y)
    if H % 2 or W % 2:
        raise ValueError(f"image height and width must be even to restrict, got {(H, W)}")
    return Y.reshape(n, C, H // 2, 2, W // 2, 2).mean(axis=(3, 5))


def prolongate_image(Y, *, prolongation="constant", boundary="periodic"):
    r"""``P Y``: ``(n, C, H, W) → (n, C, 2H, 2W)``.

    Parameters
    ----------
    Y : array, shape (n_examples, C, H, W)
    prolongation : {'constant', 'bilinear'}
        ``'constant'`` is ``4Rᵀ`` (independent of ``boundary``).
    boundary : {'periodic', 'zero'}
        How ``'bilinear'`` reads the coarse neighbour outside the image.

    Returns
    -------
    array, shape (n_examples, C, 2H, 2W)
    """
    xp = get_array_module(Y, names=["Y"])
    check_option("prolongation", prolongation, _PROLONGATIONS)
    check_option("boundary", boundary, _BOUNDARIES)
    _image_shape(Y)
    if prolongation == "constant":
        return xp.repeat(xp.repeat(Y, 2, axis=2), 2, axis=3)
    out = _bilinear_1d(Y, 2, boundary, xp)
    return _bilinear_1d(out, 3, boundary, xp)


def _bilinear_1d(Y, axis, boundary, xp):
    Yt = xp.moveaxis(Y, axis, -1)
    if boundary == "periodic":
        left = xp.roll(Yt, 1, axis=-1)
        right = xp.roll(Yt, -1, axis=-1)
    else:
        zero = xp.zeros_like(Yt[..., :1])
        left = xp.concatenate([zero, Yt[..., :-1]], axis=-1)
        right = xp.concatenate([Yt[..., 1:], zero], axis=-1)
    even = 0.75 * Yt + 0.25 * left
    odd = 0.75 * Yt + 0.25 * right
    out = xp.stack([even, odd], axis=-1).reshape(*Yt.shape[:-1], 2 * Yt.shape[-1])
    return xp.moveaxis(out, -1, axis)


def _image_shape(Y):
    if Y.ndim != 4:
        raise ValueError(f"Y must have shape (n_examples, C, H, W), got {tuple(Y.shape)}")
    return Y.shape


# ------------------------------------------------------- networks' θ
def restrict_conv_theta(element, theta, *, prolongation="constant"):
    r"""Restrict every convolution stencil inside ``element``'s θ (Meganet.m ``restrictConvStencils``).

    Walks the element tree and replaces each
    :class:`~meganet.transforms.Conv2d` (or subclass) stencil by its Galerkin
    coarse stencil; all other parameters (biases, dense weights, normalization)
    are copied.  θ keeps its length (kernel sizes are kept), so it fits the
    same architecture built for the half resolution, which the caller builds.

    Supported containers: :class:`~meganet.core.Chain` and its subclasses
    (single and double layers, sequential networks, networks of blocks),
    time-stepping blocks with a ``layer`` (ResNet, RK4, ...; every time
    coefficient is mapped), and elements with a ``transform`` attribute and a
    layout part ``'K'`` (symmetric layer).  An element that holds a
    convolution any other way raises ``TypeError`` instead of being skipped.

    Parameters
    ----------
    element : Element
    theta : array, shape (element.n_theta,)
    prolongation : {'constant', 'bilinear'}

    Returns
    -------
    array, shape (element.n_theta,)
    """
    check_option("prolongation", prolongation, _PROLONGATIONS)
    return _map_conv(element, theta, lambda K: restrict_stencil(K, prolongation=prolongation))


def prolongate_conv_theta(element, theta, *, prolongation="constant"):
    """Prolongate every convolution stencil inside ``element``'s θ
    (Meganet.m ``prolongateConvStencils``); see :func:`restrict_conv_theta`."""
    check_option("prolongation", prolongation, _PROLONGATIONS)
    return _map_conv(element, theta, lambda K: prolongate_stencil(K, prolongation=prolongation))


def _map_conv(element, theta, fn):
    if not isinstance(element, Element):
        raise TypeError(f"element must be an Element, got {type(element).__name__}")
    get_array_module(theta, names=["theta"])
    if theta.shape != (element.n_theta,):
        raise ValueError(f"theta must have shape ({element.n_theta},) for {type(element).__name__}, "
                         f"got {tuple(theta.shape)}")
    out = theta.copy()
    _map_into(element, theta, out, fn)
    return out


def _map_into(element, theta, out, fn):
    """Write the mapped θ of ``element`` into ``out`` (a view of the result)."""
    from ..transforms.conv2d import Conv2d

    if element.n_theta == 0:
        return
    if isinstance(element, Conv2d):
        out[...] = fn(element.stencil(theta)).reshape(-1)
        return
    if isinstance(element, Chain):
        for e, th, o in zip(element.elements, element.split(theta), element.split(out)):
            _map_into(e, th, o, fn)
        return
    layer = getattr(element, "layer", None)
    if isinstance(layer, Element) and hasattr(element, "coefficients"):
        C, O = element.coefficients(theta), element.coefficients(out)
        for k in range(C.shape[0]):
            _map_into(layer, C[k], O[k], fn)
        return
    transform = getattr(element, "transform", None)
    if isinstance(transform, Element) and "K" in element.layout.names:
        parts, oparts = element.split(theta), element.split(out)
        _map_into(transform, parts.K, oparts.K, fn)
        _check_no_conv(element, skip=("transform",))
        return
    _check_no_conv(element)


def _check_no_conv(element, skip=()):
    from ..transforms.conv2d import Conv2d

    for name, val in vars(element).items():
        if name in skip:
            continue
        vals = val if isinstance(val, (list, tuple)) else [val]
        for v in vals:
            if isinstance(v, Conv2d) or (isinstance(v, Element) and _contains_conv(v)):
                raise TypeError(
                    f"{type(element).__name__} holds a convolution in attribute {name!r} but its parameter layout "
                    "is not known to restrict_conv_theta/prolongate_conv_theta"
                )


def _contains_conv(element, _depth=0):
    from ..transforms.conv2d import Conv2d

    if isinstance(element, Conv2d):
        return True
    if _depth > 50:
        return False
    for val in vars(element).values():
        vals = val if isinstance(val, (list, tuple)) else [val]
        if any(isinstance(v, Element) and _contains_conv(v, _depth + 1) for v in vals):
            return True
    return False

