"""Weak-label canvases of digits: pixel labels are the strokes with class + 1, tags are the classes present,
seeded, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from meganet.data import digit_canvas


def _digits(m=20, seed=0):
    rng = np.random.default_rng(seed)
    D = np.zeros((m, 1, 8, 8))
    for i in range(m):  # a bright bar at a class-dependent row
        D[i, 0, i % 8, 1:7] = 0.9
        D[i, 0] += 0.1 * rng.random((8, 8))
    return np.clip(D, 0, 1), np.arange(m) % 10


def test_labels_tags_and_intensities():
    D, y = _digits()
    c = digit_canvas(D, y, 12, canvas=(20, 24), per_image=(1, 3), seed=4)
    assert c.X.shape == (12, 1, 20, 24) and c.pixel_labels.shape == (12, 20, 24) and c.tags.shape == (12, 11)
    assert c.X.min() >= 0 and c.X.max() <= 1
    for i in range(12):
        present = set(np.unique(c.pixel_labels[i]))
        assert set(np.flatnonzero(c.tags[i])) == present | {0}
        assert 1 <= c.tags[i, 1:].sum() <= 3
        stroke = c.pixel_labels[i] > 0
        assert np.all(c.X[i, 0][stroke] > 0.5)  # labelled pixels are strokes


def test_single_digit_placement_is_exact():
    D, y = _digits(m=1)
    c = digit_canvas(D, y, 1, canvas=(8, 8), per_image=(1, 1), seed=0)
    np.testing.assert_array_equal(c.X[0, 0], D[0, 0])
    np.testing.assert_array_equal(c.pixel_labels[0], np.where(D[0, 0] > 0.5, 1 + y[0], 0))


def test_seeded():
    D, y = _digits()
    a, b = digit_canvas(D, y, 5, seed=1, canvas=(16, 16)), digit_canvas(D, y, 5, seed=1, canvas=(16, 16))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.tags, b.tags)
    assert not np.array_equal(a.X, digit_canvas(D, y, 5, seed=2, canvas=(16, 16)).X)


@pytest.mark.parametrize("kw, match", [
    (dict(canvas=(4, 40)), "canvas\\[0\\]"),
    (dict(per_image=(3, 1)), "per_image must be"),
    (dict(stroke_threshold=1.5), "stroke_threshold"),
    (dict(classes=np.arange(20) + 5), "classes must be"),
    (dict(digits=2 * np.ones((20, 1, 8, 8))), "values in \\[0, 1\\]"),
])
def test_bad_input(kw, match):
    D, y = _digits()
    args = dict(digits=D, classes=y, n_images=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        digit_canvas(**args)
