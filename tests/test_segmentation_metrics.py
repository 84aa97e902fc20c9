"""Segmentation metrics: confusion matrix, IoU, mIoU and pixel accuracy on labelled pixels, checked against
hand-computed values and an independent loop; bad input."""

from __future__ import annotations

import numpy as np
import pytest

from meganet.metrics import confusion_matrix, segmentation_scores


def test_hand_computed_example():
    y = np.array([[0, 0, 1], [1, 2, 2]])
    p = np.array([[0, 1, 1], [1, 2, 0]])
    s = segmentation_scores(y, p, 3)
    np.testing.assert_array_equal(s.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    # IoU_0 = 1 / (2 + 2 - 1), IoU_1 = 2 / (2 + 3 - 2), IoU_2 = 1 / (2 + 1 - 1)
    np.testing.assert_allclose(s.iou, [1 / 3, 2 / 3, 1 / 2])
    assert s.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s.pixel_accuracy == pytest.approx(4 / 6) and s.n_pixels == 6


def test_against_a_loop_with_mask():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, (3, 7, 5))
    p = rng.integers(0, 4, (3, 7, 5))
    mask = rng.random((3, 7, 5)) < 0.4
    y_masked = np.where(mask, y, 99)  # unlabelled pixels may hold anything
    M = np.zeros((4, 4), int)
    for t, q, m in zip(y.ravel(), p.ravel(), mask.ravel()):
        if m:
            M[t, q] += 1
    np.testing.assert_array_equal(confusion_matrix(y_masked, p, 4, mask=mask), M)
    s = segmentation_scores(y_masked, p, 4, mask=mask)
    for c in range(4):
        inter, union = np.sum((y == c) & (p == c) & mask), np.sum(((y == c) | (p == c)) & mask)
        assert s.iou[c] == pytest.approx(inter / union)


def test_absent_class_is_left_out_of_the_mean():
    y = np.array([0, 0, 1, 1])
    s = segmentation_scores(y, y.copy(), 3)
    assert np.isnan(s.iou[2]) and s.miou == 1.0 and s.pixel_accuracy == 1.0


@pytest.mark.parametrize("kw, exc, match", [
    (dict(y_pred=np.array([0, 3])), ValueError, "outside 0 … 2"),
    (dict(y_pred=np.array([0, 1, 1])), ValueError, "same shape"),
    (dict(y_pred=np.array([0.0, 1.0])), TypeError, "integer class labels"),
    (dict(mask=np.zeros(2, bool)), ValueError, "no labelled pixels"),
    (dict(mask=np.ones(3, bool)), ValueError, "mask must be an array"),
])
def test_bad_input(kw, exc, match):
    args = dict(y_true=np.array([0, 1]), y_pred=np.array([0, 1]), n_classes=3)
    args.update(kw)
    with pytest.raises(exc, match=match):
        segmentation_scores(**args)


def test_boundary_length_counts_neighbour_pairs():
    from meganet.metrics import boundary_length

    c = np.zeros((4, 5), dtype=np.int64)
    assert boundary_length(c) == 0
    c[:, 2:] = 1                                     # one vertical edge of length 4
    assert boundary_length(c) == 4
    c[1, 0] = 2                                      # an isolated pixel: 3 more pairs (left border)
    assert boundary_length(c) == 7
    # checkerboard: every pair differs
    cb = np.indices((3, 3)).sum(axis=0) % 2
    assert boundary_length(cb) == 2 * 3 * 2
    # batch and mask: pairs with an unmasked pixel do not count
    batch = np.stack([c, np.zeros_like(c)])
    np.testing.assert_array_equal(boundary_length(batch), [7, 0])
    mask = np.ones_like(c, dtype=bool)
    mask[1, 0] = False
    assert boundary_length(c, mask=mask) == 4
    with pytest.raises(TypeError, match="integer"):
        boundary_length(c.astype(float))
    with pytest.raises(ValueError, match="mask"):
        boundary_length(c, mask=mask[:2])
