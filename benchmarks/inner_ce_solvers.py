"""VarPro cross-entropy inner solvers: today's warm-started trust-region Newton
(dense Cholesky) vs the published GNvpro Newton–Krylov trust region from W = 0
(``inner_solver="krylov"``) with several Krylov dimensions r.

Problems (float64, classifier regularizer Tikhonov α = 1e-3, θ-regularizer Tikhonov α = 1e-4):

* peaks, 5 classes, features of ``build_model(model_spec(network="antisym_rk4",
  n_inputs=2, width=8, n_steps=8, final_time=1.0, gamma=1e-4, n_outputs=5))``
  (n_w = 45);
* a 10-class Gaussian mixture in 4-D, the same network kind with width 24
  (n_w = 250).

θ snapshots are taken along a short ``minimize_trust_region_krylov`` run on the
VarProObjective (today's inner solver).  At every snapshot, for each inner
solver: time per inner solve (median of repeats), trust-region iterations,
Lanczos steps, final relative ``‖∇_wΦ‖/‖∇_wΦ(0)‖``, and the relative error of
the implicit solves ``(∇²Φ)⁻¹ b`` (``b = ∇²_wF L · dF`` for random feature
perturbations ``dF``) against the exact dense solve at the same ``w``.  Then
N = 10 outer iterations of ``minimize_trust_region_krylov`` from three θ₀
(seeds 1, 2, 3) with each option: final Φ_red, wall time, inner statistics;
plus a diagnostic run whose reduced Gauss-Newton product drops the implicit
term ``J_θw`` (``W`` held fixed, as Meganet.m's ``dnnVarProObjFctn``), to
tell apart "a better inner solver" from "a different outer curvature model".

Output: JSON lines on stdout and in ``benchmarks/results/inner_ce/results.jsonl``.
Run: ``python benchmarks/inner_ce_solvers.py [--quick]`` (``--quick`` writes
``results_quick.jsonl``, leaving the full results alone).

BLAS runs single-threaded (``OPENBLAS_NUM_THREADS=1`` etc., set before numpy
is imported unless already set): on the shared 2-core machine, multi-threaded
OpenBLAS made the same dense inner solve take anywhere from 0.26 s to 8.8 s
(thread contention with other jobs); single-threaded it took 0.09–0.16 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meganet.data import peaks  # noqa: E402
from meganet.objectives import VarProObjective, _classifier  # noqa: E402
from meganet.objectives._inner_krylov import solve_classifier_krylov  # noqa: E402
from meganet.objectives._inner_newton import _value_grad, solve_classifier  # noqa: E402
from meganet.optimizers import minimize_trust_region_krylov  # noqa: E402
from meganet.regularizers import Tikhonov  # noqa: E402
from meganet.report import build_model, model_spec  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "inner_ce"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def problem(name, n):
    if name == "peaks5":
        d = peaks(int(n / 0.8), seed=0)
        Y, C = d.Y_train, d.C_train
        spec = model_spec(network="antisym_rk4", n_inputs=2, width=8, n_steps=8, final_time=1.0, gamma=1e-4,
                          n_outputs=5)
    else:  # gmm10: 10-class Gaussian mixture in 4-D
        rng = np.random.default_rng(0)
        means = 1.5 * rng.standard_normal((10, 4))
        C = rng.integers(0, 10, n)
        Y = means[C] + rng.standard_normal((n, 4))
        spec = model_spec(network="antisym_rk4", n_inputs=4, width=24, n_steps=4, final_time=1.0, gamma=1e-4,
                          n_outputs=10)
    model = build_model(spec)
    return model.network, model.loss, Y, C


def make_obj(net, loss, Y, C, cls=VarProObjective, **kw):
    return cls(net, loss, Y, C, regularizer=Tikhonov(net.n_theta, alpha=1e-4),
                           classifier_regularizer=Tikhonov(loss.n_w, alpha=1e-3), **kw)


def timed(fn, repeats):
    ts, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
        if ts[-1] > 5.0:  # slow: one run is enough
            break
    return out, float(np.median(ts))


def emit(rec, fh):
    rec = dict(rec, loadavg_now=os.getloadavg()[0])
    line = json.dumps(rec)
    print(line, flush=True)
    fh.write(line + "\n")
    fh.flush()


def run(name, n, n_outer, snapshots, dims, repeats, fh, meta, seeds=(1,)):
    net, loss, Y, C = problem(name, n)
    n_w = loss.n_w
    dims = [d if d is not None else n_w for d in dims]
    dims = sorted({min(d, n_w) for d in dims}, reverse=True)
    base = make_obj(net, loss, Y, C)
    th0 = base.init_x(rng=1)
    xs = [np.array(th0)]  # xs[k]: θ after k outer iterations (the callback is not called at θ₀)
    minimize_trust_region_krylov(base, th0, max_iter=max(snapshots), callback=lambda x, row: xs.append(np.array(x)))
    reg = base.classifier_regularizer
    rng = np.random.default_rng(7)
    w_prev = None
    for it in snapshots:
        if it >= len(xs):  # the run stopped early
            emit(dict(kind="skipped", problem=name, outer_iter=it, reason=f"only {len(xs) - 1} outer iterations"), fh)
            continue
        th = xs[it]
        Z = net(th, Y).astype(np.float64)
        C64 = base._C64
        _, g0, _ = _value_grad(loss, Z, C64, None, reg, np.zeros(n_w))
        g0n = float(np.linalg.norm(g0))
        dFs = [rng.standard_normal(Z.shape) for _ in range(3)]

        def implicit_err(res):
            """max relative error of the solver's (∇²Φ)⁻¹b, and the range of ‖S b‖/‖(∇²Φ)⁻¹b‖."""
            D = _classifier.DenseSolver(loss, res.loss_eval, reg, res.w)
            errs, ratios = [], []
            for dF in dFs:
                b = loss.hess_wY_mv(dF, res.loss_eval)
                x = D.solve(b)
                y = res.solver.solve(b)
                errs.append(float(np.linalg.norm(y - x) / np.linalg.norm(x)))
                ratios.append(float(np.linalg.norm(y) / np.linalg.norm(x)))
            return max(errs), (min(ratios), max(ratios))

        configs = [("trust_region(cold W=0)", lambda: solve_classifier(
            loss, Z, C64, None, reg, np.zeros(n_w), tol=1e-10, max_iter=50, method="auto", dense_max=1000))]
        if w_prev is not None:
            wp = w_prev
            configs.append(("trust_region(warm)", lambda: solve_classifier(
                loss, Z, C64, None, reg, wp, tol=1e-10, max_iter=50, method="auto", dense_max=1000)))
        for r in dims:
            configs.append((f"krylov(r={r})", lambda r=r: solve_classifier_krylov(
                loss, Z, C64, None, reg, tol=1e-10, max_iter=200, krylov_dim=r)))
        for label, fn in configs:
            res, t = timed(fn, repeats)
            if res.solver is not None and res.solver.kind == "krylov_lowrank":
                _, tb = timed(lambda: type(res.solver)(res.solver.matvec, res.solver.start, res.solver.r).build(),
                              repeats)
                err, ratio = implicit_err(res)
            else:
                tb = 0.0
                if res.solver is None:
                    res.solver = _classifier.DenseSolver(loss, res.loss_eval, reg, res.w)
                err, ratio = implicit_err(res)
            emit(dict(kind="inner", problem=name, n_examples=len(Y), n_w=n_w, outer_iter=it, solver=label,
                      time_s=t, lowrank_build_s=tb, n_iter=res.n_iter, lanczos_steps=res.n_cg, status=res.status,
                      rel_grad=res.grad_norm / g0n, grad_norm=res.grad_norm, implicit_rel_err=err,
                      implicit_norm_ratio=ratio, **meta), fh)
        w_prev = res.w
    # outer runs from several θ₀
    opts = [("trust_region", dict(inner_solver="trust_region"), VarProObjective)]
    opts += [(f"krylov(r={r})", dict(inner_solver="krylov", inner_krylov_dim=r, inner_max_iter=200), VarProObjective)
             for r in dims]
    opts += [("trust_region, W-fixed GN (diagnostic)", dict(inner_solver="trust_region"), _WFixedGN)]
    for seed in seeds:
        x0 = base.init_x(rng=seed)
        for label, kw, cls in opts:
            obj = make_obj(net, loss, Y, C, cls=cls, **kw)
            t = time.perf_counter()
            res = minimize_trust_region_krylov(obj, x0, max_iter=n_outer)
            wall = time.perf_counter() - t
            st = obj.inner_stats
            emit(dict(kind="outer", problem=name, n_examples=len(Y), n_w=n_w, solver=label, seed=seed,
                      outer_iters=n_outer, fun=float(res.fun), wall_s=wall, inner_solves=st["solves"],
                      newton_iterations=st["newton_iterations"], krylov_steps=st["cg_iterations"],
                      not_converged=st["not_converged"], accuracy=float(obj.metrics(res.x, Y, C)["accuracy"]),
                      **meta), fh)


