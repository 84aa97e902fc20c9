"""Why does exact Newton stall on the CDR-like problem (benchmarks/results/exact_hessian)?  Runs the exact
Steihaug trust region of ``exact_vs_gn.py`` (seed 0, 600 work units), prints the last iterations (radius, ρ,
acceptance), then checks the exact Hessian at the final iterate: the gradient's Taylor remainder for halving
steps (second order if the product is right) and the curvature along the gradient, exact vs Gauss-Newton.

Usage: ``python benchmarks/exact_vs_gn_stall_check.py`` (about a minute).
"""
import os
import sys

import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import exact_vs_gn as ev
from meganet import optimizers as opt
obj, model, data, x0 = ev._objective("cdr", 0, "exact")
res = opt.minimize_trust_region_steihaug(obj, x0, max_iter=100000, gtol=1e-14, max_work_units=600, cg_max_iter=20)
h = res.history
print(res.status, res.nit, 'f', res.fun, 'radius', res.info.get('radius') if res.info else None)
cols = h.columns
print(cols)
for k in range(max(0, len(h) - 8), len(h)):
    print({c: h[c][k] for c in cols if c in ('iter', 'f', 'grad_norm', 'radius', 'rho', 'accepted', 'cg_info', 'cg_iter')})
x = res.x
f, st = obj.value(x)
g = obj.gradient(x, st)
rng = np.random.default_rng(1)
v = rng.standard_normal(x.shape); v *= np.linalg.norm(x) / np.linalg.norm(v) * 1e-2
Hv = obj.hessian_matvec(x, v, st)
def grad_at(h):
    f2, s2 = obj.value(x + h * v); return obj.gradient(x + h * v, s2)
for hh in (1.0, 0.5, 0.25, 0.125, 0.0625):
    e0 = np.linalg.norm(grad_at(hh) - g); e1 = np.linalg.norm(grad_at(hh) - g - hh * Hv)
    print('h', hh, 'E0', e0, 'E1', e1)
# curvature along gradient and random
print('gHg/|g|^2', g @ obj.hessian_matvec(x, g, st) / (g @ g), '|g|', np.linalg.norm(g))
objGN, _, _, _ = ev._objective("cdr", 0, "gauss_newton")
fg, sg = objGN.value(x)
print('GN gHg/|g|^2', g @ objGN.hessian_matvec(x, g, sg) / (g @ g))
