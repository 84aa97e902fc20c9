"""Report folders of training runs: written atomically, loaded back into a working model.

A report folder holds everything needed to inspect and reuse a trained network::

    model.json        the model specification (network, loss, input embedding) and format version
    params.npz        theta (network weights) and w (classifier weights), float64 or float32
    history.csv/json  the per-iteration table of all levels (loss, |g|, work units, time, validation metrics)
    summary.json      final loss, accuracies, wall time, work units, solver status and message, options
    data.npz          training, validation (and test) data the run used (optional)
    *.png             decision regions with the data (2-D classification) or predicted against true
                      observables (regression), convergence plot (when matplotlib is installed)

:func:`save_run` writes into a hidden sibling folder and renames it into
place (``os.rename`` of a directory is atomic on POSIX), so an interrupted or
failing write never leaves a half-written result; an existing folder is only
replaced with ``overwrite=True`` and only if it is a meganet report folder (the
old folder is moved aside first and deleted only after the new one is in
place; see :mod:`meganet._folders` for the exact rules and the clean-up of
folders left by killed processes).  :func:`load_run` rebuilds the network and
loss from ``model.json`` and returns a :class:`Run` that predicts; it checks
every file before use and names the file in every error.

The model specification (:func:`model_spec`) is a small JSON-able dict::

    {"network": "antisym" | "verlet" | "resnet" | "leapfrog" | "antisym_rk4",
     "opening": "dense" | "pad",       # 2-D input → width: trainable tanh layer, or zero padding
     "n_inputs": 2, "width": 8, "n_steps": 16, "final_time": 5.0,
     "activation": "tanh", "gamma": 0.01,
     "loss": "softmax" | "least_squares", "n_outputs": 5, "dtype": "float64"}
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ._folders import FORMAT, atomic_folder, is_partial_folder, unique_path
from .core.validation import check_int, check_nonnegative, check_option, check_positive

__all__ = [
    "NETWORKS", "OPENINGS", "LOSSES", "FORMAT", "FORMAT_VERSION",
    "model_spec", "build_model", "Model", "atomic_folder", "unique_path", "save_run", "load_run", "Run",
    "ReportError", "to_jsonable", "MAX_PARAMS", "MAX_STEPS",
]

#: Time-stepping blocks a report can hold (names used by the command line).
NETWORKS = ("antisym", "verlet", "resnet", "leapfrog", "antisym_rk4")
#: How the input is embedded into the network width.
OPENINGS = ("dense", "pad")
#: Losses on the network output.
LOSSES = ("softmax", "least_squares")
FORMAT_VERSION = 1
#: Largest model :func:`load_run` builds from a ``model.json`` (estimated parameter count, and steps);
#: larger ones are refused before anything is allocated (pass ``max_params`` to raise the bound).
MAX_PARAMS = 50_000_000
MAX_STEPS = 8192

_SPEC_KEYS = ("network", "opening", "n_inputs", "width", "n_steps", "final_time", "activation", "gamma", "loss",
              "n_outputs", "dtype")


# ---------------------------------------------------------------------------- model specification
def model_spec(*, network="antisym", opening="dense", n_inputs=2, width=8, n_steps=16, final_time=5.0,
               activation="tanh", gamma=0.0, loss="softmax", n_outputs=5, dtype="float64"):
    """A validated model specification (a plain dict, see the module docstring).

    Parameters
    ----------
    network : {'antisym', 'verlet', 'resnet', 'leapfrog', 'antisym_rk4'}
        :class:`~meganet.integrators.AntisymmetricResNet` (H&R 2017 eq. 4.12),
        :class:`~meganet.integrators.HamiltonianVerlet` (eq. 4.15/4.17, ``n_y = ⌈width/2⌉``),
        :class:`~meganet.integrators.ResNet` of a dense single layer,
        :class:`~meganet.integrators.Leapfrog` (eq. 4.16),
        ``'antisym_rk4'``: the network of the GNvpro experiments (Newman, Ruthotto,
        Hart & van Bloemen Waanders 2020, slides "Numerical Experiments DNN
        Setup"), :class:`~meganet.integrators.RK4ResNet` of the antisymmetric
        layer ``σ((K − Kᵀ − γI)u + b)`` (no ½; the slides use γ = 1e-4), one
        weight set per step (the slides put the weights on the nodes of an
        equidistant grid and interpolate linearly; here they are piecewise
        constant in time, and multilevel training interpolates them linearly).
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
        Shift ``γ ≥ 0`` of the antisymmetric networks (ignored by the others).
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
    from .integrators import AntisymmetricResNet, HamiltonianVerlet, Leapfrog, ResNet, RK4ResNet
    from .layers import SingleLayer
    from .transforms import AntisymmetricDense, Dense

    n, N, T, act = spec["width"], spec["n_steps"], spec["final_time"], spec["activation"]
    kind = spec["network"]
    if kind == "antisym":
        return AntisymmetricResNet(n, n_steps=N, final_time=T, gamma=spec["gamma"], activation=act)
    if kind == "verlet":
        n_y = (n + 1) // 2
        return HamiltonianVerlet(n_y, n - n_y, n_steps=N, final_time=T, activation=act, bias="vector")
    if kind == "resnet":
        return ResNet(SingleLayer(Dense(n, n), activation=act), n_steps=N, final_time=T)
    if kind == "antisym_rk4":
        layer = SingleLayer(AntisymmetricDense(n, gamma=spec["gamma"], scale=1.0), activation=act)
        return RK4ResNet(layer, n_steps=N, final_time=T)
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
        The report folder (must not exist unless ``overwrite``; even then only
        an existing meganet report folder is replaced, anything else raises
        ``FileExistsError``).
    model : Model
    theta : array, shape (model.network.n_theta,)
    w : array, shape (model.loss.n_w,)
    history : History, dict of columns or list of rows, optional
    summary : dict, optional
        Written as ``summary.json`` (``files`` and ``plots`` entries are added).
    data : Dataset or SurrogateDataset, optional
        Saved as ``data.npz`` (with the test set and the target offset
        ``c_mean`` when it has them) and drawn in the decision-region plot.
    plots : bool
        Draw ``decision_regions.png`` (2-D classification with data),
        ``predicted_vs_true.png`` (least squares with data: four validation
        samples) and ``convergence.png``.  Without matplotlib the plots are skipped and
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
            extra = {k: getattr(data, k) for k in ("Y_test", "C_test", "c_mean") if getattr(data, k, None) is not None}
            n_out = data.n_classes if hasattr(data, "n_classes") else data.n_outputs  # classes or regression outputs
            np.savez(os.path.join(tmp, "data.npz"), Y_train=data.Y_train, C_train=data.C_train, Y_val=data.Y_val,
                     C_val=data.C_val, n_classes=n_out, name=data.name, **extra)
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
    from .plotting import convergence, decision_regions, predicted_vs_true

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
    if data is not None and model.spec["loss"] == "least_squares" and len(data.Y_val):
        pred = model.predict(theta, w, data.Y_val)
        predicted_vs_true(data.C_val, pred, n_samples=4, offset=getattr(data, "c_mean", None),
                          path=os.path.join(folder, "predicted_vs_true.png"),
                          title=f"{data.name}: validation samples, true and predicted observables")
        made.append("predicted_vs_true.png")
    if columns and "f" in columns and "work_units" in columns:
        metric = next((m for m in ("val_accuracy", "val_rel_error", "val_loss") if m in columns), "none")
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
        ``{}`` if ``summary.json`` is missing or damaged (see ``problems``).
    history : dict of columns
        ``{}`` if the run had none or ``history.json`` is damaged.
    problems : list of str
        Damaged optional files that were skipped (each names the file and what is wrong).
    """

    path: str
    model: Model
    theta: np.ndarray
    w: np.ndarray
    summary: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

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
        """The :class:`~meganet.data.Dataset` saved with the run.

        Raises ``FileNotFoundError`` if the run has no ``data.npz`` and ``ValueError`` (naming the
        file) if it is damaged.
        """
        from .data import Dataset

        fname = os.path.join(self.path, "data.npz")
        if not os.path.isfile(fname):
            raise FileNotFoundError(f"{fname}: the run was saved without its data (no data.npz)")
        names = ("Y_train", "C_train", "Y_val", "C_val", "n_classes", "name")
        arrays = _read_npz(fname, names)
        return Dataset(arrays["Y_train"], arrays["C_train"], arrays["Y_val"], arrays["C_val"],
                       int(arrays["n_classes"]), str(arrays["name"]))


class ReportError(ValueError):
    """A report folder (or one of its files) cannot be loaded; the message names the file."""


def _read_json_file(fname):
    try:
        with open(fname, "rb") as fh:
            raw = fh.read()
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ReportError(f"{fname}: not UTF-8 text ({err.reason} at byte {err.start}); the file is damaged") from None
    except ValueError as err:
        raise ReportError(f"{fname}: not valid JSON ({err}); the file is damaged") from None
    except OSError as err:
        raise ReportError(f"{fname}: cannot be read ({err.strerror or err})") from None


def _npy_header(zf, member, fname):
    """``(shape, dtype)`` of ``member`` in an open .npz, read from its header only (nothing allocated)."""
    try:
        with zf.open(member) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise ReportError(f"{fname}: the array {member[:-4]!r} is damaged ({err})") from None
    return shape, dtype


def _read_npz(fname, names, *, expect=None):
    """Arrays ``names`` of the .npz ``fname``, never unpickling; ``expect`` maps a name to the
    required shape, checked from the header before the array is read."""
    if not zipfile.is_zipfile(fname):
        raise ReportError(f"{fname}: not a .npz archive (a zip file of .npy arrays); the file is damaged")
    try:
        with zipfile.ZipFile(fname) as zf:
            members = set(zf.namelist())
            missing = [n for n in names if n + ".npy" not in members]
            if missing:
                raise ReportError(f"{fname}: lacks the array(s) {missing}; it holds {sorted(m[:-4] for m in members)}")
            for n, shape in (expect or {}).items():
                got_shape, dtype = _npy_header(zf, n + ".npy", fname)
                if dtype.kind != "f" or dtype.itemsize not in (4, 8):
                    raise ReportError(f"{fname}: {n} has dtype {dtype}; expected float32 or float64")
                if tuple(got_shape) != tuple(shape):
                    raise ReportError(f"{fname}: {n} has shape {tuple(got_shape)}, but the model in model.json needs "
                                      f"{tuple(shape)}")
        with np.load(fname, allow_pickle=False) as z:
            return {n: z[n] for n in names}
    except ReportError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as err:
        raise ReportError(f"{fname}: cannot be read ({type(err).__name__}: {err}); the file is damaged") from None


def _estimated_params(spec):
    """An upper bound of ``n_theta + n_w`` computed from the specification alone."""
    n, N = spec["width"], spec["n_steps"]
    opening = (spec["n_inputs"] + 1) * n if spec["opening"] == "dense" else 0
    return N * (n * n + 2 * n) + opening + (n + 1) * spec["n_outputs"]


def _load_spec(fname, meta, max_params):
    if not isinstance(meta, dict):
        raise ReportError(f"{fname}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise ReportError(f"{fname}: format {meta.get('format')!r}, expected {FORMAT!r}; not a meganet report")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ReportError(f"{fname}: format_version {meta.get('format_version')!r}; this meganet reads version "
                          f"{FORMAT_VERSION}")
    spec = meta.get("spec")
    if not isinstance(spec, dict):
        raise ReportError(f"{fname}: lacks the model specification 'spec' (a JSON object)")
    missing = [k for k in _SPEC_KEYS if k not in spec]
    if missing:
        raise ReportError(f"{fname}: the specification lacks the key(s) {missing}; expected {list(_SPEC_KEYS)}")
    try:
        spec = model_spec(**{k: spec[k] for k in _SPEC_KEYS})
    except (TypeError, ValueError) as err:
        raise ReportError(f"{fname}: invalid model specification: {err}") from None
    if spec["n_steps"] > MAX_STEPS:
        raise ReportError(f"{fname}: n_steps = {spec['n_steps']} exceeds the bound {MAX_STEPS} of load_run; "
                          "the file is damaged or not from meganet")
    size = _estimated_params(spec)
    if size > max_params:
        raise ReportError(f"{fname}: the model would have about {size} parameters, more than max_params = "
                          f"{max_params}; pass a larger max_params if the report is genuine")
    return spec


def load_run(path, *, max_params=MAX_PARAMS):
    """Load a report folder written by :func:`save_run` (e.g. by ``meganet train``).

    ``model.json`` and ``params.npz`` are required and checked before anything large is allocated
    (the specification is bounded by ``max_params`` and :data:`MAX_STEPS`; the arrays' dtype and
    shape are read from their headers; nothing is unpickled).  ``summary.json`` and
    ``history.json`` are optional: a damaged one is skipped with a warning and listed in
    ``run.problems``, so an intact model always loads.

    Returns
    -------
    Run
        ``run.predict(Y)`` classifies raw inputs with the saved network.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a folder, or ``model.json`` / ``params.npz`` is missing.
    ReportError (a ValueError)
        The folder is the partial folder of an interrupted save, or a required file is damaged,
        of another format, too large, or its parameters are not finite floats of the model's size.
        The message names the file and what is wrong.
    """
    import warnings

    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path!r} is not a folder (expected a meganet report folder)")
    if is_partial_folder(path):
        raise ReportError(f"{path!r} is the partial folder of an interrupted save (it may be incomplete); it cannot "
                          "be loaded. The next run into the same parent folder removes it when its process has ended")
    for f in ("model.json", "params.npz"):
        if not os.path.isfile(os.path.join(path, f)):
            raise FileNotFoundError(f"{path!r} is not a meganet report folder: {f} is missing")
    mname = os.path.join(path, "model.json")
    spec = _load_spec(mname, _read_json_file(mname), max_params)
    model = build_model(spec)
    pname = os.path.join(path, "params.npz")
    arrays = _read_npz(pname, ("theta", "w"), expect={"theta": (model.network.n_theta,), "w": (model.loss.n_w,)})
    for k, v in arrays.items():
        if not np.all(np.isfinite(v)):
            raise ReportError(f"{pname}: {k} holds NaN or Inf values; the parameters are unusable")
    theta, w = (arrays[k].astype(model.dtype, copy=False) for k in ("theta", "w"))
    problems, records = [], {}
    for key, f in (("summary", "summary.json"), ("history", "history.json")):
        fname = os.path.join(path, f)
        records[key] = {}
        if not os.path.isfile(fname):
            continue
        try:
            value = _read_json_file(fname)
            if not isinstance(value, dict):
                raise ReportError(f"{fname}: expected a JSON object, got {type(value).__name__}")
            records[key] = value
        except ReportError as err:
            problems.append(str(err))
            warnings.warn(f"{err}; loading the model without it", stacklevel=2)
    return Run(path=path, model=model, theta=theta, w=w, summary=records["summary"], history=records["history"],
               problems=problems)
