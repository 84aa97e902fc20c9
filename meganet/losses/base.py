"""Base class of the losses ``S(W Y_N + μ, C)`` on the network output.

A loss couples the output ``Y_N`` of a network with a linear classifier (or
regression model) ``w = (vec W, μ)`` and labels ``C``:

    Φ(Y, w) = (1/m) Σ_s q_s ℓ(z_s, c_s),      z_s = W y_s + μ,

where ``s`` runs over the *samples*: the examples (default), or every
(example, pixel) pair for image-valued outputs (``per_pixel=True``, the
classifier acting on the channels of every pixel like a 1×1 convolution, as in
the segmentation problems of Peters, "Deep connections between learning from
limited labels & physical parameter estimation").  ``q_s ∈ {0, 1}`` is the
optional label mask (the selection operator ``Q`` of Peters, eq. 3.2) and
``m = Σ_s q_s`` the number of labelled samples: the loss is the **mean over
the labelled samples**, so unlabelled examples or pixels change neither its
value nor its derivatives, and the scale of Φ does not depend on how many
labels there are.  Labels of unlabelled samples are ignored (they may hold
anything, e.g. ``-1`` or NaN).

Derivatives (all exact).  Let ``G = ∂Φ/∂Z`` (rows ``q_s/m · ∇ℓ(z_s)``) and
``H`` the (block diagonal) Hessian of Φ w.r.t. the logits ``Z``.  With samples
in rows, ``Z = Y Wᵀ + 1 μᵀ`` is bilinear in ``(Y, W)``, hence

    ∇_Y Φ = G W,            ∇_W Φ = Gᵀ Y,            ∇_μ Φ = Gᵀ 1,
    ∇²_YY dY = H[dY Wᵀ] W,   ∇²_ww dw = J_wᵀ H[Y dWᵀ + 1 dμᵀ],
    ∇²_Yw dw = H[Y dWᵀ + 1 dμᵀ] W + G dW,
    ∇²_wY dY = (H[dY Wᵀ]ᵀ Y + Gᵀ dY,  H[dY Wᵀ]ᵀ 1).

The terms ``G dW`` and ``Gᵀ dY`` come from the bilinearity of ``Z``; the
Gauss-Newton approximation (``gauss_newton=True``) drops them and is positive
semidefinite.  The ``Y``-block and ``w``-block are exact either way.

Meganet.m counterpart: ``loss/softmaxLoss.m``, ``loss/logRegressionLoss.m``,
``loss/regressionLoss.m`` (``getMisfit`` returning ``F, dWF, d2WF, dYF, d2YF``).
Unlike Meganet.m the loss here holds no hidden Tikhonov term (``theta``): the
classifier's regularizer is a separate object (see :mod:`meganet.regularizers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import check_dtype, get_array_module, resolve_xp, to_backend
from ..core.layout import Layout
from ..core.validation import check_array, check_bool, check_int, check_option, check_shape_tuple, options

__all__ = ["Loss", "LossEval", "LossCache"]

_NEED = ("value", "grad_Y", "grad_w")


@dataclass
class LossCache:
    """Intermediates of one evaluation, reused by the Hessian products.

    Attributes
    ----------
    Ys : array, shape (n_samples, n_features)
        The output as samples (rows): examples, or (example, pixel) pairs.
    W : array, shape (n_classes, n_features)
        View of the classifier matrix in ``w``.
    Z : array, shape (n_samples, n_classes)
        Logits ``Y Wᵀ + μ``.
    T : array, shape (n_samples, n_classes)
        Targets (one-hot, probabilities or values); zero in unlabelled rows.
    weight : array, shape (n_samples, 1)
        ``q_s / m``.
    G : array, shape (n_samples, n_classes)
        ``∂Φ/∂Z`` (already weighted).
    curvature : dataclass
        Loss-specific pieces of the per-sample Hessian ``∇²ℓ(z_s)``.
    """

    Ys: Any
    W: Any
    Z: Any
    T: Any
    weight: Any
    G: Any
    curvature: Any


@dataclass
class LossEval:
    """Result of :meth:`Loss.evaluate`.

    Attributes
    ----------
    value : 0-d array or None
        ``Φ(Y, w)``.
    grad_Y : array, shape of ``Y``, or None
    grad_w : array, shape (n_w,), or None
    n_labelled : int
        ``m``, the number of labelled samples the loss is averaged over.
    cache : LossCache
        Used by the Hessian products (``hess_*_mv(…, ev)``).
    Y_shape, dtype, xp
        Shape of ``Y``, dtype and array module of the evaluation (to validate
        the perturbations of the Hessian products).
    """

    value: Any
    grad_Y: Any
    grad_w: Any
    n_labelled: int
    cache: LossCache
    Y_shape: tuple
    dtype: Any
    xp: Any


class Loss:
    """A loss ``Φ(Y, w) = (1/m) Σ_s q_s ℓ(W y_s + μ, c_s)`` (see the module docstring).

    Subclasses implement

    ``_pointwise(Z, T) -> (ell, g, curvature)``
        per-sample values ``ℓ`` (n_samples,), gradients ``∇ℓ`` (n_samples,
        n_classes) and a dataclass with what the Hessian needs;
    ``_curvature_mv(dZ, curvature) -> ∇²ℓ(z_s) dz_s`` for every row;
    ``_check_targets(T, labelled)``, ``_index_to_targets(idx, xp, dtype)``,
    ``_classes_from_logits(Z)``, ``_classes_from_targets(T)``.

    Parameters
    ----------
    shape_in : int or tuple of int
        Feature shape of the network output (without the example axis).
    n_classes : int
        Rows of ``W`` (classes, or outputs of a regression).
    bias : bool
        Include the offset ``μ`` (default True).
    per_pixel : bool
        ``False`` (default): one label per example; ``Y`` of shape
        ``(n, *shape_in)`` is used flattened, ``W`` has shape
        ``(n_classes, prod(shape_in))``.  ``True``: ``shape_in = (C, *spatial)``
        and one label per pixel; ``W`` of shape ``(n_classes, C)`` acts on the
        channels of every pixel.

    Attributes
    ----------
    layout : Layout
        Parts ``"W"`` (``n_classes · n_features``, row-major) and ``"mu"``.
    n_features : int
        Columns of ``W``: ``prod(shape_in)``, or the channels when ``per_pixel``.
    spatial : tuple of int
        Pixel grid of per-pixel labels (``()`` for one label per example).
    n_index : int
        Integer labels must lie in ``0 .. n_index − 1``.

    Notes
    -----
    Empty data: the averages (:meth:`value`, :meth:`evaluate`, :meth:`accuracy`,
    ``relative_error``) raise ``ValueError`` for ``Y`` with 0 examples or a
    mask that selects no sample; the per-example maps (:meth:`logits`,
    :meth:`predict`, ``probabilities``) return empty arrays with 0 rows.
    """

    def __init__(self, shape_in, n_classes, *, bias=True, per_pixel=False, min_classes=1):
        self.shape_in = check_shape_tuple("shape_in", shape_in)
        self.n_classes = check_int("n_classes", n_classes, minimum=min_classes)
        self.bias = bias = check_bool("bias", bias)
        self.per_pixel = per_pixel = check_bool("per_pixel", per_pixel)
        self.n_index = self.n_classes
        if per_pixel:
            if len(self.shape_in) < 2:
                raise ValueError(
                    f"per_pixel=True needs an image-shaped output shape_in = (channels, *spatial), got {self.shape_in}"
                )
            self.n_features = self.shape_in[0]
            self.spatial = self.shape_in[1:]
        else:
            self.n_features = int(np.prod(self.shape_in))
            self.spatial = ()
        self.n_pixels = int(np.prod(self.spatial)) if self.spatial else 1
        parts = [("W", self.n_classes * self.n_features)]
        if bias:
            parts.append(("mu", self.n_classes))
        self.layout = Layout(parts)

    # ----------------------------------------------------------------- sizes
    @property
    def n_w(self) -> int:
        """Length of the classifier vector ``w = (vec W, μ)``."""
        return self.layout.size

    def matrix(self, w):
        """``W``, shape ``(n_classes, n_features)`` (a view of ``w``)."""
        return w[: self.n_classes * self.n_features].reshape(self.n_classes, self.n_features)

    def split_w(self, w):
        """Named views ``W`` (flat) and ``mu`` of ``w``."""
        return self.layout.split(w)

    def init_w(self, *, rng=None, dtype=np.float64, xp=None):
        """Initial classifier: ``W`` standard normal / ``sqrt(n_features)``, ``μ = 0``.

        Drawn in float64 on the host with ``numpy.random.default_rng(rng)``,
        then cast to ``dtype`` and moved to ``xp``.

        Returns
        -------
        w : array, shape (n_w,)
        """
        dtype = check_dtype(dtype)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        w = np.zeros(self.n_w)
        w[: self.n_classes * self.n_features] = rng.standard_normal(self.n_classes * self.n_features) / np.sqrt(
            self.n_features
        )
        return to_backend(w.astype(dtype), resolve_xp(xp))

    # ----------------------------------------------------------- public API
    def evaluate(self, Y, w, C, *, mask=None, need=_NEED):
        """Value and gradients of the loss; the result also feeds the Hessian products.

        Parameters
        ----------
        Y : array, shape (n_examples, *shape_in)
            Network output.
        w : array, shape (n_w,)
            Classifier ``(vec W, μ)``.
        C : array
            Labels, either class indices of an integer dtype, shape
            ``(n_examples,)`` (``(n_examples, *spatial)`` per pixel), or targets
            (one-hot, probabilities, regression values) of shape
            ``(n_examples, n_classes)`` (``(n_examples, n_classes, *spatial)``).
        mask : array of bool or {0, 1}, optional
            Labelled samples, shape ``(n_examples,)`` or, per pixel,
            ``(n_examples, *spatial)``.  Default: all labelled.
        need : iterable of {'value', 'grad_Y', 'grad_w'}
            What to compute (the others are ``None``).

        Returns
        -------
        LossEval
        """
        if isinstance(need, str):
            need = (need,)
        need = tuple(need)
        for item in need:
            check_option("need", item, _NEED)
        Y, w, xp, dtype, n, Ys, Z, T, weight, m = self._logits_and_weights(Y, w, C, mask)
        W = self.matrix(w)
        ell, g, curvature = self._pointwise(Z, T)
        G = weight * g
        value = grad_Y = grad_w = None
        if "value" in need:
            value = xp.asarray((weight[:, 0] * ell).sum())
        if "grad_Y" in need:
            grad_Y = self._from_samples(G @ W, n, xp)
        if "grad_w" in need:
            grad_w = self._w_adjoint(G, Ys, xp)
        cache = LossCache(Ys=Ys, W=W, Z=Z, T=T, weight=weight, G=G, curvature=curvature)
        return LossEval(value=value, grad_Y=grad_Y, grad_w=grad_w, n_labelled=int(m), cache=cache,
                        Y_shape=tuple(Y.shape), dtype=dtype, xp=xp)

    def _logits_and_weights(self, Y, w, C, mask, as_index=False):
        """Validated inputs, samples ``Ys``, logits ``Z``, targets ``T`` and the per-sample weights (s, 1).

        ``as_index``: class-index labels come back as the validated indices (n_samples,) instead of
        one-hot targets (see :meth:`_targets`)."""
        Y, w, xp, dtype = self._check_Yw(Y, w)
        n = Y.shape[0]
        q, m, labelled = self._sample_weights(mask, n, xp, dtype)
        T = self._targets(C, n, xp, dtype, labelled, as_index=as_index)
        Ys = self._to_samples(Y, xp)
        Z = self._logits_samples(Ys, w)
        scale = 1.0 / m
        weight = (q * scale)[:, None] if q is not None else xp.full((Z.shape[0], 1), scale, dtype=dtype)
        return Y, w, xp, dtype, n, Ys, Z, T, weight, m

    def value(self, Y, w, C, *, mask=None):
        """``Φ(Y, w)`` as a 0-d array (the loss terms only: no gradient factors or curvature are formed;
        class-index labels go to :meth:`_pointwise_value_index`, which may skip the one-hot targets)."""
        _, _, xp, _, _, _, Z, T, weight, _ = self._logits_and_weights(Y, w, C, mask, as_index=True)
        ell = self._pointwise_value_index(Z, T) if T.ndim == 1 else self._pointwise_value(Z, T)
        return xp.asarray((weight[:, 0] * ell).sum())

    def _pointwise_value(self, Z, T):
        """The per-sample loss ``ℓ`` of :meth:`_pointwise` alone (override when it is cheaper)."""
        return self._pointwise(Z, T)[0]

    def _pointwise_value_index(self, Z, idx):
        """``ℓ`` for class indices ``idx`` (n_samples,): by default through the one-hot targets
        (override to skip them)."""
        return self._pointwise_value(Z, self._index_to_targets(idx, get_array_module(Z), Z.dtype))

    def hess_mv(self, dY, dw, ev, *, gauss_newton=False):
        """Full Hessian product ``∇²Φ (dY, dw)`` at the point of ``ev``.

        Parameters
        ----------
        dY : array, shape of ``Y``, or None (zero)
        dw : array, shape (n_w,), or None (zero)
        ev : LossEval
        gauss_newton : bool
            Drop the terms of the bilinear map ``(Y, W) ↦ Y Wᵀ`` (PSD approximation).

        Returns
        -------
        HY : array, shape of ``Y``
            ``∇²_YY dY + ∇²_Yw dw``
        Hw : array, shape (n_w,)
            ``∇²_wY dY + ∇²_ww dw``
        """
        self._check_eval(ev)
        self._check_dY(dY, ev)
        self._check_dw(dw, ev)
        return self._hess(dY, dw, ev, True, True, check_bool("gauss_newton", gauss_newton))

    def hess_Y_mv(self, dY, ev):
        """``∇²_YY Φ dY``, shape of ``Y``."""
        self._check_eval(ev)
        self._check_dY(dY, ev, required=True)
        return self._hess(dY, None, ev, True, False, False)[0]

    def hess_w_mv(self, dw, ev):
        """``∇²_ww Φ dw``, shape ``(n_w,)``."""
        self._check_eval(ev)
        self._check_dw(dw, ev, required=True)
        return self._hess(None, dw, ev, False, True, False)[1]

    def hess_Yw_mv(self, dw, ev, *, gauss_newton=False):
        """Mixed block ``∇²_Yw Φ dw`` (change of ``∇_Y Φ`` along ``dw``), shape of ``Y``."""
        self._check_eval(ev)
        self._check_dw(dw, ev, required=True)
        return self._hess(None, dw, ev, True, False, check_bool("gauss_newton", gauss_newton))[0]

    def hess_wY_mv(self, dY, ev, *, gauss_newton=False):
        """Mixed block ``∇²_wY Φ dY = (∇²_Yw Φ)ᵀ dY`` (change of ``∇_w Φ`` along ``dY``), shape ``(n_w,)``."""
        self._check_eval(ev)
        self._check_dY(dY, ev, required=True)
        return self._hess(dY, None, ev, False, True, check_bool("gauss_newton", gauss_newton))[1]

    def logits(self, Y, w):
        """``W Y + μ``: shape ``(n_examples, n_classes)`` or ``(n_examples, n_classes, *spatial)``."""
        Y, w, xp, _ = self._check_Yw(Y, w)
        Z = self._logits_samples(self._to_samples(Y, xp), w)
        return self._from_samples(Z, Y.shape[0], xp, self.n_classes)

    def predict(self, Y, w):
        """Predicted class indices, shape ``(n_examples,)`` or ``(n_examples, *spatial)``."""
        Y, w, xp, _ = self._check_Yw(Y, w)
        Z = self._logits_samples(self._to_samples(Y, xp), w)
        return self._classes_from_logits(Z).reshape(Y.shape[0], *self.spatial)

    def accuracy(self, Y, w, C, *, mask=None):
        """Fraction of the labelled samples whose predicted class is the labelled one.

        True classes are the class indices, or the arg-max of the target rows.

        Returns
        -------
        float
        """
        Y, w, xp, dtype = self._check_Yw(Y, w)
        n = Y.shape[0]
        _, m, labelled = self._sample_weights(mask, n, xp, dtype)
        T = self._targets(C, n, xp, dtype, labelled)
        Z = self._logits_samples(self._to_samples(Y, xp), w)
        correct = self._classes_from_logits(Z) == self._classes_from_targets(T)
        if labelled is not None:
            correct = correct & labelled
        return float(xp.count_nonzero(correct)) / m

    # --------------------------------------------------------- the chains
    def _logits_samples(self, Ys, w):
        Z = Ys @ self.matrix(w).T
        if self.bias:
            Z = Z + w[self.n_classes * self.n_features:]
        return Z

    def _w_adjoint(self, G, Ys, xp):
        """``(vec(Gᵀ Y), Gᵀ 1)``: adjoint of ``w ↦ Y Wᵀ + 1 μᵀ`` applied to ``G``."""
        gW = (G.T @ Ys).reshape(-1)
        if not self.bias:
            return gW
        return xp.concatenate([gW, G.sum(axis=0)])

    def _hess(self, dY, dw, ev, need_Y, need_w, gauss_newton):
        c, xp, n = ev.cache, ev.xp, ev.Y_shape[0]
        dYs = self._to_samples(dY, xp) if dY is not None else None
        dW = self.matrix(dw) if dw is not None else None
        dZ = None
        if dYs is not None:
            dZ = dYs @ c.W.T
        if dw is not None:
            dZw = self._logits_samples(c.Ys, dw)
            dZ = dZw if dZ is None else dZ + dZw
        HY = Hw = None
        if dZ is None:
            HdZ = None
        else:
            HdZ = c.weight * self._curvature_mv(dZ, c.curvature)
        if need_Y:
            HYs = HdZ @ c.W if HdZ is not None else None
            if dW is not None and not gauss_newton:
                GdW = c.G @ dW
                HYs = GdW if HYs is None else HYs + GdW
            HY = self._from_samples(HYs, n, xp) if HYs is not None else xp.zeros(ev.Y_shape, dtype=ev.dtype)
        if need_w:
            Hw = self._w_adjoint(HdZ, c.Ys, xp) if HdZ is not None else xp.zeros(self.n_w, dtype=ev.dtype)
            if dYs is not None and not gauss_newton:
                k = self.n_classes * self.n_features
                Hw[:k] += (c.G.T @ dYs).reshape(-1)
        return HY, Hw

    # ------------------------------------------------- samples <-> arrays
    def _to_samples(self, A, xp):
        """``(n, k, *spatial)`` → ``(n_samples, k)``; for ``Y``: ``(n, *shape_in)`` → ``(n_samples, n_features)``."""
        n = A.shape[0]
        if not self.per_pixel:
            return A.reshape(n, int(np.prod(A.shape[1:])))
        return xp.moveaxis(A, 1, -1).reshape(n * self.n_pixels, A.shape[1])

    def _from_samples(self, A, n, xp, n_channels=None):
        """``(n_samples, k)`` → ``(n, k, *spatial)`` (``(n, *shape_in)`` when k = n_features)."""
        if not self.per_pixel:
            if n_channels is None:
                return A.reshape(n, *self.shape_in)
            return A.reshape(n, n_channels)
        k = A.shape[1]
        return xp.ascontiguousarray(xp.moveaxis(A.reshape(n, *self.spatial, k), -1, 1))

    # ------------------------------------------------------- validation
    def _check_Yw(self, Y, w):
        xp = get_array_module(Y, w, names=["Y", "w"])
        check_array("Y", Y, xp=xp)
        if Y.ndim != 1 + len(self.shape_in) or tuple(Y.shape[1:]) != self.shape_in:
            exp = "(n_examples, " + ", ".join(str(s) for s in self.shape_in) + ")"
            raise ValueError(f"Y must have shape {exp} for {type(self).__name__}, got {tuple(Y.shape)}")
        dtype = Y.dtype
        check_array("w", w, dtype=dtype, xp=xp)
        if w.shape != (self.n_w,):
            raise ValueError(f"w must have shape ({self.n_w},) for {self!r}, got {tuple(w.shape)}")
        return Y, w, xp, dtype

    def _sample_weights(self, mask, n, xp, dtype):
        """``(q, m, labelled)``: per-sample 0/1 weights (or None), their count, boolean mask (or None)."""
        n_samples = n * self.n_pixels
        if n_samples == 0:
            raise ValueError(f"Y has {n} examples; the loss (like the accuracy and the relative error) is an average "
                             "over the labelled examples and needs at least one")
        if mask is None:
            return None, float(n_samples), None
        mod = get_array_module(mask, names=["mask"])
        if mod is not xp:
            raise TypeError(f"mask is a {mod.__name__} array but Y is a {xp.__name__} array; use one backend per call")
        shapes = [(n,)] + ([(n, *self.spatial)] if self.per_pixel else [])
        if tuple(mask.shape) not in shapes:
            exp = " or ".join(str(s) for s in shapes)
            raise ValueError(f"mask must have shape {exp} (one entry per example{' or pixel' if self.per_pixel else ''}), "
                             f"got {tuple(mask.shape)}")
        if mask.dtype.kind == "b":
            labelled = mask
        elif mask.dtype.kind in "iuf":
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("mask must hold only 0 and 1 (or booleans): it selects the labelled samples")
            labelled = mask == 1
        else:
            raise TypeError(f"mask must be boolean or hold 0/1 numbers, got dtype {mask.dtype}")
        labelled = labelled.reshape(-1)
        if labelled.shape[0] != n_samples:
            labelled = xp.repeat(labelled, self.n_pixels)
        m = int(xp.count_nonzero(labelled))
        if m == 0:
            raise ValueError("mask selects no labelled sample: the loss (a mean over labelled samples) is undefined")
        return labelled.astype(dtype), float(m), labelled

    def _targets(self, C, n, xp, dtype, labelled, as_index=False):
        """Labels as targets ``T`` of shape (n_samples, n_classes) in ``dtype``; rows of unlabelled samples are 0.

        ``as_index``: class indices ``C`` are returned validated, as int64 (n_samples,) (unlabelled
        samples: class 0), not as one-hot rows."""
        mod = get_array_module(C, names=["C"])
        if mod is not xp:
            raise TypeError(f"C is a {mod.__name__} array but Y is a {xp.__name__} array; use one backend per call")
        idx_shape = (n, *self.spatial)
        tgt_shape = (n, self.n_classes, *self.spatial)
        if C.ndim == 0 or C.shape[0] != n:
            got = "a scalar" if C.ndim == 0 else f"{C.shape[0]} examples"
            raise ValueError(f"C must hold the labels of the {n} examples of Y (axis 0), got {got} (shape {tuple(C.shape)})")
        if tuple(C.shape) == idx_shape:
            if C.dtype.kind not in "biu":
                raise TypeError(
                    f"labels C of shape {tuple(C.shape)} are read as class indices and must have an integer dtype, "
                    f"got {C.dtype}; pass one-hot targets of shape {tgt_shape} for floating point labels"
                )
            idx = C.reshape(-1).astype(xp.int64)
            if labelled is not None:
                idx = xp.where(labelled, idx, 0)
            bad = (idx < 0) | (idx >= self.n_index)
            if bool(bad.any()):
                k = int(xp.argmax(bad))
                raise ValueError(
                    f"C holds class index {int(idx[k])} at sample {k}, but {type(self).__name__} with "
                    f"n_classes={self.n_classes} accepts indices 0..{self.n_index - 1}"
                )
            return idx if as_index else self._index_to_targets(idx, xp, dtype)
        if tuple(C.shape) == tgt_shape:
            if C.dtype.kind == "f":
                if C.dtype != dtype:
                    raise TypeError(
                        f"C has dtype {C.dtype} but Y is {np.dtype(dtype)}; cast explicitly "
                        "(meganet never up- or down-casts silently)"
                    )
            elif C.dtype.kind not in "biu":
                raise TypeError(f"C must hold numbers, got dtype {C.dtype}")
            T = self._to_samples(C, xp).astype(dtype)
            if labelled is not None:
                T = xp.where(labelled[:, None], T, xp.zeros((), dtype=dtype))
            if options.check_finite and not bool(xp.isfinite(T).all()):
                n_bad = int((~xp.isfinite(T)).sum())
                raise ValueError(f"C contains {n_bad} non-finite value(s) (NaN or Inf) at labelled samples")
            self._check_targets(T, labelled)
            return T
        raise ValueError(
            f"C must have shape {idx_shape} (class indices) or {tgt_shape} (targets: one-hot, probabilities or "
            f"values), got {tuple(C.shape)}"
        )

    def _check_eval(self, ev):
        if not isinstance(ev, LossEval):
            raise TypeError(f"ev must be the LossEval returned by evaluate(), got {type(ev).__name__}")

    def _check_dY(self, dY, ev, required=False):
        if dY is None:
            if required:
                raise ValueError(f"dY must be an array of shape {ev.Y_shape}, got None")
            return
        check_array("dY", dY, shape=ev.Y_shape, dtype=ev.dtype, xp=ev.xp)

    def _check_dw(self, dw, ev, required=False):
        if dw is None:
            if required:
                raise ValueError(f"dw must be an array of shape ({self.n_w},), got None")
            return
        check_array("dw", dw, shape=(self.n_w,), dtype=ev.dtype, xp=ev.xp)

    # --------------------------------------------------------- to implement
    def _pointwise(self, Z, T):  # pragma: no cover - abstract
        raise NotImplementedError

    def _curvature_mv(self, dZ, curvature):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_targets(self, T, labelled):
        pass

    def _index_to_targets(self, idx, xp, dtype):
        """One-hot rows (n_samples, n_classes)."""
        return (idx[:, None] == xp.arange(self.n_classes)[None, :]).astype(dtype)

    def _classes_from_logits(self, Z):
        return Z.argmax(axis=1)

    def _classes_from_targets(self, T):
        return T.argmax(axis=1)

    def __repr__(self):
        extra = ", per_pixel=True" if self.per_pixel else ""
        extra += "" if self.bias else ", bias=False"
        return f"{type(self).__name__}(shape_in={self.shape_in}, n_classes={self.n_classes}{extra})"
