"""The image-classification driver (JMIV 2019 §5 recipe): learning, keep-best, chunked evaluation,
checkpoint/resume (a run killed at epoch k resumes at epoch k and ends where an uninterrupted run ends),
divergence, the box constraint and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from meganet.data.readers import ImageDataset
from meganet.layers import Flatten, SingleLayer
from meganet.losses import SoftmaxCrossEntropy
from meganet.networks import Meganet
from meganet.training.image_classification import (evaluate_classifier, jmiv_learning_rate,
                                                   train_image_classifier)
from meganet.transforms import Conv2d


def _images(n, rng, dtype):
    """Two classes: a bright blob in the left or the right half of a 6×6 image, plus noise."""
    y = rng.integers(0, 2, n)
    X = 0.3 * rng.standard_normal((n, 1, 6, 6))
    for i in range(n):
        c = 1 if y[i] == 0 else 4
        X[i, 0, 2:4, c:c + 2] += 1.5
    return X.astype(dtype), y


def _data(dtype=np.float64, n=96, seed=0):
    rng = np.random.default_rng(seed)
    Xtr, ytr = _images(n, rng, dtype)
    Xva, yva = _images(40, rng, dtype)
    Xte, yte = _images(40, rng, dtype)
    return ImageDataset(Xtr, ytr, Xva, yva, Xte, yte, 2, "blobs")


def _net(normalization=None):
    blocks = [SingleLayer(Conv2d(1, 3, (6, 6)), activation="tanh", normalization=normalization),
              SingleLayer(Conv2d(3, 2, (6, 6)), activation="tanh"), Flatten((2, 6, 6))]
    return Meganet(blocks)


def _train(tmp_path=None, name="ck.npz", **kw):
    data = kw.pop("data", None) or _data()
    net = _net(kw.pop("normalization", None))
    loss = SoftmaxCrossEntropy(net.shape_out, 2)
    opts = dict(n_epochs=3, learning_rate=0.05, batch_size=16, seed=1)
    if tmp_path is not None:
        opts["checkpoint"] = os.path.join(tmp_path, name)
    opts.update(kw)
    return net, loss, train_image_classifier(net, loss, data, **opts)


def test_learns_and_keeps_the_best_weights():
    net, loss, res = _train(n_epochs=4)
    assert res.status == "completed" and res.epochs_run == 4
    h = res.history
    assert len(h) == 4 and h["epoch"] == [1, 2, 3, 4]
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert res.best_val_accuracy == max(h["val_accuracy"]) >= 0.9
    assert res.test["accuracy"] >= 0.85 and res.test["n_examples"] == 40
    # best_x is the iterate of the best epoch: its validation accuracy is the recorded one
    d = _data()
    m = evaluate_classifier(net, loss, res.theta, res.w, d.X_val, d.y_val)
    assert m["accuracy"] == res.best_val_accuracy
    assert all(r > 0 for r in h["images_per_second"])


def test_chunked_evaluation_equals_one_pass():
    net = _net()
    loss = SoftmaxCrossEntropy(net.shape_out, 2)
    rng = np.random.default_rng(4)
    theta, w = net.init_theta(rng=rng), rng.standard_normal(loss.n_w)
    d = _data()
    one = evaluate_classifier(net, loss, theta, w, d.X_train, d.y_train, batch_size=10_000)
    for b in (1, 7, 50):
        m = evaluate_classifier(net, loss, theta, w, d.X_train, d.y_train, batch_size=b)
        assert m["accuracy"] == pytest.approx(one["accuracy"], abs=1e-15)
        assert m["loss"] == pytest.approx(one["loss"], rel=1e-12)


def test_resume_after_each_epoch_gives_the_uninterrupted_run(tmp_path):
    _, _, ref = _train(n_epochs=3)
    results = []
    for call in range(3):
        _, _, r = _train(tmp_path, n_epochs=3, max_epochs_per_call=1)
        results.append(r)
    assert [r.resumed_from for r in results] == [None, 1, 2]
    assert [r.status for r in results] == ["max_epochs_per_call", "max_epochs_per_call", "completed"]
    last = results[-1]
    np.testing.assert_array_equal(last.x, ref.x)
    np.testing.assert_array_equal(last.best_x, ref.best_x)
    assert last.history["val_accuracy"] == ref.history["val_accuracy"]
    assert last.history["train_loss"] == ref.history["train_loss"]


def test_killed_during_an_epoch_resumes_at_that_epoch(tmp_path):
    """A run killed in the middle of epoch 2 resumes at epoch 2 (from the checkpoint of epoch 1) and ends with
    the weights of an uninterrupted run."""
    _, _, ref = _train(n_epochs=3)
    calls = {"n": 0}

    def killer(X, rng):
        calls["n"] += 1
        if calls["n"] == 6 + 3:  # 6 batches per epoch: the third batch of epoch 2
            raise KeyboardInterrupt
        return X

    def identity(X, rng):
        return X

    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, n_epochs=3, augment=killer)
    assert os.path.exists(os.path.join(tmp_path, "ck.npz"))
    assert not [f for f in os.listdir(tmp_path) if f != "ck.npz"]  # no temporary files left behind
    _, _, res = _train(tmp_path, n_epochs=3, augment=identity)
    assert res.resumed_from == 1 and res.epochs_run == 3 and res.history["epoch"] == [1, 2, 3]
    np.testing.assert_array_equal(res.x, ref.x)
    np.testing.assert_array_equal(res.best_x, ref.best_x)


def test_checkpoint_of_another_problem_is_refused(tmp_path):
    _train(tmp_path, n_epochs=1)
    with pytest.raises(ValueError, match="belongs to another problem.*batch_size"):
        _train(tmp_path, n_epochs=2, batch_size=8)
    # resume=False starts afresh and overwrites
    _, _, r = _train(tmp_path, n_epochs=1, batch_size=8, resume=False)
    assert r.resumed_from is None


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    with open(os.path.join(tmp_path, "ck.npz"), "wb") as f:
        f.write(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        _train(tmp_path, n_epochs=1)


def test_divergence_stops_with_a_status_and_a_finite_x():
    """A NaN in the middle of epoch 2 (here from the batch transform) stops training with status
    'non_finite' and returns the state after epoch 1."""
    _, _, one = _train(n_epochs=1)
    calls = {"n": 0}

    def blow_up(X, rng):
        calls["n"] += 1
        return X * np.nan if calls["n"] == 8 else X

    net, loss, res = _train(n_epochs=3, augment=blow_up)
    assert res.status == "non_finite" and res.epochs_run == 1 and len(res.history) == 1
    np.testing.assert_array_equal(res.x, one.x)
    assert "NaN" in res.message and "epoch" in res.message
    assert np.all(np.isfinite(res.x)) and np.all(np.isfinite(res.best_x))


def test_box_constraint_holds():
    net, loss, res = _train(n_epochs=2, learning_rate=0.5, lower=-0.1, upper=0.1)
    assert res.x.max() <= 0.1 and res.x.min() >= -0.1


def test_float32_training():
    net, loss, res = _train(n_epochs=2, data=_data(np.float32))
    assert res.x.dtype == np.float32 and res.best_val_accuracy > 0.8


def test_jmiv_learning_rate():
    s = jmiv_learning_rate()
    assert s.n_epochs == 100
    assert [s(e) for e in (0, 59, 60, 79, 80, 99)] == [0.1, 0.1, 0.02, 0.02, 0.004, 0.004]
    s100 = jmiv_learning_rate((60, 40, 40, 40, 20), (0.1, 0.02, 0.004, 0.0008, 0.00016))
    assert s100.n_epochs == 200 and s100(199) == 0.00016
    with pytest.raises(ValueError, match="same length"):
        jmiv_learning_rate((1, 2), (0.1,))
    with pytest.raises(ValueError, match="positive"):
        jmiv_learning_rate((1,), (-0.1,))


@pytest.mark.parametrize("kw, exc, match", [
    (dict(momentum=1.0), ValueError, "momentum must be a number in"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(n_epochs=0), ValueError, "n_epochs"),
    (dict(dtype=np.float32), TypeError, "dtype=float32 but the data are float64"),
    (dict(lower=np.zeros(3)), ValueError, "lower must be a scalar or an array of length"),
    (dict(augment=3), TypeError, "augment must be a callable"),
    (dict(regularizer="x"), TypeError, "regularizer must be a meganet Regularizer"),
])
def test_bad_options(kw, exc, match):
    with pytest.raises(exc, match=match):
        _train(**kw)


def test_regularizers_are_applied_and_checked():
    from meganet.regularizers import Tikhonov

    net, loss, free = _train(n_epochs=2)
    _, _, decayed = _train(n_epochs=2, regularizer=Tikhonov(net.n_theta, alpha=5.0),
                           classifier_regularizer=Tikhonov(loss.n_w, alpha=5.0))
    assert np.linalg.norm(decayed.x) < 0.5 * np.linalg.norm(free.x)
    with pytest.raises(ValueError, match=f"regularizer acts on vectors of length 3, expected {net.n_theta}"):
        _train(regularizer=Tikhonov(3))


def test_bad_data():
    d = _data()
    d.X_train = d.X_train.copy()
    d.X_train[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="X_train contains NaN"):
        _train(data=d)
    d = _data()
    d.X_val = d.X_val[:, :, :4]
    with pytest.raises(ValueError, match=r"X_val must have shape \(n, 1, 6, 6\)"):
        _train(data=d)
    net = _net()
    with pytest.raises(ValueError, match="n_epochs is required"):
        train_image_classifier(net, SoftmaxCrossEntropy(net.shape_out, 2), _data(), learning_rate=0.1)


def test_batch_norm_running_statistics_are_used_for_validation_and_resume(tmp_path):
    """With a BatchNorm in the network: training tracks running statistics, validation and test run in
    evaluation mode with them, the result carries the statistics of the best epoch, and a resumed run
    equals an uninterrupted one (statistics included)."""
    from meganet.normalization import BatchNorm
    from meganet.normalization.mode import load_running_statistics, set_training

    bn = lambda: BatchNorm((3, 6, 6), affine=True)  # noqa: E731
    net, loss, ref = _train(n_epochs=3, normalization=bn())
    stats = ref.running_statistics
    (mean,) = [k for k in stats if k.endswith("running_mean")]
    prefix = mean[:-len("running_mean")]
    assert stats[mean].shape == (3,) and int(stats[prefix + "num_batches_tracked"]) == 6 * ref.best_epoch
    assert not np.allclose(stats[prefix + "running_var"], 1.0)
    d = _data()
    load_running_statistics(net, stats)
    set_training(net, False)
    m = evaluate_classifier(net, loss, ref.theta, ref.w, d.X_val, d.y_val)
    assert m["accuracy"] == ref.best_val_accuracy
    for _ in range(3):
        _, _, r = _train(tmp_path, n_epochs=3, max_epochs_per_call=1, normalization=bn())
    np.testing.assert_array_equal(r.x, ref.x)
    for k in stats:
        np.testing.assert_array_equal(r.running_statistics[k], stats[k])
        np.testing.assert_array_equal(r.info["final_running_statistics"][k], ref.info["final_running_statistics"][k])
