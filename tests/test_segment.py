"""``meganet.training.alpha_sweep`` (Peters 2020 output regularization, α chosen on validation pixels) and the
``meganet segment`` command: rows and maps, one shared initial point, the best-α rule, input validation, the
report folder, --overwrite safety, Indian Pines from user-supplied files."""

import json
import math
import os

import numpy as np
import pytest

from meganet.cli import indian_pines_scene, main
from meganet.data import change_detection_scene
from meganet.metrics import boundary_length, segmentation_scores
from meganet.training import alpha_sweep, best_alpha, sweep_summary

TINY = dict(width=4, n_layers=2)


@pytest.fixture(scope="module")
def scene():
    return change_detection_scene((12, 12), n_bands=3, n_train=20, n_val=10, seed=0)


def _sweep(sc, alphas=(0.0, 1e-2), **kw):
    kw = dict(TINY, **{"max_iter": 3, **kw})
    return alpha_sweep(sc.X, sc.labels, sc.train_mask, sc.val_mask, list(alphas), n_classes=2,
                       ground_truth=sc.labels, **kw)


def test_rows_scores_and_best_alpha(scene):
    res = _sweep(scene, alphas=(1e-2, 0.0, 1e-2))  # unsorted, duplicated
    assert res.alphas == [0.0, 1e-2]
    assert [r["alpha"] for r in res.rows] == [0.0, 1e-2]
    assert res.maps.shape == (2, 12, 12) and res.maps.dtype == np.int64
    for a, r, m in zip(res.alphas, res.rows, res.maps):
        # the scores are those of the returned map, computed independently
        val = segmentation_scores(scene.labels, m[None], 2, mask=scene.val_mask)
        full = segmentation_scores(scene.labels, m[None], 2)
        train = segmentation_scores(scene.labels, m[None], 2, mask=scene.train_mask)
        assert r["val_miou"] == pytest.approx(val.miou)
        assert r["full_miou"] == pytest.approx(full.miou)
        assert r["full_iou"] == pytest.approx(full.iou.tolist())
        assert r["train_pixel_accuracy"] == pytest.approx(train.pixel_accuracy)
        assert r["boundary_ratio"] == pytest.approx(boundary_length(m) / boundary_length(scene.labels[0]))
        assert 1 <= r["iterations"] <= 3 and r["seconds"] >= 0
        assert r["status"] in ("max_iter", "converged_gtol", "converged_rtol", "converged_ftol")
        np.testing.assert_array_equal(res.map(a), m)
    expected = min(res.alphas, key=lambda a: (-res.row(a)["val_miou"], a))
    assert res.best_alpha == expected
    assert res.status == "completed" and res.n_classes == 2
    assert res.config["n_train"] == 20 and res.config["n_val"] == 10


def test_every_alpha_starts_from_the_same_x0(scene):
    from meganet.networks import segmentation_network
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.objectives import NetworkObjective

    res = _sweep(scene, alphas=(0.0, 1e-3, 1.0, 100.0), max_iter=0, seed=4)
    for m in res.maps[1:]:  # no iteration: every α predicts with x0
        np.testing.assert_array_equal(m, res.maps[0])
    net = segmentation_network(scene.X.shape[1], (12, 12), **TINY)
    obj = NetworkObjective(net, SoftmaxCrossEntropy(net.shape_out, 2, per_pixel=True), scene.X, scene.labels,
                           mask=scene.train_mask.astype(scene.X.dtype))
    np.testing.assert_array_equal(res.x0, obj.init_x(rng=4))
    # and training α = 0 inside a sweep gives what it gives alone (x0 is not consumed by other α values)
    a = _sweep(scene, alphas=(0.0, 1.0), seed=4)
    b = _sweep(scene, alphas=(0.0,), seed=4)
    np.testing.assert_array_equal(a.map(0.0), b.map(0.0))
    assert a.row(0.0)["val_miou"] == b.row(0.0)["val_miou"]
    # a huge α changes the trained map: R smooths it to a constant map (the regularizer is active)
    big = _sweep(scene, alphas=(0.0, 1e3), seed=4, max_iter=5)
    assert not np.array_equal(big.maps[0], big.maps[1])
    assert len(np.unique(big.map(1e3))) == 1


