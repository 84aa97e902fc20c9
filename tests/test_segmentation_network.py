"""Fully convolutional segmentation networks: output at the image size, reversible blocks, training on the
labelled pixels of the change-detection scene with a per-pixel classifier and the mask of labelled pixels."""

from __future__ import annotations

import numpy as np
import pytest

from meganet.data import change_detection_scene
from meganet.losses import SoftmaxCrossEntropy
from meganet.metrics import segmentation_scores
from meganet.networks import segmentation_network
from meganet.objectives import NetworkObjective
from meganet.optimizers import minimize_lbfgs
from meganet.testing import taylor_test


@pytest.mark.parametrize("block", ["hamiltonian", "second_order"])
def test_shapes_and_reversible(block):
    net = segmentation_network(6, (9, 7), width=4, n_layers=3, block=block)
    assert net.shape_in == (6, 9, 7) and net.shape_out == (4, 9, 7)
    assert net.blocks[1].reversible and net.blocks[1].n_steps == 3 and net.blocks[1].final_time == 3.0
    Z = net(net.init_theta(rng=0), np.random.default_rng(0).standard_normal((2, 6, 9, 7)))
    assert Z.shape == (2, 4, 9, 7) and np.all(np.isfinite(Z))


def test_masked_per_pixel_objective_gradient_and_training():
    s = change_detection_scene((16, 16), n_bands=4, n_train=60, n_val=30, seed=2)
    net = segmentation_network(8, (16, 16), width=4, n_layers=3)
    loss = SoftmaxCrossEntropy(net.shape_out, 2, per_pixel=True)
    obj = NetworkObjective(net, loss, s.X, s.labels, mask=s.train_mask.astype(np.float64))
    x0 = obj.init_x(rng=0)
    v = np.random.default_rng(1).standard_normal(obj.n)
    r = taylor_test(lambda x: np.asarray(obj.value(x)[0]), x0, v, np.asarray(obj.gradient(x0) @ v))
    assert r.ok, r
    res = minimize_lbfgs(obj, x0, max_iter=30)
    assert res.fun < 0.7 * obj.value(x0)[0]
    theta, w = obj.split(res.x)
    pred = loss.predict(net(theta, s.X), w)
    train = segmentation_scores(s.labels, pred, 2, mask=s.train_mask)
    assert train.pixel_accuracy > 0.8


def test_bad_options():
    with pytest.raises(ValueError, match="width must be even"):
        segmentation_network(3, (8, 8), width=5)
    with pytest.raises(ValueError, match="block"):
        segmentation_network(3, (8, 8), block="parabolic")
