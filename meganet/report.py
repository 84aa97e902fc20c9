"""Report folders of training runs: written atomically, loaded back into a working model.

A report folder holds everything needed to inspect and reuse a trained network::

    model.json        the model specification (network, loss, input embedding) and format version
    params.npz        theta (network weights) and w (classifier weights), float64 or float32
    history.csv/json  the per-iteration table of all levels (loss, |g|, work units, time, validation metrics)
    summary.json      final loss, accuracies, wall time, work units, solver status and message, options
    data.npz          training and validation data the run used (optional)
    *.png             decision regions with the data, convergence plot (when matplotlib is installed)

:func:`save_run` writes into a temporary sibling folder and renames it into
place (``os.rename`` of a directory is atomic on POSIX), so an interrupted or
failing write never leaves a half-written result; an existing folder is only
replaced with ``overwrite=True`` (the old folder is moved aside first and
deleted only after the new one is in place).  :func:`load_run` rebuilds the
network and loss from ``model.json`` and returns a :class:`Run` that predicts.

The model specification (:func:`model_spec`) is a small JSON-able dict::

    {"network": "antisym" | "verlet" | "resnet" | "leapfrog",
     "opening": "dense" | "pad",       # 2-D input → width: trainable tanh layer, or zero padding
     "n_inputs": 2, "width": 8, "n_steps": 16, "final_time": 5.0,
     "activation": "tanh", "gamma": 0.01,
     "loss": "softmax" | "least_squares", "n_outputs": 5, "dtype": "float64"}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np

from .core.validation import check_int, check_nonnegative, check_option, check_positive

__all__ = [
    "NETWORKS", "OPENINGS", "LOSSES", "FORMAT", "FORMAT_VERSION",
    "model_spec", "build_model", "Model", "atomic_folder", "unique_path", "save_run", "load_run", "Run",
    "to_jsonable",
]

#: Time-stepping blocks a report can hold (names used by the command line).
NETWORKS = ("antisym", "verlet", "resnet", "leapfrog")
#: How the input is embedded into the network width.
OPENINGS = ("dense", "pad")
#: Losses on the network output.
LOSSES = ("softmax", "least_squares")
FORMAT = "meganet-run"
FORMAT_VERSION = 1

_SPEC_KEYS = ("network", "opening", "n_inputs", "width", "n_steps", "final_time", "activation", "gamma", "loss",
              "n_outputs", "dtype")


# ---------------------------------------------------------------------------- model specification
def model_spec(*, network="antisym", opening="dense", n_inputs=2, width=8, n_steps=16, final_time=5.0,
               activation="tanh", gamma=0.0, loss="softmax", n_outputs=5, dtype="float64"):
    """A validated model specification (a plain dict, see the module docstring).

    Parameters
    ----------
    network : {'antisym', 'verlet', 'resnet', 'leapfrog'}
        :class:`~meganet.integrators.AntisymmetricResNet` (H&R 2017 eq. 4.12),
        :class:`~meganet.integrators.HamiltonianVerlet` (eq. 4.15/4.17, ``n_y = ⌈width/2⌉``),
        :class:`~meganet.integrators.ResNet` of a dense single layer,
        :class:`~meganet.integrators.Leapfrog` (eq. 4.16).
    opening : {'dense', 'pad'}
        ``'dense'``: a trainable layer ``tanh(K Y + b)``, ``K`` of shape
        ``(width, n_inputs)``, before the block; ``'pad'``: the input is padded
        with zeros to the width (Meganet.m's swiss-roll example) and the block
        sees it directly.
    n_inputs, width, n_steps : int
    final_time : float
        ``T``; the step size is ``T / n_steps``.
    activation : str
        Activation name (``'tanh'``, ``'relu'``, ...).
    gamma : float
        Shift ``γ ≥ 0`` of the antisymmetric ResNet (ignored by the others).
    loss : {'softmax', 'least_squares'}
        Softmax cross-entropy (classification) or least squares (regression).
    n_outputs : int
        Classes or regression outputs.
    dtype : {'float64', 'float32'}
    """
    spec = dict(
        network=check_option("network", network, NETWORKS),
        opening=check_option("opening", opening, OPENINGS),
        n_inputs=check_int("n_inputs", n_inputs, minimum=1),
        width=check_int("width", width, minimum=1),
        n_steps=check_int("n_steps", n_steps, minimum=1),
        final_time=check_positive("final_time", final_time),
        activation=str(activation),
        gamma=check_nonnegative("gamma", gamma),
        loss=check_option("loss", loss, LOSSES),
        n_outputs=check_int("n_outputs", n_outputs, minimum=1),
        dtype=check_option("dtype", str(np.dtype(dtype)), ("float64", "float32")),
    )
    if spec["opening"] == "pad" and spec["width"] < spec["n_inputs"]:
        raise ValueError(f"width must be >= n_inputs = {spec['n_inputs']} to pad the input, got {spec['width']}")
    if spec["network"] == "verlet" and spec["width"] < 2:
        raise ValueError(f"width must be >= 2 for the Verlet network (y and z parts), got {spec['width']}")
    if spec["loss"] == "softmax" and spec["n_outputs"] < 2:
        raise ValueError(f"n_outputs must be >= 2 classes for the softmax loss, got {spec['n_outputs']}")
    return spec


def _block(spec):
    from .integrators import AntisymmetricResNet, HamiltonianVerlet, Leapfrog, ResNet
    from .layers import SingleLayer
    from .transforms import Dense

    n, N, T, act = spec["width"], spec["n_steps"], spec["final_time"], spec["activation"]
    kind = spec["network"]
    if kind == "antisym":
        return AntisymmetricResNet(n, n_steps=N, final_time=T, gamma=spec["gamma"], activation=act)
    if kind == "verlet":
        n_y = (n + 1) // 2
        return HamiltonianVerlet(n_y, n - n_y, n_steps=N, final_time=T, activation=act, bias="vector")
    if kind == "resnet":
        return ResNet(SingleLayer(Dense(n, n), activation=act), n_steps=N, final_time=T)
    return Leapfrog(n, n_steps=N, final_time=T, activation=act)


@dataclass
class Model:
    """A network, its loss and the input embedding, built from a specification.

    Attributes
    ----------
    spec : dict
        From :func:`model_spec`.
    network : Element
        ``Meganet([opening, block])`` (``opening='dense'``) or the block (``'pad'``).
    loss : Loss
        On the network output (``SoftmaxCrossEntropy`` or ``LeastSquares``).
    """

    spec: dict
    network: object
    loss: object

    @property
    def dtype(self):
        return np.dtype(self.spec["dtype"])

    @property
    def block(self):
        """The time-stepping block."""
        return self.network.elements[-1] if self.spec["opening"] == "dense" else self.network

    def features(self, Y):
        """Embed raw inputs ``(n, n_inputs)`` into the network input ``(n, network.shape_in)`` (dtype of the model)."""
        Y = np.asarray(Y)
        if Y.ndim != 2 or Y.shape[1] != self.spec["n_inputs"]:
            raise ValueError(f"Y must have shape (n_examples, {self.spec['n_inputs']}), got {Y.shape}")
        Y = Y.astype(self.dtype, copy=False)
        if self.spec["opening"] == "pad" and self.spec["width"] > Y.shape[1]:
            Y = np.hstack([Y, np.zeros((Y.shape[0], self.spec["width"] - Y.shape[1]), dtype=self.dtype)])
        return Y

    def output(self, theta, Y):
        """Network output ``F(θ, embed(Y))``, shape ``(n, width)``."""
        return self.network(np.asarray(theta, dtype=self.dtype), self.features(Y))

    def predict(self, theta, w, Y):
        """Class indices (softmax) or model outputs ``W F + μ`` (least squares)."""
        return self.loss.predict(self.output(theta, Y), np.asarray(w, dtype=self.dtype))

    def init_w(self, *, rng=None):
        return self.loss.init_w(rng=rng, dtype=self.dtype)


def build_model(spec):
    """Build the :class:`Model` of a specification (a dict as from :func:`model_spec`)."""
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a dict (see meganet.report.model_spec), got {type(spec).__name__}")
    missing = [k for k in _SPEC_KEYS if k not in spec]
    if missing:
        raise ValueError(f"model specification lacks the key(s) {missing}; expected {list(_SPEC_KEYS)}")
    spec = model_spec(**{k: spec[k] for k in _SPEC_KEYS})
    from .layers import SingleLayer
    from .losses import LeastSquares, SoftmaxCrossEntropy
    from .networks import Meganet
    from .transforms import Dense

    block = _block(spec)
    if spec["opening"] == "dense":
        opening = SingleLayer(Dense(spec["n_inputs"], spec["width"]), activation=spec["activation"])
        network = Meganet([opening, block], names=["opening", "block"])
    else:
        network = block
    cls = SoftmaxCrossEntropy if spec["loss"] == "softmax" else LeastSquares
    return Model(spec=spec, network=network, loss=cls(spec["width"], spec["n_outputs"]))


# ---------------------------------------------------------------------------- JSON helpers
def to_jsonable(obj):
    """Python scalars/lists/dicts for ``json`` (numpy scalars and arrays converted,
    non-finite floats → ``None`` so the files are strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "value") and isinstance(getattr(obj, "value"), str):  # enums such as Status
        return obj.value
    return str(obj)


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(to_jsonable(obj), fh, indent=2, allow_nan=False)
        fh.write("\n")


def _read_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _write_csv(path, columns):
    import csv

    names = list(columns)
    n = max((len(v) for v in columns.values()), default=0)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(names)
        for i in range(n):
            row = []
            for c in names:
                col = columns[c]
                v = col[i] if i < len(col) else None
                if v is None or (isinstance(v, float) and not math.isfinite(v)):
                    row.append("" if v is None else str(v))
                else:
                    row.append(v)
            writer.writerow(row)


# ---------------------------------------------------------------------------- atomic folders
def unique_path(path):
    """``path`` if nothing exists there, else ``path-1``, ``path-2``, … (the first free one)."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        return path
    k = 1
    while os.path.lexists(f"{path}-{k}"):
        k += 1
    return f"{path}-{k}"


@contextlib.contextmanager
def atomic_folder(path, *, overwrite=False):
    """Context manager: yield a temporary sibling folder, rename it to ``path`` on success.

    On an exception (including ``KeyboardInterrupt``) the temporary folder is
    removed and nothing appears at ``path``; an existing folder at ``path`` is
    left untouched.  With ``overwrite=True`` an existing folder is moved aside,
    the new one renamed into place, then the old one deleted (if the rename
    fails the old folder is restored).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false (checked before and after writing).
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if not name:
        raise ValueError(f"path must name a folder, got {path!r}")
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"report folder {path!r} already exists; choose another --out or pass --overwrite")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path!r} exists and is not a folder; refusing to replace it")
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    try:
        yield tmp
        _commit(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp, path, overwrite):
    if not os.path.lexists(path):
        try:
            os.rename(tmp, path)  # atomic; fails if a non-empty folder appeared meanwhile
            return
        except OSError:
            if not overwrite or not os.path.lexists(path):
                raise FileExistsError(f"report folder {path!r} appeared while the report was written; "
                                      "choose another --out or pass --overwrite") from None
    if not overwrite:
        raise FileExistsError(f"report folder {path!r} already exists; choose another --out or pass --overwrite")
    parent, name = os.path.split(path)
    old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
    os.rmdir(old)
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------- save / load
def _history_columns(history):
    if history is None:
        return {}
    if hasattr(history, "to_dict"):
        return history.to_dict()
    if isinstance(history, dict):
        return {k: list(v) for k, v in history.items()}
    rows = list(history)
    names = []
    for r in rows:
        for k in r:
            if k not in names:
                names.append(k)
    return {k: [r.get(k) for r in rows] for k in names}