def test_best_alpha_rule():
    rows = [dict(alpha=1e-2, val_miou=0.7), dict(alpha=0.0, val_miou=0.5), dict(alpha=1e-3, val_miou=0.7),
            dict(alpha=1.0, val_miou=float("nan")), dict(alpha=3.0, val_miou=None)]
    assert best_alpha(rows) == 1e-3  # tie between 1e-3 and 1e-2: the smaller
    assert best_alpha([dict(alpha=0.0, val_miou=0.2), dict(alpha=1.0, val_miou=0.1)]) == 0.0
    assert best_alpha([dict(alpha=0.0, val_miou=None), dict(alpha=1.0, val_miou=0.1)]) == 1.0


def test_sweep_summary_statistics():
    rows = [dict(seed=s, alpha=a, val_miou=v, full_miou=f, train_pixel_accuracy=1.0)
            for s, a, v, f in [(0, 0.0, 0.5, 0.4), (0, 1e-3, 0.8, 0.7), (1, 0.0, 0.6, 0.5), (1, 1e-3, 0.6, 0.9)]]
    s = sweep_summary(rows)
    p0, p1 = s["per_alpha"]
    assert p0["val_miou"] == dict(mean=pytest.approx(0.55), min=0.5, max=0.6, n=2)
    assert p1["full_miou"]["mean"] == pytest.approx(0.8) and p1["full_miou"]["min"] == 0.7
    assert [p["best_alpha"] for p in s["per_seed"]] == [1e-3, 0.0]  # seed 1: a tie, the smaller α
    assert s["best_alpha_of_mean"] == 1e-3


def test_ignore_label_leaves_pixels_out_of_the_full_map_scores(scene):
    gt = scene.labels.copy()
    gt[0, :6] = -1  # the top half has no ground truth
    res = alpha_sweep(scene.X, scene.labels, scene.train_mask, scene.val_mask, [0.0], n_classes=2, ground_truth=gt,
                      ignore_label=-1, max_iter=2, **TINY)
    m = res.maps[0][None]
    full = segmentation_scores(scene.labels, m, 2, mask=gt >= 0)
    assert res.rows[0]["full_miou"] == pytest.approx(full.miou)
    assert full.n_pixels == 72
    assert res.rows[0]["boundary_ratio"] == pytest.approx(
        boundary_length(m, mask=gt >= 0).sum() / boundary_length(scene.labels, mask=gt >= 0).sum())
    no_gt = alpha_sweep(scene.X, scene.labels, scene.train_mask, scene.val_mask, [0.0], max_iter=0, **TINY)
    assert no_gt.rows[0]["full_miou"] is None and no_gt.rows[0]["boundary_ratio"] is None and no_gt.n_classes == 2


def _bad(scene, **change):
    kw = dict(X=scene.X, labels=scene.labels, train_mask=scene.train_mask, val_mask=scene.val_mask,
              alphas=[0.0, 1e-3], n_classes=2, max_iter=0, **TINY)
    kw.update(change)
    return kw


