"""A synthetic hyperspectral change-detection scene with the structure of Peters (2020, §4): two hyperspectral
cubes of the same location at two times, a change map as the label, and a few hundred labelled pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import check_dtype
from ..core.validation import check_int, check_positive

__all__ = ["ChangeDetectionScene", "change_detection_scene"]


@dataclass
class ChangeDetectionScene:
    """A generated change-detection problem.

    Attributes
    ----------
    X : array, shape (1, 2·n_bands, H, W)
        The two cubes stacked along the channel axis: bands of time 1, then bands of time 2.
    labels : int64 array, shape (1, H, W)
        The change map: 1 where the land use changed between the two times, 0 elsewhere.
    train_mask, val_mask : bool arrays, shape (1, H, W)
        The labelled training pixels (``n_train``) and validation pixels (``n_val``), disjoint.
    land_use : int64 array, shape (2, H, W)
        The piecewise-constant land-use maps at the two times (the ground truth behind ``labels``).
    spectra : array, shape (n_classes, n_bands)
        Mean reflectance of every land-use class.
    seed : int
    """

    X: np.ndarray
    labels: np.ndarray
    train_mask: np.ndarray
    val_mask: np.ndarray
    land_use: np.ndarray
    spectra: np.ndarray
    seed: int

    @property
    def n_classes(self):
        """2: no change, change."""
        return 2


def _regions(rng, shape, n_classes, smoothness):
    """Piecewise-constant map with smooth, irregular region boundaries: the argmax over classes of
    Gaussian-smoothed white noise (``scipy.ndimage.gaussian_filter``)."""
    from scipy.ndimage import gaussian_filter

    fields = np.stack([gaussian_filter(rng.standard_normal(shape), smoothness, mode="reflect")
                       for _ in range(n_classes)])
    return fields.argmax(axis=0)


def _spectra(rng, n_classes, n_bands):
    """Smooth class spectra in (0, 1): a baseline plus three Gaussian absorption/reflection features each."""
    t = np.linspace(0.0, 1.0, n_bands)
    S = np.empty((n_classes, n_bands))
    for c in range(n_classes):
        s = 0.3 + 0.2 * rng.random() + 0.1 * t * rng.standard_normal()
        for _ in range(3):
            s = s + 0.15 * rng.standard_normal() * np.exp(-0.5 * ((t - rng.random()) / (0.05 + 0.1 * rng.random())) ** 2)
        S[c] = np.clip(s, 0.02, 0.98)
    return S


def change_detection_scene(shape=(64, 64), *, n_bands=40, n_classes=5, n_train=200, n_val=50, change_fraction=0.2,
                           noise=0.03, smoothness=4.0, seed=0, dtype=np.float64):
    """Generate a change-detection scene with the structure of the hyperspectral time-lapse data of Peters
    (2020, §4: two cubes of the same location, two spatial axes and a spectral axis, land-use changes as the
    label, 200 labelled training and 50 validation pixels).

    Construction (seeded, ``numpy.random.default_rng(seed)``):

    1. land use at time 1: ``n_classes`` regions with smooth irregular boundaries (argmax of Gaussian-smoothed
       noise, length scale ``smoothness`` pixels);
    2. time 2: the same map with changed patches (smoothed-noise blobs covering about ``change_fraction`` of the
       scene) given another class;
    3. each pixel's spectrum is its class spectrum times a smooth illumination field of the image, plus
       independent Gaussian noise of standard deviation ``noise``; time 2 has its own per-band gain and offset
       (atmosphere, sensor), so unchanged pixels differ between the cubes too;
    4. label = change map ``land_use[0] != land_use[1]``; ``n_train`` and ``n_val`` labelled pixels drawn at
       random without overlap, each set containing both classes.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)``.
    n_bands, n_classes : int
    n_train, n_val : int
        Labelled training and validation pixels.
    change_fraction : float in (0, 1)
    noise : float ≥ 0
    smoothness : float > 0
    seed : int
    dtype : float64 or float32

    Returns
    -------
    ChangeDetectionScene
    """
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
        raise ValueError(f"shape must be (H, W), got {shape!r}")
    H, W = (check_int("shape[0]", shape[0], minimum=8), check_int("shape[1]", shape[1], minimum=8))
    n_bands = check_int("n_bands", n_bands, minimum=1)
    n_classes = check_int("n_classes", n_classes, minimum=2)
    n_train = check_int("n_train", n_train, minimum=2)
    n_val = check_int("n_val", n_val, minimum=2)
    if n_train + n_val > H * W:
        raise ValueError(f"n_train + n_val = {n_train + n_val} exceeds the {H * W} pixels of the scene")
    if not (isinstance(change_fraction, (int, float)) and 0.0 < change_fraction < 1.0):
        raise ValueError(f"change_fraction must be a number in (0, 1), got {change_fraction!r}")
    noise = check_positive("noise", noise, allow_zero=True)
    smoothness = check_positive("smoothness", smoothness)
    seed = check_int("seed", seed, minimum=0)
    dtype = check_dtype(dtype)
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    t1 = _regions(rng, (H, W), n_classes, smoothness)
    blob = gaussian_filter(rng.standard_normal((H, W)), smoothness, mode="reflect")
    changed = blob > np.quantile(blob, 1.0 - change_fraction)
    t2 = t1.copy()
    shift = rng.integers(1, n_classes, size=(H, W))  # a different class wherever the land use changes
    t2[changed] = (t1[changed] + shift[changed]) % n_classes
    S = _spectra(rng, n_classes, n_bands)
    cubes = []
    for k, lu in enumerate((t1, t2)):
        light = 1.0 + 0.1 * gaussian_filter(rng.standard_normal((H, W)), 2 * smoothness, mode="reflect")
        cube = S[lu].transpose(2, 0, 1) * light[None]  # (bands, H, W)
        if k == 1:
            gain = 1.0 + 0.05 * rng.standard_normal(n_bands)
            offset = 0.02 * rng.standard_normal(n_bands)
            cube = gain[:, None, None] * cube + offset[:, None, None]
        cubes.append(cube + noise * rng.standard_normal(cube.shape))
    labels = (t1 != t2).astype(np.int64)
    flat = labels.ravel()
    for _ in range(1000):  # both classes in both labelled sets
        pick = rng.choice(H * W, size=n_train + n_val, replace=False)
        tr, va = pick[:n_train], pick[n_train:]
        if len(np.unique(flat[tr])) == 2 and len(np.unique(flat[va])) == 2:
            break
    else:  # pragma: no cover - needs a scene with almost no change
        raise ValueError("could not draw labelled sets that contain both classes; raise change_fraction")
    train_mask = np.zeros(H * W, bool)
    val_mask = np.zeros(H * W, bool)
    train_mask[tr] = True
    val_mask[va] = True
    return ChangeDetectionScene(X=np.concatenate(cubes)[None].astype(dtype), labels=labels[None],
                                train_mask=train_mask.reshape(1, H, W), val_mask=val_mask.reshape(1, H, W),
                                land_use=np.stack([t1, t2]).astype(np.int64), spectra=S.astype(dtype), seed=seed)
