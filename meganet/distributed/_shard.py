"""What runs on the workers (private; imports no dask): one shard of the training set and the
shard-wise pieces of the objectives.

A :class:`Shard` holds its examples ``(Y_s, C_s, mask_s)`` and a serial
:class:`~meganet.objectives.NetworkObjective` on them without regularizers (its
counted passes, chunking and loss evaluation are reused unchanged).  Every
function below returns the shard's *part of the global sum*: the loss of the
shard is a mean over its ``m_s`` labelled samples, so its value, gradients and
Hessian products are multiplied by ``m_s / m`` with ``m`` the labelled samples
of the whole view (training set, Hessian subsample or mini-batch), which makes
the sum over shards the serial mean ``(1/m) Σ_s q_s ℓ_s``.

The forward cache of the last point evaluated stays on the shard between
``value`` and the following ``gradient`` / Gauss-Newton products, keyed by
``(version, hash of θ)``; a request with another key recomputes the forward
pass (reported in the work counts), so a stale cache is never used.  The cache
is not pickled (:meth:`Shard.__getstate__`): a shard copied to another worker
carries its data only.

Every result carries ``work = (forward, adjoint)``: the passes counted on the
shard in units of the shard (its serial objective's counter), which the driver
scales by ``n_s / n``.
"""

from __future__ import annotations

import numpy as np

from ..objectives import NetworkObjective
from ..objectives import _classifier

__all__ = ["Shard", "labelled_counts"]


def labelled_counts(loss, mask, n):
    """Labelled samples per example (numpy int64, shape (n,)): ``n_pixels`` without a mask."""
    if mask is None:
        return np.full(n, loss.n_pixels, dtype=np.int64)
    m = np.asarray(mask).reshape(n, -1)
    c = (m != 0).sum(axis=1).astype(np.int64)
    if m.shape[1] == 1 and loss.n_pixels > 1:  # one mask entry per example of a per-pixel loss
        c = c * loss.n_pixels
    return c


