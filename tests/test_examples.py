"""The scripts in ``examples/`` write only under their output folder.

Every example runs in a subprocess at a small size, in a temporary working
directory, with its output option pointing into that directory; nothing else
may appear there (a clone of the repository must not collect untracked
files).  The figure-1 verdicts of the Lemma 1 check (stable / marginal /
unstable) are tested on their own.
"""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from meganet.stability import forward_euler_stable

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: example -> (extra arguments for a small run, files expected in the output folder)
RUNS = {
    "stability_figure1": ([], ["stability_figure1.png"]),
    "stability_figure2": (["--depths", "50", "100"], ["stability_figure2.png"]),
    "reproduce_2017_toys": (["--levels", "4", "8", "--outer-iter", "1", "--problems", "ellipses", "--networks",
                             "verlet"], ["toys.md", "toys.jsonl", "figure3.png"]),
    # the image reproductions on synthetic IDX files ({fashion}: a folder the test writes, 120 + 40 images)
    "reproduce_2017_mnist_table1": (["--data", "fashion-mnist", "--folder", "{fashion}", "--n-train", "40",
                                     "--n-val", "20", "--outer", "1", "--levels", "2", "--nets", "antisym"],
                                    ["table1_fashion-mnist.md", "table1_fashion-mnist.jsonl"]),
    "reproduce_jmiv_table1": (["--data", "fashion-mnist", "--folder", "{fashion}", "--arch", "hamiltonian",
                               "--channels", "2", "4", "--epochs", "1", "--n-train", "40", "--n-val", "20",
                               "--quiet"], ["fashion-mnist.md", "fashion-mnist.jsonl"]),
    "peters_alpha_sweep": (["--size", "16", "--alphas", "0", "1e-3", "--seeds", "0", "--max-iter", "3"],
                           ["alpha_sweep.md", "alpha_sweep.jsonl", "miou_vs_alpha.png", "maps.png"]),
    # weak labels from tags, on the synthetic IDX files read as MNIST (digits 0 and 1: 24 images)
    "pathak_weak_labels": (["--data-folder", "{fashion}", "--n-train", "20", "--n-test", "10", "--epochs", "2",
                            "--outer", "2", "--digits", "2"],
                           ["weak_labels.md", "weak_labels.jsonl", "maps.png", "alternating_history.png"]),
    # the training examples at a tiny size (a few seconds); --out is the report folder itself
    "train_peaks": (["--n-train", "64", "--max-iter", "2", "--levels", "1", "--steps", "4"],
                    ["summary.json", "convergence.png"]),
    "train_swiss_roll": (["--n-train", "64", "--max-iter", "2", "--levels", "1", "--steps", "4"],
                         ["summary.json", "convergence.png"]),
    "train_ellipses": (["--n-train", "64", "--max-iter", "2", "--levels", "1", "--steps", "4"],
                       ["summary.json", "convergence.png"]),
}


def _env():
    env = dict(os.environ, MPLBACKEND="Agg", OMP_WAIT_POLICY="PASSIVE", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONSTARTUP", None)
    return env


def _run(name, args, cwd):
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in pathlib.Path(folder).rglob("*") if p.is_file())


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_example_is_covered():
    scripts = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(RUNS), "add new examples to RUNS in tests/test_examples.py"


@pytest.fixture(scope="module")
def fake_fashion(tmp_path_factory):
    """Four gzipped IDX files in Fashion-MNIST's layout: 120 training and 40 test images of 28×28."""
    import gzip

    folder = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 120), ("t10k", 40)):
        y = (np.arange(n) % 10).astype(np.uint8)
        X = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i in range(n):  # a class-dependent bright bar, so the classes are learnable
            X[i, 2 + 2 * y[i]:4 + 2 * y[i], 4:24] = 250
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(np.array([2051, n, 28, 28], dtype=">i4").tobytes() + X.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(np.array([2049, n], dtype=">i4").tobytes() + y.tobytes())
    return folder


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_writes_only_its_output_folder(name, tmp_path, request):
    pytest.importorskip("matplotlib")
    args, expected = RUNS[name]
    if "{fashion}" in args:
        folder = str(request.getfixturevalue("fake_fashion"))
        args = [folder if a == "{fashion}" else a for a in args]
    out = tmp_path / "out" / "sub"  # a nested folder that does not exist yet
    stdout = _run(name, [*args, "--out", str(pathlib.Path("out") / "sub")], cwd=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"out"}, _files(tmp_path)
    assert all(f.startswith(os.path.join("out", "sub") + os.sep) for f in _files(tmp_path)), _files(tmp_path)
    for f in expected:
        assert (out / f).is_file(), (f, _files(tmp_path))
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out.resolve()) in stdout  # the script says where the output went


@pytest.mark.parametrize("name", ["stability_figure1", "stability_figure2"])
def test_figure_default_output_is_git_ignored(name, tmp_path):
    pytest.importorskip("matplotlib")
    args, expected = RUNS[name]
    stdout = _run(name, args, cwd=tmp_path)
    default = pathlib.Path("runs") / "examples"
    assert _files(tmp_path) == [str(default / f) for f in expected]
    assert str((tmp_path / default / expected[0]).resolve()) in stdout
    if shutil.which("git") and (ROOT / ".git").exists():
        rel = str(default / expected[0])
        check = subprocess.run(["git", "check-ignore", "-q", rel], cwd=ROOT)
        assert check.returncode == 0, f"{rel} is not covered by .gitignore"