def save_run(path, *, model, theta, w, history=None, summary=None, data=None, plots=True, overwrite=False):
    """Write a complete report folder atomically (see the module docstring).

    Parameters
    ----------
    path : str or path-like
        The report folder (must not exist unless ``overwrite``).
    model : Model
    theta : array, shape (model.network.n_theta,)
    w : array, shape (model.loss.n_w,)
    history : History, dict of columns or list of rows, optional
    summary : dict, optional
        Written as ``summary.json`` (``files`` and ``plots`` entries are added).
    data : Dataset, optional
        Saved as ``data.npz`` and drawn in the decision-region plot.
    plots : bool
        Draw ``decision_regions.png`` (2-D classification with data) and
        ``convergence.png``.  Without matplotlib the plots are skipped and
        ``summary["plots"]`` says so.
    overwrite : bool

    Returns
    -------
    str
        The absolute path of the folder.
    """
    theta = np.asarray(theta)
    w = np.asarray(w)
    if theta.shape != (model.network.n_theta,):
        raise ValueError(f"theta must have shape ({model.network.n_theta},) for this model, got {theta.shape}")
    if w.shape != (model.loss.n_w,):
        raise ValueError(f"w must have shape ({model.loss.n_w},) for this model, got {w.shape}")
    summary = dict(summary or {})
    columns = _history_columns(history)
    path = os.path.abspath(os.fspath(path))
    with atomic_folder(path, overwrite=overwrite) as tmp:
        files = ["model.json", "params.npz"]
        _write_json(os.path.join(tmp, "model.json"),
                    {"format": FORMAT, "format_version": FORMAT_VERSION, "spec": model.spec,
                     "n_theta": model.network.n_theta, "n_w": model.loss.n_w})
        np.savez(os.path.join(tmp, "params.npz"), theta=theta, w=w)
        if columns:
            _write_csv(os.path.join(tmp, "history.csv"), columns)
            _write_json(os.path.join(tmp, "history.json"), columns)
            files += ["history.csv", "history.json"]
        if data is not None:
            np.savez(os.path.join(tmp, "data.npz"), Y_train=data.Y_train, C_train=data.C_train, Y_val=data.Y_val,
                     C_val=data.C_val, n_classes=data.n_classes, name=data.name)
            files.append("data.npz")
        plot_note = "not requested"
        if plots:
            plot_note, made = _plots(tmp, model, theta, w, columns, data, summary)
            files += made
        summary["plots"] = plot_note
        summary["files"] = files + ["summary.json"]
        _write_json(os.path.join(tmp, "summary.json"), summary)
    return path


