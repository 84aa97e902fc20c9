"""Batch augmentation (JMIV 2019, Sec. 5: random flip, zero-pad by 1/16 and random crop; quarter turns for
segmentation): determinism for a seed, what each transform does to each example, inputs unchanged."""

import numpy as np
import pytest

from meganet.data import Compose, RandomHorizontalFlip, RandomPadCrop, RandomRot90


@pytest.fixture
def X():
    return np.random.default_rng(0).uniform(size=(40, 3, 8, 8))


def run(t, X, seed, **kw):
    X0 = X.copy()
    out = t(X, np.random.default_rng(seed), **kw)
    np.testing.assert_array_equal(X, X0)  # input unchanged
    return out


@pytest.mark.parametrize("t", [RandomHorizontalFlip(), RandomPadCrop(), RandomRot90(),
                               Compose([RandomHorizontalFlip(), RandomPadCrop(2), RandomRot90()])])
def test_deterministic_for_a_seed_and_input_unchanged(X, t):
    a, b, c = run(t, X, 3), run(t, X, 3), run(t, X, 4)
    assert a.shape == X.shape and a.dtype == X.dtype and a is not X
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    f32 = run(t, X.astype(np.float32), 3)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, a, rtol=1e-6)  # same draws, whatever the dtype


def test_flip_mirrors_about_half_of_the_examples():
    X = np.random.default_rng(1).uniform(size=(2000, 1, 3, 5))
    out = run(RandomHorizontalFlip(), X, 0)
    flipped = np.array([np.array_equal(o, x[..., ::-1]) for o, x in zip(out, X)])
    same = np.array([np.array_equal(o, x) for o, x in zip(out, X)])
    assert np.all(flipped ^ same)  # each example either mirrored or untouched
    assert 0.45 < flipped.mean() < 0.55
    assert np.array_equal(run(RandomHorizontalFlip(p=1.0), X, 0), X[..., ::-1])
    assert np.array_equal(run(RandomHorizontalFlip(p=0.0), X, 0), X)


def test_crop_is_a_shifted_window_of_the_zero_padded_image():
    X = np.random.default_rng(2).uniform(0.5, 1.0, size=(300, 2, 32, 32))  # no zeros inside the images
    t = RandomPadCrop()  # the paper's 1/16: 2 pixels for 32 x 32
    assert t.pads(32, 32) == (2, 2) and t.pads(96, 96) == (6, 6) and t.pads(8, 24) == (1, 2)  # at least 1
    assert t.pads(40, 40) == (3, 3) and RandomPadCrop(fraction=0).pads(32, 32) == (0, 0)  # 2.5 rounds up
    out = run(t, X, 5)
    assert out.shape == X.shape
    P = np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for i in range(len(X)):
        hits = [(r, c) for r in range(5) for c in range(5) if np.array_equal(out[i], P[i, :, r:r + 32, c:c + 32])]
        assert len(hits) == 1, i
        offsets.add(hits[0])
    assert len(offsets) == 25  # every shift of -2..2 in each direction occurs
    assert np.array_equal(run(RandomPadCrop(0), X, 5), X)
    rect = run(RandomPadCrop(pad=1, fill=-1.0), X[:, :, :4, :6], 1)
    assert rect.shape == (300, 2, 4, 6) and set(np.unique(rect[rect < 0])) <= {-1.0}


def test_rot90_turns_images_and_label_images_alike():
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(200, 2, 6, 6))
    L = rng.integers(0, 5, size=(200, 6, 6))
    L0 = L.copy()
    out, Lout = run(RandomRot90(), X, 7, labels=L)
    np.testing.assert_array_equal(L, L0)
    ks = []
    for i in range(len(X)):
        k = [q for q in range(4) if np.array_equal(out[i], np.rot90(X[i], q, axes=(1, 2)))]
        assert len(k) == 1
        np.testing.assert_array_equal(Lout[i], np.rot90(L[i], k[0]))  # the same quarter turn
        ks.append(k[0])
    assert set(ks) == {0, 1, 2, 3}
    np.testing.assert_array_equal(run(RandomRot90(ks=(2,)), X, 0), X[:, :, ::-1, ::-1])
    with pytest.raises(ValueError, match="needs square images, got H x W = 6 x 4; use ks=\\(0, 2\\)"):
        RandomRot90()(X[:, :, :, :4], np.random.default_rng(0))
    assert run(RandomRot90(ks=(0, 2)), X[:, :, :, :4], 0).shape == (200, 2, 6, 4)


