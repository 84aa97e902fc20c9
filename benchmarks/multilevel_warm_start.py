"""Multilevel warm start on peaks (the CLI default network): validation accuracy just before and just after
each prolongation, with the classifier carried over (REFIT=0) or re-fitted (REFIT=1, the default of
train_multilevel).  Settings of ``python -m meganet train`` (antisymmetric ResNet, width 16, T = 5, levels
8 -> 16 -> 32, Gauss-Newton-CG, alpha = 1e-3, weight decay 1e-4, seed 0) with NTRAIN training points and ITERS
iterations per level.  Results: examples/results/haber_ruthotto_2017/warm_start.md.

    NTRAIN=5000 ITERS=100 REFIT=0 python benchmarks/multilevel_warm_start.py
"""
import sys, os, numpy as np
from meganet.cli import TrainConfig, _make_data, _objective
from meganet.report import build_model, model_spec, Model
from meganet.training import train_multilevel, time_stepping_blocks
from meganet import optimizers as opt
iters = int(os.environ.get("ITERS", 40)); n_train = int(os.environ.get("NTRAIN", 2000)); refit = os.environ.get("REFIT", "1") == "1"
cfg = TrainConfig(n_train=n_train, max_iter=iters, seed=0).resolved()
data = _make_data(cfg)
spec = model_spec(network=cfg.network, opening=cfg.opening, n_inputs=2, width=cfg.width, n_steps=8,
                  final_time=cfg.final_time, gamma=cfg.gamma, loss="softmax", n_outputs=data.n_classes)
model0 = build_model(spec); rng = np.random.default_rng(cfg.seed)
theta0 = model0.network.init_theta(rng=rng); w0 = model0.init_w(rng=rng)
def mk(net):
    N = time_stepping_blocks(net)[0].n_steps
    return _objective(cfg, Model(spec=dict(spec, n_steps=N), network=net, loss=model0.loss), data, rng=rng)
ml = train_multilevel(mk, model0.network, np.concatenate([theta0, w0]), levels=[8, 16, 32], solver=opt.minimize_newton_cg,
                      solver_options=dict(max_iter=iters, cg_max_iter=20, gtol=1e-8), validation=(data.Y_val, data.C_val),
                      refit_classifier=refit, verbose=False)
for L in ml.levels:
    t = L.transfer
    if t: print(f"n_train={n_train} iters={iters} refit={refit} {t['from_n_steps']}->{L.n_steps}: acc {t['validation_before']['accuracy']:.4f} -> {t['validation_after']['accuracy']:.4f} -> refit {t['validation_after_refit'] and t['validation_after_refit']['accuracy']}; obj {t['objective_before']:.4f} -> {t['objective_after']:.4f} -> {t['objective_after_refit']}")
print("final", ml.levels[-1].validation["accuracy"])