@pytest.mark.parametrize("change, match", [
    (lambda s: dict(X=s.X[0]), r"X must be one image of shape \(1, C, H, W\)"),
    (lambda s: dict(X=np.where(s.X > 0.5, np.nan, s.X)), "X must be finite"),
    (lambda s: dict(labels=s.labels[:, :6]), r"labels must have shape"),
    (lambda s: dict(labels=s.labels.astype(float)), "labels must be an integer array"),
    (lambda s: dict(train_mask=s.train_mask | s.val_mask), "train_mask and val_mask must be disjoint"),
    (lambda s: dict(train_mask=np.zeros_like(s.train_mask)), "train_mask is empty"),
    (lambda s: dict(val_mask=s.val_mask.astype(int)), "val_mask must be a boolean array"),
    (lambda s: dict(val_mask=s.val_mask[:, :5]), "val_mask must have the labels' shape"),
    (lambda s: dict(alphas=[0.0, -1e-3]), "alphas must be non-negative and finite"),
    (lambda s: dict(alphas=[0.0, math.inf]), "alphas must be non-negative and finite"),
    (lambda s: dict(alphas=[1e-3, 1e-2]), "alphas must contain 0"),
    (lambda s: dict(alphas="abc"), "alphas must be"),
    (lambda s: dict(labels=s.labels * 2), r"labels on the training and validation pixels must lie in 0..1"),
    (lambda s: dict(ground_truth=s.labels + 1), r"ground_truth must lie in 0..1"),
    (lambda s: dict(ground_truth=s.labels[0]), "ground_truth must have shape"),
    (lambda s: dict(ground_truth=np.full_like(s.labels, -1), ignore_label=-1), "ground_truth holds only"),
    (lambda s: dict(ignore_label=0.5, ground_truth=s.labels), "ignore_label must be an integer"),
    (lambda s: dict(n_classes=1), "n_classes"),
    (lambda s: dict(width=5), "width must be even"),
    (lambda s: dict(n_layers=0), "n_layers"),
    (lambda s: dict(max_iter=-1), "max_iter"),
    (lambda s: dict(on="features"), "on"),
    (lambda s: dict(log="yes"), "log must be a callable"),
])
def test_bad_inputs_are_refused_naming_the_parameter(scene, change, match):
    kw = _bad(scene, **change(scene))
    with pytest.raises(ValueError, match=match):
        alpha_sweep(kw.pop("X"), kw.pop("labels"), kw.pop("train_mask"), kw.pop("val_mask"), kw.pop("alphas"), **kw)


# ------------------------------------------------------------------ the command
CLI_TINY = ["--size", "12", "--bands", "3", "--n-train", "20", "--n-val", "10", "--alphas", "1e-2", "0",
            "--seeds", "0", "1", "--max-iter", "2", "--width", "4", "--layers", "2", "--quiet"]
FILES = {"summary.json", "alpha_sweep.jsonl", "alpha_sweep.md", "miou_vs_alpha.png", "maps.png"}


def _read(out):
    with open(out / "summary.json") as fh:
        summary = json.load(fh)
    with open(out / "alpha_sweep.jsonl") as fh:
        rows = [json.loads(line) for line in fh]
    return summary, rows


def test_segment_command_writes_the_report(tmp_path, capsys):
    out = tmp_path / "seg"
    assert main(["segment", *CLI_TINY, "--out", str(out)]) == 0
    assert set(os.listdir(out)) == FILES
    summary, rows = _read(out)
    assert summary["format"] == "meganet-segment" and summary["status"] == "completed" and not summary["failed"]
    assert summary["config"]["alphas"] == [0.0, 0.01] and summary["config"]["seeds"] == [0, 1]
    assert sorted(summary["files"]) == sorted(FILES)
    assert [(r["seed"], r["alpha"]) for r in rows] == [(0, 0.0), (0, 0.01), (1, 0.0), (1, 0.01)]
    for p in summary["best_alpha_per_seed"]:
        mine = [r for r in rows if r["seed"] == p["seed"]]
        assert p["best_alpha"] == best_alpha(mine)
    for p in summary["per_alpha"]:
        vals = [r["val_miou"] for r in rows if r["alpha"] == p["alpha"]]
        full = [r["full_miou"] for r in rows if r["alpha"] == p["alpha"]]
        assert p["val_miou"]["mean"] == pytest.approx(np.mean(vals))
        assert p["val_miou"]["min"] == min(vals) and p["full_miou"]["max"] == max(full)
    assert summary["machine"]["cores"] == os.cpu_count() and summary["wall_time_s"] > 0
    assert summary["n_classes"] == 2 and summary["image_shape"] == [12, 12] and summary["n_channels"] == 6
    md = (out / "alpha_sweep.md").read_text()
    assert "| α | mIoU (val) | whole-map mIoU | boundary length / true | train pixel accuracy |" in md
    assert "| 0.01 |" in md
    assert "completed" in capsys.readouterr().out
    # the same scene and seeds give the same numbers as the library driver
    sc = change_detection_scene((12, 12), n_bands=3, n_train=20, n_val=10, seed=1)
    lib = alpha_sweep(sc.X, sc.labels, sc.train_mask, sc.val_mask, [0.0, 0.01], n_classes=2,
                      ground_truth=sc.labels, max_iter=2, seed=1, **TINY)
    assert [r["val_miou"] for r in rows if r["seed"] == 1] == [r["val_miou"] for r in lib.rows]
    # --no-plots: no PNG, and the summary says so
    out2 = tmp_path / "seg2"
    assert main(["segment", *CLI_TINY, "--no-plots", "--seeds", "0", "--out", str(out2)]) == 0
    assert set(os.listdir(out2)) == FILES - {"miou_vs_alpha.png", "maps.png"}
    assert _read(out2)[0]["plots"] == "not requested"


