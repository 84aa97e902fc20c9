"""Faults around a training run (issue 9): nothing outside the report folder is touched, a finished
run is never lost, every message names the cause.

Faults are injected for real where the operating system allows it (signals sent to a subprocess,
a file where a folder should be, a killed process) and by patching where it does not (a read-only
file system and a full disk cannot be made without privileges: the tests run as root in CI, and
root ignores permission bits).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import meganet.report as report
from meganet import _folders, cli
from meganet.cli import main
from meganet.losses import SoftmaxCrossEntropy
from meganet.report import ReportError, build_model, load_run, model_spec, save_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n-train", "120", "--steps", "4", "--levels", "2", "--width", "4", "--max-iter", "3", "--cg-iter", "5",
        "--quiet", "--no-plots"]

# A driver that runs ``meganet train`` in a subprocess and injects a fault at a precise moment:
# FAULT=SIGTERM|SIGINT|SIGHUP at the FAULT_AT-th loss evaluation (a real signal, sent to itself),
# SAVE=SIGINT|SIGTERM|SIGKILL right after history.csv was written into the partial folder.
DRIVER = r"""
import os, signal, sys
from meganet import cli, report
from meganet.losses import SoftmaxCrossEntropy

# the signals as in an interactive terminal: a parent that ignores them (nohup, a background job of a
# non-interactive shell) is inherited, and meganet deliberately leaves ignored signals ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
if os.environ.get("IGNORE"):  # ... unless the test says which one the parent ignores
    signal.signal(getattr(signal, os.environ["IGNORE"]), signal.SIG_IGN)
fault, at, save = os.environ.get("FAULT"), int(os.environ.get("FAULT_AT", "0")), os.environ.get("SAVE")
original = SoftmaxCrossEntropy._pointwise
calls = {"n": 0}

def pointwise(self, Z, T):
    calls["n"] += 1
    if fault and calls["n"] == at:
        os.kill(os.getpid(), getattr(signal, fault))
    return original(self, Z, T)

SoftmaxCrossEntropy._pointwise = pointwise
if save:
    write_csv = report._write_csv

    def csv(path, columns):
        write_csv(path, columns)
        os.kill(os.getpid(), getattr(signal, save))

    report._write_csv = csv
sys.exit(cli.main(sys.argv[1:]))
"""


def _env(tmp_path, **extra):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_WAIT_POLICY="PASSIVE", MEGANET_FALLBACK_DIR=str(tmp_path / "fallback"))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _drive(tmp_path, argv, timeout=120, **faults):
    return subprocess.run([sys.executable, "-c", DRIVER, "train"] + argv, capture_output=True, text=True,
                          env=_env(tmp_path, **faults), cwd=tmp_path, timeout=timeout)


def _summary(path):
    with open(os.path.join(path, "summary.json")) as fh:
        return json.load(fh)


def _snapshot(folder):
    """Every path under ``folder`` with its size and modification time."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            out[os.path.relpath(p, folder)] = (st.st_size, st.st_mtime_ns)
    return out


def _hidden(folder):
    return sorted(p for p in os.listdir(folder) if p.startswith("."))


def _complete(path):
    """The report at ``path`` is complete: loadable, with summary and history of every level."""
    run = load_run(path)
    assert not run.problems, run.problems
    assert set(run.summary["files"]) <= set(os.listdir(path))
    return run


# ------------------------------------------------------------------ defect 1: what --overwrite may replace
def test_empty_out_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", ""] + TINY)
    assert exc.value.code == 2 and "--out: expected a folder name" in capsys.readouterr().err


@pytest.mark.parametrize("out", [".", "", "notarun"])
def test_overwrite_never_deletes_a_folder_that_is_not_a_report(tmp_path, monkeypatch, capsys, out):
    work = tmp_path / "work"
    (work / "notarun").mkdir(parents=True)
    (work / "notarun" / "thesis.tex").write_text("years of work")
    (work / "data.csv").write_text("1,2,3")
    monkeypatch.chdir(work)
    before = _snapshot(work)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", out, "--overwrite"] + TINY)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert ("expected a folder name" if out == "" else "refusing to replace") in err
    assert _snapshot(work) == before


