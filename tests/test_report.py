"""meganet.report: model specifications, atomic report folders, loading a run back."""

import json
import os

import numpy as np
import pytest

import meganet.report as report
from meganet.data import peaks
from meganet.report import NETWORKS, OPENINGS, build_model, load_run, model_spec, save_run, unique_path


def _model(**kw):
    spec = dict(network="antisym", n_steps=4, width=6, n_outputs=5)
    spec.update(kw)
    return build_model(model_spec(**spec))


def _weights(model, seed=0):
    rng = np.random.default_rng(seed)
    return model.network.init_theta(rng=rng), model.init_w(rng=rng)


def _leftovers(folder):
    return sorted(p for p in os.listdir(folder) if p.startswith("."))


# ------------------------------------------------------------------ specifications
def test_model_spec_validates_with_clear_messages():
    with pytest.raises(ValueError, match=r"network must be one of .*'antisym'.*got 'antisymm'"):
        model_spec(network="antisymm")
    with pytest.raises(ValueError, match="width must be >= n_inputs"):
        model_spec(opening="pad", width=1)
    with pytest.raises(ValueError, match="n_outputs must be >= 2"):
        model_spec(n_outputs=1)
    with pytest.raises(ValueError, match="lacks the key"):
        build_model({"network": "antisym"})


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("opening", OPENINGS)
def test_build_model_shapes(network, opening):
    m = _model(network=network, opening=opening)
    Y = np.random.default_rng(1).uniform(-3, 3, (7, 2))
    F = m.features(Y)
    assert F.shape == (7, 6 if opening == "pad" else 2) and F.shape[1:] == m.network.shape_in
    if opening == "pad":  # zero padding keeps the input in the first two features
        np.testing.assert_array_equal(F[:, :2], Y)
        np.testing.assert_array_equal(F[:, 2:], 0.0)
    theta, w = _weights(m)
    out = m.output(theta, Y)
    assert out.shape == (7, 6) and np.all(np.isfinite(out))
    pred = m.predict(theta, w, Y)
    # prediction = arg-max of the classifier logits W F + mu
    W = m.loss.matrix(w)
    np.testing.assert_array_equal(pred, np.argmax(out @ W.T + w[-5:], axis=1))
    assert m.block.n_steps == 4


def test_verlet_width_split_and_float32():
    m = _model(network="verlet", width=5, dtype="float32")
    assert (m.block.n_y, m.block.n_z) == (3, 2)
    theta, w = m.network.init_theta(rng=0, dtype=np.float32), m.init_w(rng=0)
    assert m.output(theta, np.zeros((3, 2))).dtype == np.float32 and w.dtype == np.float32