class _WFixedGN(VarProObjective):
    """Diagnostic: the reduced Gauss-Newton product without the implicit term ``J_θw`` (every inner
    Hessian solve returns 0), i.e. ``J_θFᵀ Wᵀ H_z W J_θF + ∇²R`` — the Hessian of Meganet.m's
    ``dnnVarProObjFctn`` (W held fixed).  What a low-rank inverse that misses the right-hand sides
    (‖S b‖ ≪ ‖(∇²Φ)⁻¹b‖) approaches."""

    def _solve64(self, solver, b):
        return self.xp.zeros_like(b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    meta = dict(cpu=cpu_model(), n_cpu=os.cpu_count(), loadavg=os.getloadavg()[0], numpy=np.__version__,
                blas_threads=os.environ.get("OPENBLAS_NUM_THREADS"))
    n = 400 if args.quick else 800
    n_outer = 4 if args.quick else 10
    with open(OUT / ("results_quick.jsonl" if args.quick else "results.jsonl"), "w") as fh:  # quick: keep the full
        run("peaks5", n, n_outer, [0, 3, 6, 9] if not args.quick else [0, 2], [None, 20, 10], 3 if not args.quick else 1,
            fh, meta, seeds=(1, 2, 3) if not args.quick else (1,))
        run("gmm10", n, n_outer, [0, 3, 6, 9] if not args.quick else [0, 2], [None, 50, 20], 3 if not args.quick else 1,
            fh, meta, seeds=(1, 2, 3) if not args.quick else (1,))


if __name__ == "__main__":
    main()
