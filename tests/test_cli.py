"""The command line ``meganet train``: option parsing, a complete loadable report,
failure paths (NaN, interruption), no silent overwrite."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from meganet import cli
from meganet.cli import DEFAULTS, SOLVERS, TrainConfig, build_parser, main, train
from meganet.losses import SoftmaxCrossEntropy
from meganet.report import load_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n-train", "120", "--steps", "4", "--levels", "2", "--width", "4", "--max-iter", "3", "--cg-iter", "5"]


def _summary(path):
    with open(os.path.join(path, "summary.json")) as fh:
        return json.load(fh)


def _history(path):
    with open(os.path.join(path, "history.json")) as fh:
        return json.load(fh)


# ------------------------------------------------------------------ parsing
def test_defaults_are_the_documented_setting():
    args = build_parser().parse_args(["train"])
    cfg = cli._config_from_args(args)
    assert (cfg.data, cfg.network, cfg.solver) == ("peaks", "antisym", "gn")
    assert (cfg.final_time, cfg.steps, cfg.levels, cfg.width) == (5.0, 32, 3, 16)
    assert cli._level_steps(cfg) == [8, 16, 32]
    assert cfg.out is None and not cfg.quiet and cfg.plots
    # every option has a resolved value
    assert all(v is not None for k, v in vars(cfg).items() if k not in ("out", "lr"))  # lr: sgd/adam only
    assert TrainConfig(data="swiss_roll").resolved().n_train == DEFAULTS["swiss_roll"]["n_train"]


@pytest.mark.parametrize("argv, message", [
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--data", "mnist"], "invalid choice: 'mnist'"),
    (["train", "--solver", "newton"], "invalid choice: 'newton'"),
    (["train", "--network", "antisymmetric"], "invalid choice: 'antisymmetric'"),
    (["train", "--steps", "0"], "expected a positive integer, got '0'"),
    (["train", "--steps", "eight"], "expected a positive integer, got 'eight'"),
    (["train", "--final-time", "-1"], "expected a positive finite number, got '-1'"),
    (["train", "--final-time", "nan"], "expected a positive finite number, got 'nan'"),
    (["train", "--hessian-fraction", "1.5"], r"expected a number in \(0, 1\], got '1.5'"),
    (["train", "--seed", "-3"], "expected a non-negative integer, got '-3'"),
    (["train", "--steps", "6", "--levels", "3"], r"--steps 6 must be divisible by 2\^\(levels-1\) = 4"),
    (["fit"], "invalid choice: 'fit'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_options_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: meganet" in err
    import re

    assert re.search(message, err), err


def test_existing_out_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(out)] + TINY)
    assert exc.value.code == 2 and "already exists" in capsys.readouterr().err
    assert os.listdir(out) == ["keep.txt"]
    # --overwrite never replaces a folder that is not a meganet report (issue 9, defect 1)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(out), "--overwrite"] + TINY)
    assert exc.value.code == 2 and "not a meganet report folder" in capsys.readouterr().err
    assert os.listdir(out) == ["keep.txt"]
    # a report folder is replaced
    rep = str(tmp_path / "rep")
    assert main(["train", "--out", rep, "--quiet", "--no-plots"] + TINY) == 0
    theta_before = load_run(rep).theta
    assert main(["train", "--out", rep, "--overwrite", "--quiet", "--no-plots", "--seed", "1"] + TINY) == 0
    assert not np.array_equal(load_run(rep).theta, theta_before)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


# ------------------------------------------------------------------ a complete run
def test_tiny_run_writes_complete_loadable_report(tmp_path, capsys):
    out = str(tmp_path / "run")
    code = main(["train", "--out", out] + TINY)
    assert code == 0
    printed = capsys.readouterr().out
    assert "== Gauss-Newton-CG (Armijo line search) (n = " in printed and " iter" in printed and "cg stop" in printed
    assert "level 2/2: 4 steps" in printed and f"report: {out}" in printed
    # progress on every long phase (issue 9, defect 16): data, each level, the report
    assert "generating the peaks data" in printed and f"writing the report to {out}" in printed
    assert sorted(os.listdir(out)) == sorted(["model.json", "params.npz", "history.csv", "history.json", "data.npz",
                                             "decision_regions.png", "convergence.png", "summary.json"])
    s = _summary(out)
    for key in ("final_loss", "train_accuracy", "val_accuracy", "wall_time_s", "work_units", "status", "message"):
        assert key in s
    # max_iter: the budget ran out before convergence -> not "success", but not failed either (issue 9, defect 17)
    assert s["status"] == "max_iter" and not s["success"] and not s["failed"]
    assert s["levels"] == [2, 4] and s["n_steps"] == 4
    assert s["plots"] == "written"

    run = load_run(out)
    data = run.load_data()
    assert run.network.n_theta == s["n_theta"] and run.model.block.n_steps == 4
    # the loaded run reproduces the recorded accuracies and the final history row
    assert run.accuracy(data.Y_val, data.C_val) == pytest.approx(s["val_accuracy"], abs=1e-12)
    assert run.accuracy(data.Y_train, data.C_train) == pytest.approx(s["train_accuracy"], abs=1e-12)
    h = _history(out)
    assert h["val_accuracy"][-1] == pytest.approx(s["val_accuracy"], abs=1e-12)
    # predictions = arg-max of the saved classifier applied to the saved network
    Z = run.output(data.Y_val)
    logits = Z @ run.loss.matrix(run.w).T + run.w[-data.n_classes:]
    np.testing.assert_array_equal(run.predict(data.Y_val), logits.argmax(axis=1))

    # history: both levels, cumulative work units, validation metric on every row, decreasing objective
    assert h["level"].count(1) == 4 and h["level"].count(2) == 4  # initial row + 3 iterations per level
    assert all(b >= a for a, b in zip(h["work_units"], h["work_units"][1:]))
    assert h["work_units"][-1] == pytest.approx(s["work_units"])
    assert all(v is not None for v in h["val_accuracy"])
    lv0 = [f for f, l in zip(h["f"], h["level"]) if l == 1]
    assert lv0[-1] < lv0[0]
    with open(os.path.join(out, "history.csv")) as fh:
        header = fh.readline().strip().split(",")
    assert header[:4] == ["level", "n_steps", "iter", "f"] and "val_accuracy" in header


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_solver_decreases_the_loss(solver, tmp_path):
    argv = ["train", "--solver", solver, "--out", str(tmp_path / solver), "--quiet", "--no-plots",
            "--n-train", "80", "--steps", "2", "--levels", "1", "--width", "4", "--max-iter", "3", "--cg-iter", "4"]
    assert main(argv) == 0
    s, h = _summary(tmp_path / solver), _history(tmp_path / solver)
    assert s["solver"] == solver and not s["failed"]
    assert s["success"] == (s["status"] in ("converged_gtol", "converged_ftol", "completed"))
    assert h["f"][-1] < h["f"][0]
    run = load_run(tmp_path / solver)
    assert run.w.shape == (run.loss.n_w,)


def test_default_folder_name_is_unique(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--quiet", "--no-plots", "--data", "swiss_roll", "--max-iter", "1", "--n-train", "40",
            "--steps", "2", "--levels", "1", "--width", "2"]
    assert main(argv) == 0 and main(argv) == 0
    names = sorted(os.listdir(tmp_path / "runs"))
    assert len(names) == 2 and all(n.startswith("swiss_roll-antisym-gn-") for n in names)


# ------------------------------------------------------------------ failures
def _poison_loss(monkeypatch, after, exc=None):
    """Make the softmax loss return NaN from its ``after``-th evaluation on (or raise ``exc`` once, there)."""
    original = SoftmaxCrossEntropy._pointwise
    calls = {"n": 0}

    def pointwise(self, Z, T):
        calls["n"] += 1
        ell, g, curv = original(self, Z, T)
        if calls["n"] > after:
            if exc is not None:
                if calls["n"] == after + 1:
                    raise exc
                return ell, g, curv
            ell = ell * np.nan
        return ell, g, curv

    monkeypatch.setattr(SoftmaxCrossEntropy, "_pointwise", pointwise)
    return calls


def test_nan_loss_gives_nonzero_exit_and_report_of_last_good_iterate(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    # evaluations: 1 for the objective's label check, then the solver's; NaN from the 8th on
    _poison_loss(monkeypatch, after=8)
    code = main(["train", "--out", out, "--quiet"] + TINY)
    err = capsys.readouterr().err
    assert code == 1
    assert "run failed (non_finite)" in err and "NaN/Inf" in err
    s = _summary(out)
    assert s["status"] == "non_finite" and not s["success"] and "NaN/Inf" in s["message"]
    run = load_run(out)
    assert np.all(np.isfinite(run.theta)) and np.all(np.isfinite(run.w))
    h = _history(out)
    assert all(np.isfinite(f) for f in h["f"] if f is not None)


def test_interrupt_saves_last_iterate(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    _poison_loss(monkeypatch, after=6, exc=KeyboardInterrupt())  # inside the first level
    code = main(["train", "--out", out, "--quiet", "--no-plots"] + TINY)
    assert code == 130
    s = _summary(out)
    assert s["status"] == "interrupted" and "Ctrl-C" in s["message"]
    run = load_run(out)
    assert np.all(np.isfinite(run.theta))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_train_api_returns_outcome(tmp_path):
    o = train(TrainConfig(data="ellipses", n_train=100, steps=2, levels=1, width=4, max_iter=2, quiet=True,
                          plots=False, out=str(tmp_path / "e")))
    assert o.exit_code == 0 and o.path == str(tmp_path / "e")
    run = load_run(o.path)
    np.testing.assert_array_equal(run.theta, o.theta)
    assert o.summary["data"] == "ellipses" and o.summary["n_classes"] == 2


def test_python_dash_m(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    bad = subprocess.run([sys.executable, "-m", "meganet", "train", "--solver", "sgdd"], capture_output=True,
                         text=True, env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'sgdd'" in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "meganet", "train", "--out", "r", "--quiet", "--no-plots"] + TINY,
                        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "validation accuracy" in ok.stdout and (tmp_path / "r" / "summary.json").exists()


@pytest.mark.parametrize("solver, precond, header", [
    ("gn", False, "== Gauss-Newton-CG (Armijo line search) (n = "),
    ("gn", True, "== Gauss-Newton-PCG (Armijo line search) (n = "),
    ("gnvpro", False, "== GNvpro: Gauss-Newton-Krylov trust region (Lanczos) on the reduced objective (n = "),
    ("vpro_gncg", False, "== Gauss-Newton-CG (Armijo line search) on the reduced (variable projection) objective (n = "),
    ("trn", False, "== trust-region Gauss-Newton-Krylov (Lanczos) (n = "),
    ("steihaug", True, "== trust-region Gauss-Newton with Steihaug-PCG (n = "),
])
def test_tables_name_the_solver_that_runs(tmp_path, capsys, solver, precond, header):
    # issue 9, defects 17 and 18: one level numbering, the table names the method and its preconditioner,
    # and a second-order method is never told to use a second-order method
    argv = ["train", "--solver", solver, "--out", str(tmp_path / "r"), "--no-plots"] + TINY
    assert main(argv + (["--precond"] if precond else [])) == 0
    out = capsys.readouterr().out
    assert out.count(header) == 2 and "=== level 1/2: 2 steps" in out and "=== level 2/2: 4 steps" in out
    assert ("preconditioner = the problem's (regularizer)" in out) == precond
    assert "level 0" not in out and "-- level" not in out
    s = _summary(tmp_path / "r")
    assert s["solver_name"] == header[3:-6]
    assert "second-order method" not in s["message"]
    assert all("second-order method" not in lv["message"] for lv in s["level_results"])


# ------------------------------------------------------------------ PDE surrogates (issue 10)
def test_cdr_with_gnvpro_end_to_end(tmp_path, monkeypatch):
    """``meganet train --data cdr`` (the GNvpro default) writes a loadable report with the relative-error
    table of Meganet.m's EVP scripts (train / validation / test) and the predicted-vs-true plot."""
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MEGANET_DATA_DIR", str(tmp_path / "data"))
    out = str(tmp_path / "run")
    code = main(["train", "--data", "cdr", "--n-train", "12", "--steps", "2", "--levels", "2", "--cg-iter", "4",
                 "--max-work-units", "30", "--out", out, "--quiet"])
    assert code == 0
    s = _summary(out)
    assert s["solver"] == "gnvpro" and s["network"] == "antisym_rk4" and s["n_outputs"] == 72
    assert s["config"]["max_work_units"] == 30.0
    for lev in s["level_results"]:  # the budget is per level; a level ends within one iteration of it
        assert lev["status"] in ("max_work_units", "converged_gtol", "converged_ftol")
        assert lev["work_units"] <= 30 + 2 + 2 * 4
    table = s["relative_errors"]
    assert set(table) == {"train", "val", "test"} and table["test"]["n"] == 6 and table["val"]["n"] == 6
    run = load_run(out)
    data = run.load_data()
    P = run.predict(data.Y_val)
    e = np.linalg.norm(P - data.C_val, axis=1) / np.linalg.norm(data.C_val, axis=1)
    assert table["val"]["mean"] == pytest.approx(float(e.mean()), rel=1e-10)
    assert s["val_rel_error"] == pytest.approx(float(e.mean()), rel=1e-10)
    assert s["val_accuracy"] is None
    hist = _history(out)
    assert "val_rel_error" in hist and "val_accuracy" not in hist
    assert "predicted_vs_true.png" in s["files"] and os.path.isfile(os.path.join(out, "predicted_vs_true.png"))