def test_overwrite_through_the_api_is_guarded_too(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x.txt").write_text("keep")
    cfg = cli.TrainConfig(n_train=40, steps=2, levels=1, width=4, max_iter=1, quiet=True, plots=False,
                          out=str(tmp_path / "mine"), overwrite=True)
    with pytest.raises(FileExistsError, match="not a meganet report folder"):
        cli.train(cfg)
    assert os.listdir(tmp_path / "mine") == ["x.txt"]


# ------------------------------------------------------------------ defect 2: parallel runs
def test_three_parallel_default_runs_give_three_complete_reports(tmp_path):
    argv = [sys.executable, "-m", "meganet", "train", "--seed", "0"] + TINY
    procs = [subprocess.Popen(argv, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [p.communicate(timeout=180) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0, 0], [r[1] for r in results]
    names = sorted(os.listdir(tmp_path / "runs"))
    assert len(names) == 3 and len(set(names)) == 3, names
    for n in names:
        _complete(tmp_path / "runs" / n)


def test_folder_appearing_during_training_does_not_discard_the_run(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    m = build_model(model_spec(n_steps=2, width=4))
    original = SoftmaxCrossEntropy._pointwise

    def pointwise(self, Z, T):  # another process finishes a run into the same folder meanwhile
        if not out.exists():
            save_run(out, model=m, theta=m.network.init_theta(rng=0), w=m.init_w(rng=0), plots=False)
        return original(self, Z, T)

    monkeypatch.setattr(SoftmaxCrossEntropy, "_pointwise", pointwise)
    code = main(["train", "--out", str(out)] + TINY)
    err = capsys.readouterr().err
    assert code == 3 and "already exists" in err and str(tmp_path / "run-1") in err
    assert load_run(out).model.block.n_steps == 2  # the other run is intact
    run = _complete(tmp_path / "run-1")
    assert run.summary["status"] == "max_iter" and run.model.block.n_steps == 4


# ------------------------------------------------------------------ defect 3: failures at save time
def test_parent_is_a_file_report_goes_to_the_named_fallback(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code = main(["train", "--out", str(tmp_path / "afile" / "run")] + TINY + ["--seed", "3"])
    err = capsys.readouterr().err
    assert code == 3
    assert "is a file, not a folder" in err.split("\n")[0]  # said before training
    fallback = os.environ.get("MEGANET_FALLBACK_DIR") or _folders.fallback_root()
    lines = [line for line in err.splitlines() if "report: " in line]
    path = lines[-1].split("report: ")[1]
    assert path.startswith(fallback) and os.path.basename(path).startswith("run")
    assert _complete(path).summary["config"]["seed"] == 3
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("fault", ["read-only", "disk-full"])
def test_unwritable_target_report_goes_to_the_named_fallback(tmp_path, monkeypatch, capsys, fault):
    monkeypatch.setenv("MEGANET_FALLBACK_DIR", str(tmp_path / "fallback"))
    target = tmp_path / "ro"
    target.mkdir()
    if fault == "read-only":  # EROFS for anything created under ro/
        mkdir = os.mkdir

        def ro_mkdir(path, *a, **k):
            if os.path.abspath(path).startswith(str(target)):
                raise OSError(errno.EROFS, "Read-only file system", path)
            return mkdir(path, *a, **k)

        monkeypatch.setattr(os, "mkdir", ro_mkdir)
    else:  # ENOSPC while the parameters are written
        savez = np.savez

        def full(file, *a, **k):
            if str(file).startswith(str(target)):
                raise OSError(errno.ENOSPC, "No space left on device", str(file))
            return savez(file, *a, **k)

        monkeypatch.setattr(np, "savez", full)
    code = main(["train", "--out", str(target / "run")] + TINY)
    err = capsys.readouterr().err
    assert code == 3
    assert ("Read-only file system" if fault == "read-only" else "No space left on device") in err
    path = [line for line in err.splitlines() if "report: " in line][-1].split("report: ")[1]
    assert path.startswith(str(tmp_path / "fallback"))
    assert _complete(path).summary["status"] == "max_iter"
    assert os.listdir(target) == []  # nothing half-written left in the target


def test_second_run_on_the_same_out_is_refused_before_training(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--out", out] + TINY) == 0
    before = _snapshot(out)
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", out] + TINY)
    assert exc.value.code == 2 and "already exists" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 5 and _snapshot(out) == before


# ------------------------------------------------------------------ defects 4 and 6: errors and interrupts keep the work done
@pytest.mark.parametrize("exc", [MemoryError("out of memory in a kernel"), OSError(5, "Input/output error"),
                                 RuntimeError("numba kernel failed")])
def test_any_error_during_training_still_writes_the_work_done(tmp_path, monkeypatch, capsys, exc):
    out = str(tmp_path / "run")
    original = SoftmaxCrossEntropy._pointwise
    calls = {"n": 0, "fail_at": None}

    def pointwise(self, Z, T):
        calls["n"] += 1
        if calls["fail_at"] is not None and calls["n"] == calls["fail_at"]:
            raise exc
        return original(self, Z, T)

    monkeypatch.setattr(SoftmaxCrossEntropy, "_pointwise", pointwise)
    import meganet.training.multilevel as multilevel

    warm_start = multilevel._warm_start
    level2 = {}

    def marked(*args, **kwargs):  # where level 2 starts: after the warm start (prolongation, classifier re-fit)
        result = warm_start(*args, **kwargs)
        level2.setdefault("start", calls["n"])
        return result

    monkeypatch.setattr(multilevel, "_warm_start", marked)
    # count the evaluations of a clean run, then fail inside level 2 (the third loss evaluation after its start)
    assert main(["train", "--out", str(tmp_path / "clean")] + TINY) == 0
    assert level2["start"] + 3 < calls["n"]
    calls["fail_at"], calls["n"] = level2["start"] + 3, 0
    code = main(["train", "--out", out] + TINY)
    err = capsys.readouterr().err
    assert code == 1
    assert type(exc).__name__ in err and str(exc) in err
    s = _summary(out)
    assert s["status"] == "error" and not s["success"] and s["failed"] and str(exc) in s["message"]
    assert [lv["level"] for lv in s["level_results"]] == [1, 2]
    assert s["level_results"][0]["status"] == "max_iter" and s["level_results"][1]["status"] == "error"
    run = _complete(out)
    assert np.all(np.isfinite(run.theta))
    h = run.history
    assert h["level"].count(1) == 4 and h["level"].count(2) >= 1  # level 1 complete, level 2 started
    assert s["iterations"] == 3 + s["level_results"][1]["nit"]


def test_interrupt_report_keeps_the_history_of_all_levels(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    original = SoftmaxCrossEntropy._pointwise
    calls = {"n": 0}

    def pointwise(self, Z, T):
        calls["n"] += 1
        if calls["n"] == 25:  # inside level 2 (see test_signal_during_training_writes_the_report)
            raise KeyboardInterrupt
        return original(self, Z, T)

    monkeypatch.setattr(SoftmaxCrossEntropy, "_pointwise", pointwise)
    assert main(["train", "--out", out] + TINY) == 130
    s = _summary(out)
    assert s["status"] == "interrupted" and "Ctrl-C" in s["message"]
    assert s["iterations"] >= 3 and len(s["level_results"]) == 2  # defect 6: was 0 and []
    h = load_run(out).history
    assert h["level"].count(1) == 4 and h["level"][-1] == 2
    assert all(b >= a for a, b in zip(h["work_units"], h["work_units"][1:]))


# ------------------------------------------------------------------ defect 5: signals, for real
@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGINT", 130), ("SIGHUP", 129)])
def test_signal_during_training_writes_the_report(tmp_path, sig, code):
    # TINY makes 31 loss evaluations: level 1 (1-10), the warm start with its validation metrics (11-22),
    # level 2 (23-29), the final metrics; the signal arrives inside level 2
    r = _drive(tmp_path, ["--out", "run"] + TINY, FAULT=sig, FAULT_AT=25)
    assert r.returncode == code, r.stderr
    s = _summary(tmp_path / "run")
    assert s["status"] == "interrupted" and sig in s["message"] and len(s["level_results"]) == 2
    _complete(tmp_path / "run")
    assert _hidden(tmp_path) == []


def test_an_ignored_signal_stays_ignored(tmp_path):
    """``nohup meganet train ...`` ignores SIGHUP: the run goes on to the end (exit 0) instead of stopping."""
    r = _drive(tmp_path, ["--out", "run"] + TINY, FAULT="SIGHUP", FAULT_AT=25, IGNORE="SIGHUP")
    assert r.returncode == 0, r.stderr
    assert _summary(tmp_path / "run")["status"] != "interrupted"
    _complete(tmp_path / "run")


@pytest.mark.parametrize("first, second", [(None, "SIGINT"), ("SIGINT", "SIGINT"), ("SIGTERM", "SIGTERM")])
def test_signal_during_save_is_held_until_the_report_is_complete(tmp_path, first, second):
    faults = dict(SAVE=second) if first is None else dict(FAULT=first, FAULT_AT=12, SAVE=second)
    r = _drive(tmp_path, ["--out", "run"] + TINY, **faults)
    assert r.returncode == 128 + getattr(signal, first or second), r.stderr
    assert "while the report is written" in r.stderr
    s = _summary(tmp_path / "run")
    assert s["status"] == ("interrupted" if first else "max_iter")
    _complete(tmp_path / "run")
    assert _hidden(tmp_path) == []


def test_sigterm_from_outside_during_the_first_level(tmp_path):
    argv = [sys.executable, "-m", "meganet", "train", "--out", "run", "--n-train", "400", "--steps", "8", "--levels",
            "2", "--width", "6", "--max-iter", "200", "--no-plots"]
    p = subprocess.Popen(argv, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    for line in p.stdout:  # the solver's table: wait until iteration 2 is printed (iteration 1 is then recorded)
        if line.split()[:1] == ["2"]:
            break
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    s = _summary(tmp_path / "run")
    assert s["status"] == "interrupted" and "SIGTERM" in s["message"] and s["iterations"] >= 1
    _complete(tmp_path / "run")


# ------------------------------------------------------------------ defect 7: SIGKILL while saving
def test_sigkill_during_save_leaves_the_previous_state_and_is_cleaned_next_time(tmp_path):
    r = _drive(tmp_path, ["--out", "run"] + TINY, SAVE="SIGKILL")
    assert r.returncode == -signal.SIGKILL
    assert not (tmp_path / "run").exists()
    (partial,) = _hidden(tmp_path)
    assert partial.startswith(".run.partial-")
    with pytest.raises(ReportError, match="partial folder of an interrupted save"):
        load_run(tmp_path / partial)
    # the next run into the same parent removes it (its process is gone), and only it
    (tmp_path / ".mine").mkdir()
    (tmp_path / ".other.partial-0123abcd").mkdir()  # no marker of ours: never touched
    assert main(["train", "--out", str(tmp_path / "run")] + TINY) == 0
    assert _hidden(tmp_path) == [".mine", ".other.partial-0123abcd"]
    _complete(tmp_path / "run")


def test_sigkill_between_the_renames_of_an_overwrite_restores_the_previous_report(tmp_path):
    m = build_model(model_spec(n_steps=2, width=4))
    theta = m.network.init_theta(rng=0)
    save_run(tmp_path / "rep", model=m, theta=theta, w=m.init_w(rng=0), plots=False)
    # what a process killed after moving the old report aside leaves behind
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    moved = tmp_path / ".rep.old-89abcdef"
    os.rename(tmp_path / "rep", moved)
    (moved / _folders.OLD_MARKER).write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename}))
    done = _folders.recover_stale(str(tmp_path))
    assert len(done) == 1 and "restored the previous report" in done[0]
    np.testing.assert_array_equal(load_run(tmp_path / "rep").theta, theta)
    assert _hidden(tmp_path) == []


# ------------------------------------------------------------------ defect 8: damaged report folders
def _saved(tmp_path):
    m = build_model(model_spec(n_steps=2, width=4))
    rng = np.random.default_rng(0)
    return save_run(tmp_path / "r", model=m, theta=m.network.init_theta(rng=rng), w=m.init_w(rng=rng),
                    history={"f": [1.0, 0.5], "work_units": [0, 4]}, summary={"status": "max_iter"}, plots=False)


@pytest.mark.parametrize("name", ["summary.json", "history.json"])
@pytest.mark.parametrize("garbage", [b"{not json", b"\xff\xfe\x00garbage", b"[1, 2]"])
def test_damaged_records_do_not_block_the_model(tmp_path, name, garbage):
    path = _saved(tmp_path)
    with open(os.path.join(path, name), "wb") as fh:
        fh.write(garbage)
    with pytest.warns(UserWarning, match=name):
        run = load_run(path)
    assert len(run.problems) == 1 and name in run.problems[0]
    assert run.predict(np.zeros((3, 2))).shape == (3,)


def _rewrite_params(path, **arrays):
    np.savez(os.path.join(path, "params.npz"), **arrays)


@pytest.mark.parametrize("damage, message", [
    ("random", "params.npz: not a .npz archive"),
    ("truncated", "params.npz"),
    ("missing-w", r"params.npz: lacks the array\(s\) \['w'\]"),
    ("int", "theta has dtype int64; expected float32 or float64"),
    ("complex", "theta has dtype complex128"),
    ("nan", "theta holds NaN or Inf"),
    ("shape", r"theta has shape \(3,\)"),
    ("object", "theta has dtype object"),
])
def test_damaged_params_give_a_clear_error_naming_the_file(tmp_path, damage, message):
    path = _saved(tmp_path)
    pfile = os.path.join(path, "params.npz")
    with np.load(pfile) as z:
        theta, w = z["theta"], z["w"]
    if damage == "random":
        open(pfile, "wb").write(np.random.default_rng(0).bytes(4096))
    elif damage == "truncated":
        raw = open(pfile, "rb").read()
        open(pfile, "wb").write(raw[: len(raw) // 2])
    elif damage == "missing-w":
        _rewrite_params(path, theta=theta)
    elif damage == "int":
        _rewrite_params(path, theta=theta.astype(np.int64), w=w)
    elif damage == "complex":
        _rewrite_params(path, theta=theta.astype(complex), w=w)
    elif damage == "nan":
        theta = theta.copy()
        theta[3] = np.nan
        _rewrite_params(path, theta=theta, w=w)
    elif damage == "shape":
        _rewrite_params(path, theta=theta[:3], w=w)
    elif damage == "object":
        np.savez(pfile, theta=np.array([1, "a"], dtype=object), w=w, allow_pickle=True)
    with pytest.raises(ReportError, match=message) as exc:
        load_run(path)
    assert "allow_pickle" not in str(exc.value) and pfile in str(exc.value)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("spec"), "model.json: lacks the model specification"),
    (lambda m: m["spec"].update(n_steps=10**5), "n_steps = 100000 exceeds the bound"),
    (lambda m: m["spec"].update(width=100_000), "about .* parameters, more than max_params"),
    (lambda m: m["spec"].update(network="cnn"), "model.json: invalid model specification: network must be one of"),
    (lambda m: m["spec"].update(width="8"), "model.json: invalid model specification: width must be an integer"),
    (lambda m: m.update(format="other"), "format 'other', expected 'meganet-run'"),
])
def test_damaged_model_json_is_refused_before_allocating(tmp_path, edit, message):
    path = _saved(tmp_path)
    mfile = os.path.join(path, "model.json")
    meta = json.load(open(mfile))
    edit(meta)
    json.dump(meta, open(mfile, "w"))
    t0 = time.perf_counter()
    with pytest.raises(ReportError, match=message):
        load_run(path)
    assert time.perf_counter() - t0 < 2.0  # nothing large was built


def test_model_json_not_text_names_the_file(tmp_path):
    path = _saved(tmp_path)
    open(os.path.join(path, "model.json"), "wb").write(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ReportError, match="model.json: not UTF-8 text"):
        load_run(path)


def test_compressed_bomb_is_refused_from_the_header(tmp_path):
    path = _saved(tmp_path)
    pfile = os.path.join(path, "params.npz")
    with np.load(pfile) as z:
        w = z["w"]
    np.savez_compressed(pfile, theta=np.zeros(50_000_000), w=w)  # 400 MB of zeros in a small file
    assert os.path.getsize(pfile) < 2_000_000
    with pytest.raises(ReportError, match=r"theta has shape \(50000000,\)"):
        load_run(path)


def test_data_npz_damage_names_the_file(tmp_path):
    m = build_model(model_spec(n_steps=2, width=4))
    from meganet.data import peaks

    path = save_run(tmp_path / "r", model=m, theta=m.network.init_theta(rng=0), w=m.init_w(rng=0), plots=False,
                    data=peaks(40, seed=0))
    with zipfile.ZipFile(os.path.join(path, "data.npz"), "w") as zf:
        zf.writestr("Y_train.npy", b"junk")
    with pytest.raises(ReportError, match="data.npz"):
        load_run(path).load_data()


# ------------------------------------------------------------------ defect 10: tiny data
@pytest.mark.parametrize("data, n", [("peaks", 1), ("peaks", 3), ("ellipses", 2), ("ellipses", 3),
                                     ("swiss_roll", 1)])
def test_too_few_examples_is_an_argument_error(data, n, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", data, "--n-train", str(n)] + TINY[2:])
    assert exc.value.code == 2
    assert f"n_train = {n} is too small for {data}" in capsys.readouterr().err


@pytest.mark.parametrize("data, n", [("peaks", 4), ("ellipses", 4), ("swiss_roll", 2)])
def test_smallest_allowed_training_set_runs(tmp_path, data, n):
    out = str(tmp_path / "run")
    assert main(["train", "--data", data, "--n-train", str(n), "--out", out] + TINY[2:]) == 0
    assert _summary(out)["n_val"] >= 1


def test_bogus_option_prints_the_train_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--bogus"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("usage: meganet train") and "--bogus" in err


def test_failure_while_assembling_the_records_still_saves_the_parameters(tmp_path, monkeypatch, capsys):
    def broken(*a, **k):
        raise RuntimeError("history assembly bug")

    monkeypatch.setattr(cli, "_collect", broken)
    out = str(tmp_path / "run")
    assert main(["train", "--out", out] + TINY) == 1
    assert "history assembly bug" in capsys.readouterr().err
    run = load_run(out)
    assert run.summary["status"] == "error" and np.all(np.isfinite(run.theta))