# ------------------------------------------------------------------ save / load
def test_save_and_load_round_trip(tmp_path):
    m = _model()
    theta, w = _weights(m)
    data = peaks(100, seed=3)
    hist = {"level": [0, 0, 1], "iter": [0, 1, 0], "f": [1.0, 0.5, float("nan")], "work_units": [0, 4, 8],
            "val_accuracy": [0.2, 0.4, None]}
    summary = {"status": "max_iter", "final_loss": float("inf"), "val_accuracy": 0.4}
    path = save_run(tmp_path / "run", model=m, theta=theta, w=w, history=hist, summary=summary, data=data)
    assert path == str(tmp_path / "run")
    files = sorted(os.listdir(path))
    assert files == sorted(["model.json", "params.npz", "history.csv", "history.json", "data.npz",
                            "decision_regions.png", "convergence.png", "summary.json"])
    assert _leftovers(tmp_path) == []
    # strict JSON: non-finite numbers became null
    with open(os.path.join(path, "summary.json")) as fh:
        s = json.loads(fh.read(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert s["final_loss"] is None and s["status"] == "max_iter" and s["plots"] == "written"
    assert "convergence.png" in s["files"]
    with open(os.path.join(path, "history.csv")) as fh:
        lines = fh.read().splitlines()
    assert lines[0] == "level,iter,f,work_units,val_accuracy" and lines[2] == "0,1,0.5,4,0.4"
    assert lines[3].split(",")[2] == "nan" and lines[3].endswith(",")

    run = load_run(path)
    np.testing.assert_array_equal(run.theta, theta)
    np.testing.assert_array_equal(run.w, w)
    assert run.spec == m.spec and run.summary["val_accuracy"] == 0.4 and run.history["iter"] == [0, 1, 0]
    np.testing.assert_array_equal(run.predict(data.Y_val), m.predict(theta, w, data.Y_val))
    assert run.accuracy(data.Y_val, data.C_val) == pytest.approx(np.mean(m.predict(theta, w, data.Y_val) == data.C_val))
    d = run.load_data()
    np.testing.assert_array_equal(d.Y_train, data.Y_train)
    assert d.name == "peaks" and d.n_classes == 5


def test_save_run_checks_shapes(tmp_path):
    m = _model()
    theta, w = _weights(m)
    with pytest.raises(ValueError, match="theta must have shape"):
        save_run(tmp_path / "r", model=m, theta=theta[:-1], w=w)
    with pytest.raises(ValueError, match="w must have shape"):
        save_run(tmp_path / "r", model=m, theta=theta, w=w[:-1])
    assert not (tmp_path / "r").exists()


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("exc", [_Boom, KeyboardInterrupt])
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, exc):
    m = _model()
    theta, w = _weights(m)
    seen = {}

    def failing_csv(path, columns):
        # model.json and params.npz are already in the temporary folder at this point
        folder = os.path.dirname(path)
        seen["files"] = sorted(os.listdir(folder))
        seen["folder"] = folder
        raise exc("disk full")

    monkeypatch.setattr(report, "_write_csv", failing_csv)
    with pytest.raises(exc):
        save_run(tmp_path / "run", model=m, theta=theta, w=w, history={"f": [1.0], "work_units": [0]}, plots=False)
    assert [f for f in seen["files"] if not f.startswith(".")] == ["model.json", "params.npz"]
    assert os.path.dirname(seen["folder"]) == str(tmp_path)
    assert not (tmp_path / "run").exists() and not os.path.exists(seen["folder"])
    assert os.listdir(tmp_path) == []


def test_existing_folder_is_never_clobbered_silently(tmp_path, monkeypatch):
    m = _model()
    theta, w = _weights(m)
    old = tmp_path / "run"
    old.mkdir()
    (old / "sentinel.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_run(old, model=m, theta=theta, w=w, plots=False)
    # a folder that is not a report is never replaced, even with overwrite=True (issue 9, defect 1)
    with pytest.raises(FileExistsError, match="not a meganet report folder"):
        save_run(old, model=m, theta=theta, w=w, plots=False, overwrite=True)
    assert sorted(os.listdir(old)) == ["sentinel.txt"] and _leftovers(tmp_path) == []
    # a report folder: overwrite=True but the write fails -> the old report stays as it was
    save_run(old.with_name("rep"), model=m, theta=theta, w=w, plots=False)
    rep = tmp_path / "rep"
    before = {f: (rep / f).read_bytes() for f in os.listdir(rep)}
    monkeypatch.setattr(report, "_write_json", lambda path, obj: (_ for _ in ()).throw(_Boom("no")))
    with pytest.raises(_Boom):
        save_run(rep, model=m, theta=2 * theta, w=w, plots=False, overwrite=True)
    assert {f: (rep / f).read_bytes() for f in os.listdir(rep)} == before and _leftovers(tmp_path) == []
    monkeypatch.undo()
    # overwrite=True and the write succeeds: replaced, nothing left over
    save_run(rep, model=m, theta=2 * theta, w=w, plots=False, overwrite=True)
    np.testing.assert_array_equal(load_run(rep).theta, 2 * theta)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("extra", ["notes.txt", "subdir/"])
def test_report_with_foreign_files_is_not_replaced(tmp_path, extra):
    m = _model()
    theta, w = _weights(m)
    rep = save_run(tmp_path / "rep", model=m, theta=theta, w=w, plots=False)
    if extra.endswith("/"):
        os.mkdir(os.path.join(rep, extra))
    else:
        open(os.path.join(rep, extra), "w").write("mine")
    with pytest.raises(FileExistsError, match="holds files that are not part of a report"):
        save_run(rep, model=m, theta=theta, w=w, plots=False, overwrite=True)
    assert os.path.exists(os.path.join(rep, extra))


def test_current_directory_and_links_are_never_replaced(tmp_path, monkeypatch):
    m = _model()
    theta, w = _weights(m)
    rep = save_run(tmp_path / "rep", model=m, theta=theta, w=w, plots=False)
    monkeypatch.chdir(rep)
    with pytest.raises(FileExistsError, match="current directory"):
        save_run(rep, model=m, theta=theta, w=w, plots=False, overwrite=True)
    monkeypatch.chdir(tmp_path)
    os.symlink(rep, tmp_path / "link")
    with pytest.raises(FileExistsError, match="symbolic link"):
        save_run(tmp_path / "link", model=m, theta=theta, w=w, plots=False, overwrite=True)
    assert os.path.islink(tmp_path / "link") and load_run(rep).theta.shape == theta.shape


def test_report_folder_mode_follows_umask(tmp_path):
    m = _model()
    theta, w = _weights(m)
    old = os.umask(0o022)
    try:
        rep = save_run(tmp_path / "rep", model=m, theta=theta, w=w, plots=False)
    finally:
        os.umask(old)
    assert os.stat(rep).st_mode & 0o777 == 0o755  # tempfile.mkdtemp gave 0o700


def test_unique_path(tmp_path):
    p = str(tmp_path / "run")
    assert unique_path(p) == p
    os.mkdir(p)
    assert unique_path(p) == p + "-1"
    os.mkdir(p + "-1")
    assert unique_path(p) == p + "-2"


def test_load_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a meganet report folder: model.json is missing"):
        load_run(tmp_path)
    m = _model()
    theta, w = _weights(m)
    path = save_run(tmp_path / "r", model=m, theta=theta, w=w, plots=False)
    meta = json.load(open(os.path.join(path, "model.json")))
    meta["format_version"] = 99
    json.dump(meta, open(os.path.join(path, "model.json"), "w"))
    with pytest.raises(ValueError, match="format_version 99"):
        load_run(path)
    meta["format_version"] = report.FORMAT_VERSION
    meta["spec"]["n_steps"] = 8
    json.dump(meta, open(os.path.join(path, "model.json"), "w"))
    with pytest.raises(ValueError, match=r"params.npz: theta has shape \(186,\), but the model in model.json needs"):
        load_run(path)


def test_plots_skipped_without_matplotlib(tmp_path, monkeypatch):
    import sys

    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    m = _model()
    theta, w = _weights(m)
    path = save_run(tmp_path / "r", model=m, theta=theta, w=w, history={"f": [1.0], "work_units": [0]},
                    data=peaks(50, seed=0))
    s = json.load(open(os.path.join(path, "summary.json")))
    assert s["plots"].startswith("skipped") and "meganet[plot]" in s["plots"]
    assert not any(f.endswith(".png") for f in os.listdir(path))
