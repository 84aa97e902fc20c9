"""meganet.plotting: the figures hold what was asked for, PNGs are written, a
missing matplotlib gives an install hint."""

import sys

import numpy as np
import pytest

import meganet.plotting as mp

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _halfplane_data(n=200, seed=0):
    Y = np.random.default_rng(seed).uniform(-1, 1, (n, 2))
    return Y, (Y[:, 0] > 0).astype(int) + 2 * (Y[:, 1] > 0).astype(int)


def _quadrant(P):
    return (P[:, 0] > 0).astype(int) + 2 * (P[:, 1] > 0).astype(int)


def test_decision_regions_colors_the_predicted_classes():
    Y, C = _halfplane_data()
    fig = mp.decision_regions(_quadrant, Y, C, bounds=(-1, 1, -1, 1), resolution=41)
    ax = fig.axes[0]
    mesh = ax.collections[0]
    g = np.linspace(-1, 1, 41)
    XX, YY = np.meshgrid(g, g)
    expected = _quadrant(np.stack([XX.ravel(), YY.ravel()], 1))
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).ravel(), expected)
    # the scatter carries the labels of the data
    np.testing.assert_array_equal(np.asarray(ax.collections[1].get_array()), C)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"class {k}" for k in range(4)]


def test_decision_regions_writes_png(tmp_path):
    Y, C = _halfplane_data()
    out = mp.decision_regions(_quadrant, Y, C, path=tmp_path / "d.png", title="quadrants")
    data = (tmp_path / "d.png").read_bytes()
    assert out == str(tmp_path / "d.png") and data[:8] == PNG_SIGNATURE and len(data) > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_decision_regions_validates_input():
    Y, C = _halfplane_data()
    with pytest.raises(ValueError, match=r"Y must have shape \(n_examples, 2\)"):
        mp.decision_regions(_quadrant, np.zeros((5, 3)), C[:5])
    with pytest.raises(ValueError, match="C must be an integer array"):
        mp.decision_regions(_quadrant, Y, C.astype(float))
    with pytest.raises(ValueError, match="bounds must be"):
        mp.decision_regions(_quadrant, Y, C, bounds=(1, -1, 0, 1))


def test_convergence_plot(tmp_path):
    hist = {"f": [1.0, 0.5, 0.2, 0.1, 0.05], "work_units": [0, 3, 6, 10, 14],
            "val_accuracy": [0.2, 0.5, 0.7, 0.8, 0.9], "level": [0, 0, 1, 1, 2]}
    fig = mp.convergence(hist)
    ax_loss_work = fig.axes[1]
    x, y = ax_loss_work.lines[0].get_data()
    np.testing.assert_array_equal(x, hist["work_units"])
    np.testing.assert_array_equal(y, hist["f"])
    # dashed separators at the starts of levels 1 and 2 (work units 6 and 14)
    seps = sorted({float(l.get_xdata()[0]) for l in ax_loss_work.lines[1:]})
    assert seps == [6.0, 14.0]
    assert ax_loss_work.get_yscale() == "log"
    path = mp.convergence(hist, path=tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_SIGNATURE and path == str(tmp_path / "c.png")
    with pytest.raises(KeyError, match="work_units"):
        mp.convergence({"f": [1.0]})


def test_compare_runs(tmp_path):
    curves = {"a": {"work_units": [0, 1, 2], "time": [0, .1, .2], "loss": [1, .5, .1], "val_accuracy": [.1, .5, .9]},
              "b": {"work_units": [0, 2, 4], "time": [0, .2, .4], "loss": [1, .8, .6]}}
    fig = mp.compare_runs(curves, loss_target=0.2)
    labels = [l.get_label() for l in fig.axes[0].lines]
    assert labels == ["a", "b", "target"]
    np.testing.assert_array_equal(fig.axes[1].lines[1].get_xdata(), [0, .2, .4])  # b vs time
    mp.compare_runs(curves, path=tmp_path / "b5.png")
    assert (tmp_path / "b5.png").read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError, match="at least one run"):
        mp.compare_runs({})


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make every ``import matplotlib...`` fail, as on a machine without it."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_missing_matplotlib_gives_install_hint(no_matplotlib, tmp_path):
    Y, C = _halfplane_data()
    with pytest.raises(ImportError, match=r"pip install 'meganet\[plot\]'"):
        mp.decision_regions(_quadrant, Y, C, path=tmp_path / "d.png")
    with pytest.raises(ImportError, match="matplotlib"):
        mp.convergence({"f": [1.0], "work_units": [0]})
    with pytest.raises(ImportError, match="meganet\\[plot\\]"):
        mp.compare_runs({"a": {"work_units": [0], "time": [0], "loss": [1]}})
    assert not (tmp_path / "d.png").exists()
