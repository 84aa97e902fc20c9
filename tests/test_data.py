"""Synthetic data sets: definitions, balance, determinism, validation."""

import numpy as np
import pytest

from meganet.data import ellipses, one_hot, peaks, peaks_function, swiss_roll


def test_peaks_labels_follow_level_bands():
    ds = peaks(1000, n_classes=5, seed=1)
    Y = np.concatenate([ds.Y_train, ds.Y_val])
    C = np.concatenate([ds.C_train, ds.C_val])
    assert Y.shape == (1000, 2) and np.all(np.abs(Y) <= 3)
    assert np.bincount(C, minlength=5).tolist() == [200] * 5
    t = np.linspace(-3, 3, 256)
    f_all = peaks_function(*np.meshgrid(t, t))
    edges = np.linspace(f_all.min(), f_all.max(), 6)
    f = peaks_function(Y[:, 0], Y[:, 1])
    assert np.all(f >= edges[C] - 1e-12) and np.all(f <= edges[C + 1] + 1e-12)
    assert ds.Y_val.shape[0] == 200
    np.testing.assert_array_equal(peaks(1000, seed=1).Y_train, ds.Y_train)


def test_peaks_function_known_value():
    # peaks(0, 0) = 3e^{-1} - e^{-1}/3
    assert peaks_function(0.0, 0.0) == pytest.approx(3 * np.exp(-1) - np.exp(-1) / 3, rel=1e-15)


def test_swiss_roll_radii():
    ds = swiss_roll(200, seed=0)
    Y = np.concatenate([ds.Y_train, ds.Y_val])
    C = np.concatenate([ds.C_train, ds.C_val])
    r = np.hypot(Y[:, 0], Y[:, 1])
    assert r[C == 0].max() == pytest.approx(1.0) and r[C == 1].min() == pytest.approx(0.2)
    assert ds.n_classes == 2 and ds.Y_train.shape[0] == 100


def test_ellipses_rings():
    ds = ellipses(300, n_classes=3, axes=(1.0, 0.5), seed=2)
    Y = np.concatenate([ds.Y_train, ds.Y_val])
    C = np.concatenate([ds.C_train, ds.C_val])
    rho = np.hypot(Y[:, 0] / 1.0, Y[:, 1] / 0.5)
    width = np.hypot(1, 2) / 3
    assert np.all(np.floor(rho / width).astype(int) == C)
    assert np.bincount(C).tolist() == [100, 100, 100]


def test_one_hot_and_errors():
    np.testing.assert_array_equal(one_hot(np.array([0, 2]), 3), [[1, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 1\], got range \[0, 2\]"):
        one_hot(np.array([0, 2]), 2)
    with pytest.raises(ValueError, match="n_classes must be >= 2, got 1"):
        peaks(100, n_classes=1)
    with pytest.raises(ValueError, match="noise must be non-negative"):
        swiss_roll(10, noise=-1.0)


@pytest.mark.parametrize("make", [lambda: ellipses(2, val_fraction=0.2), lambda: ellipses(3, val_fraction=0.1),
                                  lambda: peaks(5, val_fraction=0.05), lambda: swiss_roll(4, val_fraction=0.9)])
def test_tiny_splits_raise_instead_of_an_empty_set(make):
    # issue 9, defect 10: an empty validation (or training) set ended in ZeroDivisionError later on
    with pytest.raises(ValueError, match="both sets need at least one"):
        make()


def test_no_validation_set_when_asked():
    d = peaks(10, val_fraction=0.0)
    assert d.Y_val.shape == (0, 2) and d.Y_train.shape[0] == 10


def test_swiss_roll_alternate_holdout_is_the_papers_split():
    """H&R 2017 §6.2: 513 points per arm on f₁ = r(cos φ, sin φ), f₂ = (r + 0.2)(cos φ, sin φ); every other
    point along each curve held out for validation."""
    from meganet.data import swiss_roll

    d = swiss_roll(1026, holdout="alternate")
    assert d.Y_train.shape == (514, 2) and d.Y_val.shape == (512, 2)
    assert (d.C_train == 0).sum() == 257 and (d.C_val == 1).sum() == 256
    arm0 = d.Y_train[d.C_train == 0]
    np.testing.assert_allclose(arm0[0], [0.0, 0.0], atol=1e-15)   # r = 0 at φ = 0
    np.testing.assert_allclose(arm0[-1], [1.0, 0.0], atol=1e-12)  # r = 1 at φ = 4π (index 512 is even)
    v0 = d.Y_val[d.C_val == 0][0]  # index 1: r = 1/512, φ = 4π/512
    np.testing.assert_allclose(v0, np.array([np.cos(4 * np.pi / 512), np.sin(4 * np.pi / 512)]) / 512, rtol=1e-12)
    with pytest.raises(ValueError, match="holdout must be 'random' or 'alternate'"):
        swiss_roll(100, holdout="every")
