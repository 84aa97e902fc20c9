"""The synthetic change-detection scene (Peters 2020 structure): shapes, determinism, the label is the change
of the land-use maps, regions are piecewise constant, labelled sets, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from meganet.data import change_detection_scene


def test_structure_and_label():
    s = change_detection_scene((48, 40), n_bands=12, n_classes=4, seed=3)
    assert s.X.shape == (1, 24, 48, 40) and s.X.dtype == np.float64
    assert s.labels.shape == (1, 48, 40) and s.land_use.shape == (2, 48, 40)
    np.testing.assert_array_equal(s.labels[0], (s.land_use[0] != s.land_use[1]).astype(int))
    assert 0.1 < s.labels.mean() < 0.3  # about change_fraction = 0.2
    # piecewise constant with smooth boundaries: most neighbours share the class
    lu = s.land_use[0]
    assert np.mean(lu[:, 1:] == lu[:, :-1]) > 0.85 and np.mean(lu[1:] == lu[:-1]) > 0.85
    assert len(np.unique(lu)) == 4
    # labelled pixels: counts, disjoint, both classes in each set
    assert s.train_mask.sum() == 200 and s.val_mask.sum() == 50 and not np.any(s.train_mask & s.val_mask)
    for m in (s.train_mask, s.val_mask):
        assert set(np.unique(s.labels[m])) == {0, 1}


def test_pixels_follow_their_class_spectrum():
    s = change_detection_scene((32, 32), n_bands=10, noise=0.0, seed=1)
    t1 = s.land_use[0]
    X1 = s.X[0, :10]
    for c in range(len(s.spectra)):
        pix = X1[:, t1 == c]  # (bands, pixels of class c): the class spectrum times the illumination
        ratio = pix / s.spectra[c][:, None]
        assert np.allclose(ratio, ratio[0][None], rtol=1e-10)  # one scale factor per pixel
        assert 0.6 < ratio.mean() < 1.4


def test_seeded_and_float32():
    a, b = change_detection_scene((16, 16), seed=5), change_detection_scene((16, 16), seed=5)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.train_mask, b.train_mask)
    c = change_detection_scene((16, 16), seed=6)
    assert not np.array_equal(a.X, c.X)
    assert change_detection_scene((16, 16), dtype=np.float32).X.dtype == np.float32


@pytest.mark.parametrize("kw, match", [
    (dict(shape=(4, 64)), "shape\\[0\\]"),
    (dict(shape=(16, 16), n_train=250, n_val=10), "exceeds the 256 pixels"),
    (dict(change_fraction=1.5), "change_fraction must be a number in \\(0, 1\\)"),
    (dict(n_classes=1), "n_classes"),
    (dict(noise=-1.0), "noise"),
    (dict(shape=16), "shape must be \\(H, W\\)"),
])
def test_bad_input(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        change_detection_scene(**kw)