# ------------------------------------------------------------- figure 1: the Lemma 1 verdicts
@pytest.fixture(scope="module")
def fig1():
    return _load("stability_figure1")


def test_figure1_label_marginal_for_imaginary_spectrum(fig1):
    """K₀ (λ = ±i), T = 5, N = 500: |1 + hλ| = √(1 + h²) fails Lemma 1, but only by 5e-5 per step."""
    h, n = 0.01, 500
    euler = forward_euler_stable(np.array([1j, -1j]), h)
    assert not euler  # the check itself fails for every h > 0 ...
    growth = fig1.euler_growth(euler.amplification, n)
    assert growth == pytest.approx((1 + h**2) ** (n / 2), rel=1e-12)
    assert growth == pytest.approx(math.exp(n * h * h / 2), rel=1e-4)  # ≈ exp(T h ρ²/2) = 1.0253
    verdict, detail = fig1.euler_label(euler, n)
    assert verdict == "marginal"  # ... but the growth over the whole run is 2.5 %
    assert "5.0e-05" in detail and "growth 1.025" in detail and "N = 500" in detail


def test_figure1_label_unstable_and_stable(fig1):
    unstable = fig1.euler_label(forward_euler_stable(np.array([2.0, 2.0]), 0.01), 500)  # K₊
    assert unstable[0] == "unstable" and "2e+04" in unstable[1]  # 1.02^500
    assert fig1.euler_label(forward_euler_stable(np.array([-2.0, -2.0]), 0.01), 500)[0] == "stable"  # K₋
    # the same imaginary spectrum at h = 0.1 over 5000 steps (Figure 2's Euler contrast)
    # grows by (1 + h²)^2500 ≈ e^24.9: unstable
    verdict, detail = fig1.euler_label(forward_euler_stable(np.array([1j, -1j]), 0.1), 5000)
    assert verdict == "unstable" and "growth 6.36e+10" in detail
    assert fig1.euler_growth(1.5, 10**6) == math.inf  # no overflow error


def test_figure1_run_labels(fig1):
    res = fig1.run()  # Example 1: N = 10, h = 0.1
    assert {k: v["euler_label"][0] for k, v in res.items()} == {"K+": "unstable", "K-": "stable", "K0": "marginal"}


def test_jmiv_second_order_on_a_subset(tmp_path, fake_fashion):
    """``--second-order N``: projected Gauss-Newton-PCG on N images next to SGD with the same work units."""
    pytest.importorskip("matplotlib")
    stdout = _run("reproduce_jmiv_table1", ["--data", "fashion-mnist", "--folder", str(fake_fashion), "--arch",
                                             "parabolic", "--channels", "2", "4", "--second-order", "30", "--n-val",
                                             "20", "--gn-iter", "2", "--gn-cg", "3", "--out", "out"], cwd=tmp_path)
    md = (tmp_path / "out" / "fashion-mnist_second_order.md").read_text()
    assert "| Parabolic |" in md and "2 iterations" in md
    import json

    (row,) = [json.loads(x) for x in (tmp_path / "out" / "fashion-mnist_second_order.jsonl").read_text().splitlines()]
    assert row["gn_iterations"] <= 2 and row["sgd_epochs"] == max(1, round(row["gn_work_units"] / 2))
    assert 0.0 <= row["gn_test_accuracy"] <= 1.0 and str((tmp_path / "out").resolve()) in stdout


def test_jmiv_reads_user_supplied_cifar_and_stl_binary(tmp_path):
    """``--data cifar10`` / ``stl10`` read the binary versions from the folder (synthetic files here)."""
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    for name, n in [(f"data_batch_{i}.bin", 8) for i in range(1, 6)] + [("test_batch.bin", 6)]:
        rec = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], axis=1)
        (cifar / name).write_bytes(rec.astype(np.uint8).tobytes())
    stl = tmp_path / "stl"
    stl.mkdir()
    for split, n in (("train", 30), ("test", 6)):
        (stl / f"{split}_X.bin").write_bytes(rng.integers(0, 256, (n, 3 * 96 * 96)).astype(np.uint8).tobytes())
        (stl / f"{split}_y.bin").write_bytes(rng.integers(1, 11, n).astype(np.uint8).tobytes())
    for data, folder, n_val in (("cifar10", cifar, 8), ("stl10", stl, 6)):
        _run("reproduce_jmiv_table1", ["--data", data, "--folder", str(folder), "--arch", "hamiltonian", "--channels",
                                       "2", "2", "2", "4", "--epochs", "1", "--n-val", str(n_val), "--quiet",
                                       "--out", "out"], cwd=tmp_path)
        md = (tmp_path / "out" / f"{data}.md").read_text()
        assert f"paper, {data}" in md and "| Hamiltonian |" in md