def test_surrogate_defaults_are_the_gnvpro_setting():
    cfg = TrainConfig(data="dcr").resolved()
    assert (cfg.network, cfg.solver, cfg.width, cfg.final_time, cfg.gamma) == ("antisym_rk4", "gnvpro", 16, 1.0, 1e-4)
    assert cli._level_steps(cfg) == [2, 4, 8] and cfg.max_work_units == 400.0 and cfg.hessian_fraction == 1.0
    assert TrainConfig(data="cdr").resolved().max_work_units == 200.0
    assert TrainConfig(data="cdr", solver="sgd").resolved().lr == DEFAULTS["solver"]["sgd"]["lr"]
    with pytest.raises(ValueError, match="max_work_units must be a positive number"):
        TrainConfig(max_work_units=0).resolved()


def test_summary_reports_the_warm_start_of_every_level(tmp_path):
    """summary.json's level_results carry the validation accuracy just before and just after each prolongation
    (carried-over and re-fitted classifier)."""
    import json

    from meganet.cli import TrainConfig, train

    out = train(TrainConfig(data="peaks", n_train=120, max_iter=3, levels=2, steps=8, quiet=True,
                            out=str(tmp_path / "run")))
    levels = json.loads((tmp_path / "run" / "summary.json").read_text())["level_results"]
    assert out.path == str(tmp_path / "run")
    assert levels[0]["transfer"] is None
    t = levels[1]["transfer"]
    assert t["from_n_steps"] == 4
    for k in ("validation_before", "validation_after", "validation_after_refit"):
        assert 0.0 <= t[k]["accuracy"] <= 1.0
    assert t["objective_after_refit"] <= t["objective_after"]