class Shard:
    """One shard of the training data on a worker (see the module docstring).

    Parameters
    ----------
    index : int
        Position of the shard (0-based).
    network, loss : Element, Loss
    Y : array, shape (n_s, *network.shape_in)
    C : array, labels of ``Y``
    mask : array or None
    chunk_size : int or None
        Memory-bounded passes on the shard (as in the serial objective).
    n_total : int
        Examples of the whole training set (work is reported in passes over it).
    """

    def __init__(self, index, network, loss, Y, C, mask, chunk_size, *, n_total):
        self.index = int(index)
        self.scale = Y.shape[0] / n_total  # shard passes -> passes over the whole training set
        self.obj = NetworkObjective(network, loss, Y, C, mask=mask, chunk_size=chunk_size)
        self.loss = loss
        self.n = int(Y.shape[0])
        self.C64 = C.astype(np.float64) if C.dtype.kind == "f" else C
        self.cache = {}

    def __getstate__(self):  # the cache never travels
        d = dict(self.__dict__)
        d["cache"] = {}
        return d

    # ------------------------------------------------------------ helpers
    def _work(self, before):
        c = self.obj.counter
        return ((c.forward - before[0]) * self.scale, (c.adjoint - before[1]) * self.scale)

    def _mark(self):
        c = self.obj.counter
        return (c.forward, c.adjoint)

    def _view(self, idx):
        return self.obj._full_view if idx is None else self.obj._view(np.asarray(idx))

    def _store(self, key, name, entry):
        if any(k != key for k, _ in self.cache):  # a new point: the old caches go
            self.cache = {kn: e for kn, e in self.cache.items() if kn[0] == key}
        self.cache[(key, name)] = entry

    def _full(self, key, theta):
        """The forward pass over the whole shard at ``key`` (recomputed, and counted, when missing)."""
        e = self.cache.get((key, "full"))
        if e is None:
            Z, cache = self.obj._forward(theta, self.obj._full_view)
            e = dict(Z=Z, cache=cache, view=self.obj._full_view)
            self._store(key, "full", e)
        return e

    # ------------------------------------------------------------ NetworkObjective
    def net_value(self, key, theta, w, m_total):
        """Part of the loss at ``(θ, w)``; keeps the forward pass and the loss evaluation."""
        t0 = self._mark()
        e = self._full(key, theta)
        if not self.obj._finite(e["Z"]):
            e["ev"], e["fac"] = None, 0.0
            return dict(value=np.nan, finite=0, work=self._work(t0))
        ev = self.loss.evaluate(e["Z"], w, e["view"].C, mask=e["view"].mask)
        e["ev"], e["fac"] = ev, ev.n_labelled / m_total
        return dict(value=float(ev.value) * e["fac"], finite=1, work=self._work(t0))

    def _net_entry(self, key, theta, w, m_total):
        e = self.cache.get((key, "full"))
        if e is None or "ev" not in e:
            self.net_value(key, theta, w, m_total)
            e = self.cache[(key, "full")]
        return e

    def net_gradient(self, key, theta, w, m_total):
        """Part of ``∇f`` (without regularizers): ``m_s/m (J_θᵀ ∇_Z L_s, ∇_w L_s)``."""
        t0 = self._mark()
        e = self._net_entry(key, theta, w, m_total)
        if e["ev"] is None:
            return dict(grad=np.full(self.obj.n, np.nan), work=self._work(t0))
        ev = e["ev"]
        g_theta = self.obj._adjoint(ev.grad_Y, theta, e["view"], e["cache"])
        return dict(grad=e["fac"] * np.concatenate([g_theta, ev.grad_w]), work=self._work(t0))

    def net_curvature(self, key, theta, w, idx, m_sample, want_diag):
        """Prepare the Gauss-Newton products on the examples ``idx`` of the shard (None: all)."""
        t0 = self._mark()
        if idx is None:
            e = self._net_entry(key, theta, w, m_sample)
            ev, fac, Z, cache, view = e["ev"], e["fac"], e["Z"], e["cache"], e["view"]
        else:
            view = self.obj._view(np.asarray(idx))
            Z, cache = self.obj._forward(theta, view)
            ev = self.loss.evaluate(Z, w, view.C, mask=view.mask) if self.obj._finite(Z) else None
            fac = 0.0 if ev is None else ev.n_labelled / m_sample
        self._store(key, "curv", dict(Z=Z, cache=cache, view=view, ev=ev, fac=fac))
        out = dict(finite=int(ev is not None), work=self._work(t0))
        if want_diag:
            out["diag_w"] = (fac * _classifier.hessian_diagonal(self.loss, ev) if ev is not None
                             else np.full(self.loss.n_w, np.nan))
        return out

    def net_gn(self, key, theta, w, v_theta, v_w, idx, m_sample):
        """Part of the Gauss-Newton product ``m_s/m Jᵀ H_z J v`` on the curvature examples (prepared again,
        and counted, when this shard lost them: a shard re-created after a fault)."""
        t0 = self._mark()
        e = self.cache.get((key, "curv"))
        if e is None:
            self.net_curvature(key, theta, w, idx, m_sample, False)
            e = self.cache[(key, "curv")]
        if e["ev"] is None:
            return dict(Hv=np.full(self.obj.n, np.nan), work=self._work(t0))
        dZ = self.obj._jmv(v_theta, theta, e["view"], e["Z"], e["cache"])
        HZ, Hw = self.loss.hess_mv(dZ, v_w, e["ev"], gauss_newton=True)
        H_theta = self.obj._adjoint(HZ, theta, e["view"], e["cache"])
        return dict(Hv=e["fac"] * np.concatenate([H_theta, Hw]), work=self._work(t0))

    def net_diag(self, key, theta, w, idx, m_sample):
        """Part of the diagonal of the classifier block ``∇²_ww L`` on the curvature examples."""
        t0 = self._mark()
        e = self.cache.get((key, "curv"))
        if e is None:
            self.net_curvature(key, theta, w, idx, m_sample, False)
            e = self.cache[(key, "curv")]
        d = (e["fac"] * _classifier.hessian_diagonal(self.loss, e["ev"]) if e["ev"] is not None
             else np.full(self.loss.n_w, np.nan))
        return dict(diag_w=d, work=self._work(t0))

    def net_batch(self, theta, w, idx, m_batch):
        """Part of the mini-batch value and gradient on the examples ``idx`` of the shard (no cache kept)."""
        t0 = self._mark()
        view = self.obj._view(np.asarray(idx))
        Z, cache = self.obj._forward(theta, view)
        if not self.obj._finite(Z):
            return dict(value=np.nan, grad=np.full(self.obj.n, np.nan), work=self._work(t0))
        m_s = int(labelled_counts(self.loss, view.mask, len(idx)).sum())
        if m_s == 0:  # no labelled sample here: the forward pass ran (and counts), nothing to add
            self.obj.counter.add(adjoint=view.fraction)
            return dict(value=0.0, grad=np.zeros(self.obj.n, dtype=Z.dtype), work=self._work(t0))
        ev = self.loss.evaluate(Z, w, view.C, mask=view.mask)
        fac = ev.n_labelled / m_batch
        g_theta = self.obj._adjoint(ev.grad_Y, theta, view, cache)
        return dict(value=float(ev.value) * fac, grad=fac * np.concatenate([g_theta, ev.grad_w]),
                    work=self._work(t0))

    # ------------------------------------------------------------ VarPro
    def vp_forward(self, key, theta):
        """The forward pass of a VarPro value; keeps ``Z``, its float64 copy and the cache."""
        t0 = self._mark()
        e = self._full(key, theta)
        e["Z64"] = e["Z"] if e["Z"].dtype == np.float64 else e["Z"].astype(np.float64)
        return dict(finite=int(self.obj._finite(e["Z"])), work=self._work(t0))

    def _vp_entry(self, key, theta, name="full"):
        e = self.cache.get((key, name))
        if e is None:
            if name != "full":
                raise RuntimeError(f"shard {self.index}: no curvature sample for this point (key {key})")
            self.vp_forward(key, theta)
            e = self.cache[(key, name)]
        return e

    def _c64(self, view):
        return self.C64 if view.idx is None else self.C64[np.asarray(view.idx)]

    def vp_inner(self, key, theta, w64, m_total, need):
        """Part of the inner problem's loss at ``w`` (float64 features): ``value``, ``grad_w``, dense ``hess``."""
        t0 = self._mark()
        e = self._vp_entry(key, theta)
        ev = self.loss.evaluate(e["Z64"], w64, self._c64(e["view"]), mask=e["view"].mask)
        fac = ev.n_labelled / m_total
        out = dict(value=float(ev.value) * fac, grad=fac * ev.grad_w, work=self._work(t0))
        if "hess" in need:
            out["hess"] = fac * _classifier.dense_hessian(self.loss, ev)
        return out

    def vp_tsqr(self, key, theta, m_total, name="full"):
        """Least squares: the shard's ``R`` of ``D^{1/2} A`` (QR, weights of the global mean) and ``TᵀDA``."""
        t0 = self._mark()
        e = self._vp_entry(key, theta, name)
        ev0 = self.loss.evaluate(e["Z64"], np.zeros(self.loss.n_w), self._c64(e["view"]), mask=e["view"].mask,
                                 need=())
        fac = ev0.n_labelled / m_total
        A = _classifier.features(self.loss, ev0)
        weight = ev0.cache.weight * fac
        R = np.linalg.qr(np.sqrt(weight) * A, mode="r")
        return dict(R=R, TDA=(ev0.cache.T * weight).T @ A, work=self._work(t0))

    def vp_finalize(self, key, theta, w, w64, m_total, name="full"):
        """Keep the loss evaluations at ``w(θ)`` (objective dtype and float64) for the gradient and the
        Gauss-Newton products; return the parts of the loss value and of ``∇_w`` (float64)."""
        t0 = self._mark()
        e = self._vp_entry(key, theta, name)
        view = e["view"]
        ev64 = self.loss.evaluate(e["Z64"], w64, self._c64(view), mask=view.mask)
        ev = ev64 if e["Z"].dtype == np.float64 else self.loss.evaluate(e["Z"], w, view.C, mask=view.mask)
        e["ev"], e["ev64"], e["fac"] = ev, ev64, ev.n_labelled / m_total
        return dict(value=float(ev.value) * e["fac"], value64=float(ev64.value) * e["fac"],
                    grad64=e["fac"] * ev64.grad_w, work=self._work(t0))

    def vp_gradient(self, key, theta, w, w64, m_total):
        """Part of the reduced gradient ``m_s/m J_θᵀ ∇_F L(W(θ)F + μ(θ))``."""
        t0 = self._mark()
        e = self._vp_entry(key, theta)
        if e.get("ev") is None:  # a shard re-created after a fault: evaluate at w(θ) again
            self.vp_finalize(key, theta, w, w64, m_total)
        g = self.obj._adjoint(e["ev"].grad_Y, theta, e["view"], e["cache"])
        return dict(grad=e["fac"] * g, work=self._work(t0))

    def vp_curvature(self, key, theta, w, w64, idx, m_sample, kind):
        """The VarPro curvature sample on ``idx`` (None: the whole shard at w(θ)); returns what the driver's
        ``(∇²_ww Φ + ∇²S)⁻¹`` needs: ``kind='dense'`` the Hessian part, ``'tsqr'`` R and TᵀDA, ``None`` nothing."""
        t0 = self._mark()
        if idx is None:
            e = self._vp_entry(key, theta)
        else:
            view = self.obj._view(np.asarray(idx))
            Z, cache = self.obj._forward(theta, view)
            e = dict(Z=Z, cache=cache, view=view, Z64=Z if Z.dtype == np.float64 else Z.astype(np.float64))
            if not self.obj._finite(Z):
                return dict(finite=0, work=self._work(t0))
            self._store(key, "curv", e)
            self.vp_finalize(key, theta, w, w64, m_sample, name="curv")
        out = dict(finite=1, work=self._work(t0))
        if kind == "dense":
            out["hess"] = e["fac"] * _classifier.dense_hessian(self.loss, e["ev64"])
        elif kind == "tsqr":
            out.update({k: v for k, v in self.vp_tsqr(key, theta, m_sample, "full" if idx is None else "curv")
                        .items() if k != "work"})
        return out

    def _vp_curv(self, key, theta, w, w64, idx, m_sample):
        """The curvature entry (prepared again, and counted, on a shard re-created after a fault)."""
        name = "full" if idx is None else "curv"
        e = self.cache.get((key, name))
        if e is None or e.get("ev") is None:
            if idx is None:
                self._vp_entry(key, theta)
                self.vp_finalize(key, theta, w, w64, m_sample)
            else:
                self.vp_curvature(key, theta, w, w64, idx, m_sample, None)
            e = self.cache[(key, name)]
        return e

    def vp_gn1(self, key, theta, v, w, w64, idx, m_sample):
        """Reduced GN product, step 1: ``dF = J_θF v`` (kept) and the part of ``∇²_wF L dF``."""
        t0 = self._mark()
        e = self._vp_curv(key, theta, w, w64, idx, m_sample)
        e["dF"] = (self.obj._jmv(v, theta, e["view"], e["Z"], e["cache"]), v)
        return dict(b=e["fac"] * self.loss.hess_wY_mv(e["dF"][0], e["ev"]), work=self._work(t0))

    def _dF(self, e, theta, v):
        d = e.get("dF")
        if d is None or not np.array_equal(d[1], v):  # re-created shard: J_θF v again (counted)
            d = (self.obj._jmv(v, theta, e["view"], e["Z"], e["cache"]), v)
            e["dF"] = d
        return d[0]

    def vp_gn2(self, key, theta, v, dw, w, w64, idx, m_sample):
        """Step 2: ``(HF, Hw) = ∇²L_GN (dF, dw)``; keeps ``HF``, returns the part of ``Hw``."""
        t0 = self._mark()
        e = self._vp_curv(key, theta, w, w64, idx, m_sample)
        HF, Hw = self.loss.hess_mv(self._dF(e, theta, v), dw, e["ev"], gauss_newton=True)
        e["HF"] = (HF, dw)
        return dict(Hw=e["fac"] * Hw, work=self._work(t0))

    def vp_gn3(self, key, theta, v, dw, s, w, w64, idx, m_sample):
        """Step 3: ``J_θᵀ (HF + ∇²_Fw L s)``: the part of the reduced product (without ``∇²R``)."""
        t0 = self._mark()
        e = self._vp_curv(key, theta, w, w64, idx, m_sample)
        hf = e.pop("HF", None)
        if hf is None or not np.array_equal(hf[1], dw) or "dF" not in e or not np.array_equal(e["dF"][1], v):
            hf = self.loss.hess_mv(self._dF(e, theta, v), dw, e["ev"], gauss_newton=True)[0], dw
        e.pop("dF", None)
        HF = hf[0] + self.loss.hess_Yw_mv(s, e["ev"])
        Hv = self.obj._adjoint(HF, theta, e["view"], e["cache"])
        return dict(Hv=e["fac"] * Hv, work=self._work(t0))

    # ------------------------------------------------------------ metrics
    def metrics(self, theta, w):
        """Sums for the metrics on this shard: loss·m_s, correct, m_s, ‖residual‖², ‖target‖² (LS)."""
        Y, C, mask = self.obj.Y, self.obj.C, self.obj.mask
        with np.errstate(over="ignore", invalid="ignore"):
            Z = self.obj.network._apply(theta, Y)
        m_s = int(labelled_counts(self.loss, mask, self.n).sum())
        out = dict(m=m_s, n=self.n, loss=0.0, correct=0.0, res2=0.0, tgt2=0.0, one_hot=1)
        if not (self.obj._finite(Z) and bool(np.isfinite(w).all())):
            out.update(loss=np.nan, correct=np.nan)
            return out
        if m_s == 0:
            return out
        ev = self.loss.evaluate(Z, w, C, mask=mask, need=("value",))
        out["loss"] = float(ev.value) * m_s
        out["correct"] = self.loss.accuracy(Z, w, C, mask=mask) * m_s
        from ..losses.least_squares import LeastSquares
        if isinstance(self.loss, LeastSquares):
            T = ev.cache.T
            R = ev.cache.Z - T
            if mask is not None:
                R = R * (ev.cache.weight > 0)
            out["res2"] = float((R * R).sum())
            out["tgt2"] = float((T * T).sum())
            out["one_hot"] = int(self.obj._one_hot_like(C, mask))
        return out


def add_many(*parts):
    """Sum of partial results in their order (see :func:`add`)."""
    out = parts[0]
    for p in parts[1:]:
        out = add(out, p)
    return out


def add(a, b):
    """Sum of two partial results (dicts of numbers and arrays; ``work`` pairs added; the least-squares ``R``
    factors combined by a QR of the stacked pair: a tree TSQR)."""
    out = {}
    for k, v in a.items():
        u = b[k]
        if k == "work":
            out[k] = (v[0] + u[0], v[1] + u[1])
        elif k == "R":  # TSQR: the R factor of the stacked R factors
            out[k] = np.linalg.qr(np.vstack([v, u]), mode="r")
        else:
            out[k] = v + u
    return out