def test_compose_applies_the_labels_consistently():
    rng = np.random.default_rng(4)
    X = rng.uniform(0.1, 1.0, size=(50, 1, 8, 8))
    L = np.round(X[:, 0] * 10).astype(np.int64)  # the label image is a function of the image
    t = Compose([RandomHorizontalFlip(), RandomPadCrop(1, label_fill=-1), RandomRot90()])
    out, Lout = t(X, np.random.default_rng(0), labels=L)
    inside = Lout >= 0
    np.testing.assert_array_equal(Lout[inside], np.round(out[:, 0][inside] * 10))
    np.testing.assert_array_equal(out[:, 0][~inside], 0.0)  # padded pixels: 0 in X, label_fill in the labels
    assert (~inside).any()
    same = Compose([])(X, np.random.default_rng(0))
    np.testing.assert_array_equal(same, X)
    assert same is not X


@pytest.mark.parametrize("make, exc, match", [
    (lambda: RandomHorizontalFlip(p=1.5), ValueError, r"p must be in \[0, 1\], got 1.5"),
    (lambda: RandomHorizontalFlip(p="half"), TypeError, "p must be a real number in"),
    (lambda: RandomPadCrop(-1), ValueError, "pad must be >= 0, got -1"),
    (lambda: RandomPadCrop(fraction=-0.1), ValueError, "fraction must be non-negative, got -0.1"),
    (lambda: RandomPadCrop(fill=np.nan), TypeError, "fill must be a finite real number"),
    (lambda: RandomRot90(ks=(1, 4)), ValueError, r"quarter turns in \{0, 1, 2, 3\}, got \(1, 4\)"),
    (lambda: RandomRot90(ks=()), ValueError, "non-empty"),
    (lambda: Compose([RandomRot90(), 3]), TypeError, "transforms must be callables"),
])
def test_options_are_validated(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_call_arguments_are_validated(X):
    t = RandomHorizontalFlip()
    with pytest.raises(ValueError, match=r"X must have shape \(n, C, H, W\), got \(40, 8, 8\)"):
        t(X[:, 0], np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        t(X, 0)
    with pytest.raises(ValueError, match=r"labels must have shape \(n, H, W\)"):
        t(X, np.random.default_rng(0), labels=np.zeros((40, 8, 7)))


def test_augment_dataset_appends_deterministic_copies():
    """For the second-order solvers: the training set plus augmented copies, drawn once from a seed."""
    from meganet.data.augment import Compose, RandomHorizontalFlip, RandomPadCrop, RandomRot90, augment_dataset

    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 2, 6, 6))
    y = np.arange(5)
    t = Compose([RandomHorizontalFlip(), RandomPadCrop(1)])
    Xa, ya = augment_dataset(X, y, t, copies=2, seed=3)
    assert Xa.shape == (15, 2, 6, 6) and ya.tolist() == [0, 1, 2, 3, 4] * 3
    np.testing.assert_array_equal(Xa[:5], X)
    g = np.random.default_rng(3)
    np.testing.assert_array_equal(Xa[5:10], t(X, g))
    np.testing.assert_array_equal(Xa[10:], t(X, g))
    assert not np.array_equal(Xa[5:10], Xa[10:])
    Xb, _ = augment_dataset(X, y, t, copies=2, seed=3)
    np.testing.assert_array_equal(Xa, Xb)
    # label images are transformed with their images
    L = rng.integers(0, 3, (5, 6, 6))
    Xr, Lr = augment_dataset(X, L, RandomRot90(), copies=1, seed=1)
    k_of = [next(k for k in range(4) if np.array_equal(np.rot90(X[i], k, axes=(-2, -1)), Xr[5 + i])) for i in range(5)]
    for i, k in enumerate(k_of):
        np.testing.assert_array_equal(Lr[5 + i], np.rot90(L[i], k))
    with pytest.raises(ValueError, match="one label"):
        augment_dataset(X, y[:3], t)
    with pytest.raises(TypeError, match="transform must be a callable"):
        augment_dataset(X, y, None)