def _plots(folder, model, theta, w, columns, data, summary):
    try:
        from .plotting import require_matplotlib

        require_matplotlib()
    except ImportError as err:
        return f"skipped: {err}", []
    from .plotting import convergence, decision_regions

    made = []
    if data is not None and model.spec["loss"] == "softmax" and model.spec["n_inputs"] == 2:
        Y = np.concatenate([data.Y_train, data.Y_val])
        C = np.concatenate([data.C_train, data.C_val])
        acc = summary.get("val_accuracy")
        title = f"{data.name}: {model.spec['network']}, N = {model.spec['n_steps']}"
        if isinstance(acc, float) and math.isfinite(acc):
            title += f", validation accuracy {100 * acc:.2f} %"
        lo, hi = Y.min(axis=0), Y.max(axis=0)
        pad = 0.05 * np.maximum(hi - lo, 1e-12)
        bounds = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
        decision_regions(lambda P: model.predict(theta, w, P), data.Y_val, data.C_val, n_classes=data.n_classes,
                         bounds=bounds, title=title, path=os.path.join(folder, "decision_regions.png"))
        made.append("decision_regions.png")
    if columns and "f" in columns and "work_units" in columns:
        metric = "val_accuracy" if "val_accuracy" in columns else ("val_loss" if "val_loss" in columns else "none")
        convergence(columns, loss="f", metric=metric, path=os.path.join(folder, "convergence.png"),
                    title=summary.get("title"))
        made.append("convergence.png")
    return "written", made


