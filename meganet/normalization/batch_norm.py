"""Batch normalization (Ioffe & Szegedy 2015; Meganet.m ``normLayer.m``/``getBatchNormLayer.m``)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module, is_cupy_array, to_backend
from .base import NormalizationCache, Standardization, StandardizationCache

__all__ = ["BatchNorm", "BatchNormEvalCache"]


@dataclass
class BatchNormEvalCache:
    """Intermediates of the evaluation-mode map ``N(Y) = (Y − μ_run) r``, ``r = 1/sqrt(σ²_run + ε)``."""

    Yhat: object  #: N(Y)
    inv_std: object  #: r per channel, shape ``(1, C, 1, …)``, dtype of Y
    mean: object  #: μ_run per channel, shape ``(1, C, 1, …)``, dtype of Y


def _check_momentum(momentum):
    if momentum is None:
        return None
    if not isinstance(momentum, numbers.Real) or isinstance(momentum, bool) or not np.isfinite(momentum):
        raise TypeError(f"momentum must be a real number in (0, 1] or None, got {momentum!r}")
    if not 0 < momentum <= 1:
        raise ValueError(f"momentum must be in (0, 1] or None (cumulative average), got {momentum!r}")
    return float(momentum)


class BatchNorm(Standardization):
    r"""Batch normalization, with batch statistics in training mode and running
    estimates in evaluation mode.

    **Training mode** (``training=True``, the default):

    .. math::

        Z = s_c\,\frac{Y − μ_c}{\sqrt{σ_c^2 + ε}} + β_c,\qquad
        μ_c = \operatorname{mean}_{i,p} Y_{i c p},\quad
        σ_c^2 = \operatorname{mean}_{i,p} (Y_{i c p} − μ_c)^2,

    with mean and biased variance of every channel ``c`` over the examples
    ``i`` and pixels ``p`` of the batch (Ioffe & Szegedy, "Batch
    normalization: accelerating deep network training by reducing internal
    covariate shift", ICML 2015, Algorithm 1 and Sec. 3.2 for convolutional
    features).  For vector features ``(n, F)`` the statistics of each feature
    are taken over the examples.

    The Jacobian includes the dependence of μ and σ² on Y:
    ``∇N dY = (dY − mean(dY) − X̂·mean(X̂ ⊙ dY))/sqrt(σ² + ε)`` (means over
    examples and pixels, X̂ = N(Y)); it is self-adjoint.  It couples the
    examples of a batch: ``J_Y`` is not block diagonal over examples, so Z of
    one example depends on the whole batch.  The θ-gradients of the scale and
    bias are sums over examples, so per-example θ-gradients are well defined
    (each example's pixel sums).

    **Evaluation mode** (``training=False``, inference; Ioffe & Szegedy
    Algorithm 2): the running estimates replace the batch statistics,

    .. math:: N(Y) = \frac{Y − μ^{run}_c}{\sqrt{σ^{2,run}_c + ε}} ,

    an affine map per channel that does not couple examples (Z of one example
    is its slice of the batch's Z).  Its Jacobian is ``r·dY`` with
    ``r = 1/sqrt(σ²_run + ε)``, self-adjoint; per-example θ-gradients as in
    training mode.  A cache records the mode it was made in; ``Jmv``/``JTmv``
    differentiate the map of that mode.

    **Running statistics.**  ``running_mean`` and ``running_var`` (one float64
    value per channel, initially 0 and 1) are *never* changed by a plain
    :meth:`forward`: the element stays a pure function of (θ, Y), as line
    searches, derivative checks and Gauss–Newton products need.  They change
    only

    * by :meth:`update_running_statistics` with the cache of a training-mode
      forward,
    * inside :func:`~meganet.normalization.track_running_statistics`, where
      every training-mode evaluation of this element (``forward``, ``apply``,
      and recomputations such as ``Jmv(..., cache=None)``) updates them,
    * by :func:`~meganet.normalization.estimate_running_statistics` (exact
      pooled statistics of a data set) and the reset/load helpers of
      :mod:`meganet.normalization.mode`.

    The update follows PyTorch's ``BatchNorm``: with momentum ``m``,
    ``run ← (1 − m)·run + m·batch``; with ``momentum=None`` a cumulative
    average of all batches seen, ``run ← run + (batch − run)/k`` for the k-th
    batch.  The mean is the batch mean; the variance is the **unbiased**
    batch variance ``σ²·M/(M − 1)`` (``M = n·pixels`` values per channel),
    while the normalization itself uses the biased σ² (as PyTorch).

    Evaluation mode before any statistics were estimated is allowed and uses
    the defaults 0 and 1, i.e. ``N(Y) = Y/sqrt(1 + ε)``.

    **Backends.**  The running statistics are host (numpy) float64 arrays
    after construction, reset and load; when used they follow the input's
    backend: evaluation mode moves the C values to Y's array module and casts
    them to Y's dtype (no copy for numpy), and an update on cupy data leaves
    them as cupy float64 arrays (:func:`~meganet.normalization.running_statistics_state`
    returns numpy copies).  Only per-channel vectors move, never data.

    A BatchNorm that is applied several times in one forward pass (the layer
    of a time-stepping block is shared by all its steps) has one set of
    running statistics: every application updates it and evaluation mode uses
    it at every step.

    With ``affine=True`` the scale s and bias β are the γ, β of Ioffe & Szegedy.

    Corresponds to Meganet.m ``layers/normLayer.m`` (the parameter-free map and
    its derivative) composed with ``layers/affineScalingLayer.m`` as in
    ``layers/getBatchNormLayer.m``.  Unlike ``getBatchNormLayer.m``, which
    normalizes each pixel and channel over the examples only
    (``doNorm = [0,0,1]``), the statistics here are shared by all pixels of a
    channel, as in Ioffe & Szegedy Sec. 3.2.

    Parameters
    ----------
    shape : int or tuple of int
        Feature shape ``(F,)`` or ``(C, H, W)`` (any ``(C, *spatial)``).
    eps : float, default 1e-5
        ε > 0 added to the variance (representable in float32 next to
        variances of order one).
    affine : bool, default False
        Trainable per-channel scale and bias, θ = (s, β), n_theta = 2C.
    engine : {'auto', 'numpy', 'numba', 'cupy'}, default 'auto'
        Kernel engine of :mod:`meganet.kernels.normalization` (``'auto'``: numba
        for numpy arrays when installed; on cupy arrays the reference reductions
        run on the device).  The evaluation-mode map is plain array arithmetic.
    momentum : float in (0, 1] or None, default 0.1
        Weight of the new batch in the running estimates; ``None``: cumulative
        average.

    Attributes
    ----------
    training : bool
        Mode (default True); see :func:`~meganet.normalization.set_training`.
    running_mean, running_var : arrays, shape (C,)
        Running estimates; assigning checks the shape (C,), finiteness and
        ``running_var ≥ 0``.
    num_batches_tracked : int
        Number of batches the running estimates have seen.

    Notes
    -----
    A batch with a single example of vector features gives ``Z = β`` in
    training mode (every feature equals its mean); use at least two examples.
    Its unbiased variance is undefined, so an update from it raises.
    """

    _kind = "batch"

    def __init__(self, shape, *, eps=1e-5, affine=False, engine="auto", momentum=0.1):
        super().__init__(shape, eps=eps, affine=affine, engine=engine)
        self.momentum = momentum
        self._tracking = False  # set by meganet.normalization.track_running_statistics
        self._accumulator = None  # set by meganet.normalization.estimate_running_statistics
        self.reset_running_statistics()

    # ------------------------------------------------------------ state
    @property
    def momentum(self):
        """Weight of a new batch in the running estimates, in (0, 1], or ``None`` (cumulative average)."""
        return self._momentum

    @momentum.setter
    def momentum(self, value):
        self._momentum = _check_momentum(value)

    @property
    def running_mean(self):
        """Running estimate of the per-channel mean, shape (C,), float64."""
        return self._running_mean

    @running_mean.setter
    def running_mean(self, value):
        self._running_mean = self._check_running("running_mean", value)

    @property
    def running_var(self):
        """Running estimate of the per-channel (unbiased) variance, shape (C,), float64, ≥ 0."""
        return self._running_var

    @running_var.setter
    def running_var(self, value):
        self._running_var = self._check_running("running_var", value, nonnegative=True)

    def _check_running(self, name, value, nonnegative=False):
        C = self.n_channels
        if not (isinstance(value, np.ndarray) or is_cupy_array(value)):
            value = np.asarray(value)
        xp = get_array_module(value)
        if value.dtype.kind not in "fiu":
            raise TypeError(f"{name} of {self!r} must be a real array of shape ({C},), got dtype {value.dtype}")
        if tuple(value.shape) != (C,):
            raise ValueError(f"{name} of {self!r} must have shape ({C},) (one value per channel), "
                             f"got {tuple(value.shape)}")
        value = value.astype(np.float64)  # a copy: the buffer never aliases the caller's array
        if not bool(xp.isfinite(value).all()):
            n_bad = int((~xp.isfinite(value)).sum())
            raise ValueError(f"{name} of {self!r} contains {n_bad} non-finite value(s) (NaN or Inf)")
        if nonnegative and bool((value < 0).any()):
            raise ValueError(f"{name} of {self!r} must be non-negative, got minimum {float(value.min()):g}")
        return value

    def reset_running_statistics(self):
        """``running_mean = 0``, ``running_var = 1``, ``num_batches_tracked = 0`` (host arrays)."""
        C = self.n_channels
        self._running_mean = np.zeros(C)
        self._running_var = np.ones(C)
        self.num_batches_tracked = 0

    def update_running_statistics(self, cache):
        """Update the running estimates with the batch statistics recorded in ``cache``.

        Parameters
        ----------
        cache : the cache of a training-mode :meth:`forward` of this element
            (or its ``.norm`` part).

        With momentum ``m``: ``run ← (1 − m) run + m·batch``; with
        ``momentum=None``: ``run ← run + (batch − run)/k`` (k-th batch).  The
        variance update uses the unbiased batch variance ``σ²·M/(M − 1)``.
        The new estimates are on the backend of the cache, float64.
        """
        norm = cache.norm if isinstance(cache, NormalizationCache) else cache
        if isinstance(norm, BatchNormEvalCache):
            raise ValueError(f"{self!r}: the cache was made in evaluation mode, which uses the running "
                             "statistics and records no batch statistics; update from a training-mode forward")
        if not isinstance(norm, StandardizationCache) or norm.mean is None:
            raise TypeError(f"cache must be the cache of a training-mode forward of {self!r}, "
                            f"got {type(cache).__name__}")
        self._accumulate(*self._batch_statistics(norm), norm.count)

    def _batch_statistics(self, norm):
        """Batch mean and biased variance (float64, shape (C,)) from a training-mode cache."""
        mean = norm.mean.reshape(-1).astype(np.float64)
        var = norm.var.reshape(-1).astype(np.float64)
        if mean.shape != (self.n_channels,):
            raise ValueError(f"cache holds {mean.shape[0]} channel statistics, {self!r} has {self.n_channels}")
        return mean, var

    def _accumulate(self, mean, var, count):
        """Fold one batch's mean, biased variance and count into the running estimates (or into
        the pooled estimator of :func:`~meganet.normalization.estimate_running_statistics`)."""
        if self._accumulator is not None:
            self._accumulator.add(mean, var, count)
            return
        if count < 2:
            raise ValueError(f"{self!r}: a running variance needs at least 2 values per channel (got {count}); "
                             "track running statistics on batches of at least 2 examples")
        var = var * (count / (count - 1))  # unbiased, as PyTorch's running_var
        xp = get_array_module(mean)
        run_mean = to_backend(self._running_mean, xp)
        run_var = to_backend(self._running_var, xp)
        self.num_batches_tracked += 1
        m = 1.0 / self.num_batches_tracked if self._momentum is None else self._momentum
        self._running_mean = run_mean + m * (mean - run_mean)
        self._running_var = run_var + m * (var - run_var)

    # ------------------------------------------------ parameter-free map N
    def _normalize(self, Y):
        if self.training:
            Yhat, cache = super()._normalize(Y)
            if self._tracking:
                self._accumulate(*self._batch_statistics(cache), cache.count)
            return Yhat, cache
        xp = get_array_module(Y)
        shape = (1, -1) + (1,) * (Y.ndim - 2)
        mean = to_backend(self._running_mean, xp)
        inv_std = 1.0 / xp.sqrt(to_backend(self._running_var, xp) + self.eps)
        mean = mean.astype(Y.dtype).reshape(shape)
        inv_std = inv_std.astype(Y.dtype).reshape(shape)
        Yhat = (Y - mean) * inv_std
        return Yhat, BatchNormEvalCache(Yhat=Yhat, inv_std=inv_std, mean=mean)

    def _normalize_Jmv(self, dY, cache):
        if isinstance(cache, BatchNormEvalCache):
            return cache.inv_std * dY
        return super()._normalize_Jmv(dY, cache)

    def _normalize_JTmv(self, W, cache):
        if isinstance(cache, BatchNormEvalCache):
            return cache.inv_std * W
        return super()._normalize_JTmv(W, cache)

    def _extra_repr(self):
        extra = super()._extra_repr()
        if self._momentum != 0.1:
            extra += f", momentum={self._momentum!r}"
        if not self.training:
            extra += ", training=False"
        return extra