def test_overwrite_replaces_only_a_segment_report(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as e:
        main(["segment", *CLI_TINY, "--out", str(mine), "--overwrite"])
    assert e.value.code == 2
    assert "not a meganet segment report folder" in capsys.readouterr().err
    assert os.listdir(mine) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    out = tmp_path / "seg"
    assert main(["segment", *CLI_TINY, "--seeds", "0", "--out", str(out)]) == 0
    with pytest.raises(SystemExit) as e:  # exists, no --overwrite
        main(["segment", *CLI_TINY, "--out", str(out)])
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert main(["segment", *CLI_TINY, "--seeds", "3", "--out", str(out), "--overwrite"]) == 0
    assert _read(out)[0]["config"]["seeds"] == [3]
    assert not [e for e in os.listdir(tmp_path) if e.startswith(".")]  # no partial or old folder left
    (out / "extra.bin").write_bytes(b"x")  # a report with a foreign file is not replaced either
    with pytest.raises(SystemExit):
        main(["segment", *CLI_TINY, "--out", str(out), "--overwrite"])
    assert "extra.bin" in capsys.readouterr().err
    assert (out / "extra.bin").exists()


def test_an_interrupted_segment_replacement_is_recovered(tmp_path):
    import subprocess
    import sys

    from meganet import _folders
    from meganet.cli import segment_replace_refusal

    out = tmp_path / "seg"
    assert main(["segment", *CLI_TINY, "--no-plots", "--seeds", "0", "--out", str(out)]) == 0
    assert segment_replace_refusal(out) is None
    assert "not a meganet report folder" in _folders.replace_refusal(out)  # not a training report
    before = (out / "summary.json").read_text()
    # what a process killed after moving the old segment report aside leaves behind
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    moved = tmp_path / ".seg.old-89abcdef"
    os.rename(out, moved)
    (moved / _folders.OLD_MARKER).write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename}))
    # the next run into the same parent moves it back
    assert main(["segment", *CLI_TINY, "--no-plots", "--seeds", "1", "--out", str(tmp_path / "other")]) == 0
    assert (out / "summary.json").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["other", "seg"]