@dataclass
class Run:
    """A report folder loaded back: the model, its weights and the records.

    Attributes
    ----------
    path : str
    model : Model
    theta, w : numpy arrays
    summary : dict
    history : dict of columns (empty if the run had none)
    """

    path: str
    model: Model
    theta: np.ndarray
    w: np.ndarray
    summary: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)

    @property
    def network(self):
        return self.model.network

    @property
    def loss(self):
        return self.model.loss

    @property
    def spec(self):
        return self.model.spec

    def output(self, Y):
        """Network output for raw inputs ``Y`` of shape ``(n, n_inputs)``."""
        return self.model.output(self.theta, Y)

    def predict(self, Y):
        """Predicted classes (classification) or model outputs (regression) for raw inputs ``Y``."""
        return self.model.predict(self.theta, self.w, Y)

    def accuracy(self, Y, C):
        """Fraction of ``Y`` classified as ``C`` (class indices)."""
        return float(np.mean(self.predict(Y) == np.asarray(C)))

    def load_data(self):
        """The :class:`~meganet.data.Dataset` saved with the run (``FileNotFoundError`` if none)."""
        from .data import Dataset

        with np.load(os.path.join(self.path, "data.npz")) as z:
            return Dataset(z["Y_train"], z["C_train"], z["Y_val"], z["C_val"], int(z["n_classes"]), str(z["name"]))


def load_run(path):
    """Load a report folder written by :func:`save_run` (e.g. by ``meganet train``).

    Returns
    -------
    Run
        ``run.predict(Y)`` classifies raw inputs with the saved network.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a report folder (``model.json`` or ``params.npz`` missing).
    ValueError
        The folder has another format or its parameters do not fit the model.
    """
    path = os.path.abspath(os.fspath(path))
    for f in ("model.json", "params.npz"):
        if not os.path.isfile(os.path.join(path, f)):
            raise FileNotFoundError(f"{path!r} is not a meganet report folder: {f} is missing")
    meta = _read_json(os.path.join(path, "model.json"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}/model.json has format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}/model.json has format_version {meta.get('format_version')!r}; this meganet "
                         f"reads version {FORMAT_VERSION}")
    model = build_model(meta["spec"])
    with np.load(os.path.join(path, "params.npz")) as z:
        theta, w = z["theta"], z["w"]
    if theta.shape != (model.network.n_theta,) or w.shape != (model.loss.n_w,):
        raise ValueError(f"params.npz holds theta {theta.shape} and w {w.shape}, but the model in model.json needs "
                         f"({model.network.n_theta},) and ({model.loss.n_w},)")
    spath = os.path.join(path, "summary.json")
    summary = _read_json(spath) if os.path.isfile(spath) else {}
    hpath = os.path.join(path, "history.json")
    history = _read_json(hpath) if os.path.isfile(hpath) else {}
    return Run(path=path, model=model, theta=theta, w=w, summary=summary, history=history)