@pytest.mark.parametrize("args, match", [
    (["--alphas", "1e-3", "1e-2"], "contain 0"),
    (["--alphas", "0", "-1"], "non-negative"),
    (["--width", "5"], "width must be even"),
    (["--size", "4"], "size must be >= 8"),
    (["--size", "8", "--n-train", "60", "--n-val", "10"], "exceeds the 64 pixels"),
    (["--seeds", "0", "0"], "seeds must be distinct"),
])
def test_bad_options_exit_2_naming_the_option(tmp_path, capsys, args, match):
    with pytest.raises(SystemExit) as e:
        main(["segment", *args, "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ Indian Pines (user-supplied files)
def _fake_pines(folder, shape=(20, 18), bands=7):
    import scipy.io

    rng = np.random.default_rng(3)
    gt = np.zeros(shape, np.uint8)
    gt[2:18, 1:17] = rng.integers(1, 17, size=(16, 16))  # classes 1..16 in the middle, 0 around
    cube = (rng.integers(1000, 9000, size=shape + (bands,)) + 50 * gt[..., None]).astype(np.uint16)
    d = folder / "indian-pines"
    d.mkdir(parents=True)
    scipy.io.savemat(d / "Indian_pines_corrected.mat", {"indian_pines_corrected": cube})
    scipy.io.savemat(d / "Indian_pines_gt.mat", {"indian_pines_gt": gt})
    return cube, gt


def test_indian_pines_scene_and_command(tmp_path, monkeypatch):
    cube, gt = _fake_pines(tmp_path / "data")
    monkeypatch.setenv("MEGANET_DATA", str(tmp_path / "data"))
    X, classes = indian_pines_scene()
    assert X.shape == (1, 7, 20, 18) and classes.shape == (1, 20, 18)
    np.testing.assert_array_equal(classes[0], gt.astype(int) - 1)
    np.testing.assert_allclose(X[0].mean(axis=(1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(X[0].std(axis=(1, 2)), 1.0)
    b = cube[..., 3].astype(float)
    np.testing.assert_allclose(X[0, 3], (b - b.mean()) / b.std())
    Xc, cc = indian_pines_scene(size=10, bands=3)
    assert Xc.shape == (1, 3, 10, 10)
    np.testing.assert_array_equal(cc[0], gt[5:15, 4:14].astype(int) - 1)  # the central crop
    with pytest.raises(ValueError, match="size = 30 exceeds"):
        indian_pines_scene(size=30)

    out = tmp_path / "pines"
    args = ["segment", "--data", "indian-pines", "--n-train", "40", "--n-val", "20", "--alphas", "0", "1e-2",
            "--seeds", "0", "--max-iter", "2", "--width", "4", "--layers", "2", "--quiet", "--out", str(out)]
    assert main(args) == 0
    summary, rows = _read(out)
    assert summary["n_classes"] == 16 and summary["image_shape"] == [20, 18] and summary["n_channels"] == 7
    assert set(os.listdir(out)) == FILES
    assert all(len(r["full_iou"]) == 16 for r in rows) and all(r["full_miou"] is not None for r in rows)

    from meganet.cli import _indian_pines_masks

    tr, va = _indian_pines_masks(classes, 40, 20, seed=0)
    assert tr.sum() == 40 and va.sum() == 20 and not np.any(tr & va)
    assert np.all(classes[tr | va] >= 0)  # only labelled pixels
    tr2, _ = _indian_pines_masks(classes, 40, 20, seed=1)
    assert not np.array_equal(tr, tr2)
    with pytest.raises(ValueError, match="exceeds the 256 labelled pixels"):
        _indian_pines_masks(classes, 250, 20, seed=0)


def test_indian_pines_missing_files_name_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEGANET_DATA", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as e:
        main(["segment", "--data", "indian-pines", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert os.path.join(str(tmp_path / "empty"), "indian-pines") in err
    assert "meganet data fetch indian-pines" in err and "Indian_pines_gt.mat" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("exc, code, status", [(MemoryError("no room"), 1, "error"),
                                               (KeyboardInterrupt(), 130, "interrupted")])
def test_a_failure_after_the_first_seed_still_writes_its_report(tmp_path, monkeypatch, exc, code, status):
    import meganet.training

    real = meganet.training.alpha_sweep

    def flaky(*a, **kw):
        if kw["seed"] == 1:
            raise exc
        return real(*a, **kw)

    monkeypatch.setattr(meganet.training, "alpha_sweep", flaky)
    out = tmp_path / "seg"
    assert main(["segment", *CLI_TINY, "--out", str(out)]) == code
    summary, rows = _read(out)
    assert summary["status"] == status and summary["failed"]
    assert summary["seeds_done"] == [0] and {r["seed"] for r in rows} == {0}
    if status == "error":
        assert "MemoryError" in summary["message"] and "no room" in summary["message"]
    assert set(os.listdir(out)) == FILES
