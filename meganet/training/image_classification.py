r"""Image classification with the training recipe of Ruthotto & Haber, JMIV 2019, §5.

SGD with momentum 0.9 on mini-batches of 125 images, a piecewise-constant
learning rate (0.1, divided by 5 at fixed epochs), weight decay and the time
regularizer of eq. (13), the box constraint ``−1 ≤ θ⁽¹⁾ ≤ 1`` (§4), random flips
and crops as augmentation, validation after every epoch with the weights that
did best on the validation set kept (Table 1: "We evaluate the performance using
the weights with the best classification accuracy on the validation set").

The loop (Meganet.m ``sgd.m`` with ``dnnBatchObjFctn``), per mini-batch ``B``::

    Y_B  = augment(images of B)                      (new random flips / crops)
    g    = ∇_x [ L(W F(θ, Y_B) + μ, C_B) + R(θ) + S(w) ]     x = (θ, w)
    v    = m v + g ;  x = P_box(x − lr(epoch) v)

with training-mode batch statistics inside the network and the running
statistics of :class:`~meganet.normalization.BatchNorm` updated on every batch;
validation and test use inference mode (running statistics) and run in chunks
of ``eval_batch_size`` examples (Meganet.m ``forwardPropBatch``), so memory does
not grow with the data set.

Long runs are checkpointed after every epoch (written atomically: a temporary
file in the same folder, then ``os.replace``): a run killed during epoch ``k``
and started again with the same arguments resumes at epoch ``k`` from the state
after epoch ``k − 1`` (parameters, momentum, running statistics, best weights,
history and the random generator), and gives the same result as an
uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from ..backend import get_array_module, to_numpy
from ..core.element import Element
from ..core.validation import check_bool, check_int
from ..losses.base import Loss
from ..optimizers.result import History
from ..optimizers.sgd import LearningRateSchedule, check_schedule, schedule_text
from ..regularizers.base import Regularizer

__all__ = ["ImageTrainResult", "evaluate_classifier", "train_image_classifier", "jmiv_learning_rate"]

_CHECKPOINT_VERSION = 1


def jmiv_learning_rate(epochs=(60, 20, 20), rates=(0.1, 0.02, 0.004)):
    """The piecewise-constant learning rate of JMIV 2019 §5 as a schedule.

    STL-10 and CIFAR-10: 60, 20 and 20 epochs at 0.1, 0.02, 0.004 (the defaults);
    CIFAR-100: epochs ``(60, 40, 40, 40, 20)`` at ``(0.1, 0.02, 0.004, 0.0008, 0.00016)``.

    Returns
    -------
    schedule : LearningRateSchedule
        ``schedule(epoch)`` for epochs counted from 0; ``schedule.n_epochs`` is ``sum(epochs)``.
    """
    epochs = [check_int("epochs[i]", e, minimum=1) for e in epochs]
    rates = [float(r) for r in rates]
    if len(epochs) != len(rates):
        raise ValueError(f"epochs and rates must have the same length, got {len(epochs)} and {len(rates)}")
    if not all(math.isfinite(r) and r > 0 for r in rates):
        raise ValueError(f"rates must be positive and finite, got {rates}")
    return _Piecewise(epochs, rates)


class _Piecewise(LearningRateSchedule):
    def __init__(self, epochs, rates):
        self.epochs, self.rates = list(epochs), list(rates)
        self.n_epochs = sum(self.epochs)

    def __call__(self, epoch):
        end = 0
        for e, r in zip(self.epochs, self.rates):
            end += e
            if epoch < end:
                return r
        return self.rates[-1]

    def __repr__(self):
        return f"jmiv_learning_rate(epochs={tuple(self.epochs)}, rates={tuple(self.rates)})"


@dataclass
class ImageTrainResult:
    """The outcome of :func:`train_image_classifier`.

    Attributes
    ----------
    status : str
        ``'completed'`` (all epochs), ``'non_finite'`` (a mini-batch loss or gradient
        was NaN/Inf: training stopped, ``x`` is the state after the last good epoch)
        or ``'max_epochs_per_call'`` (stopped early on request; resume to go on).
    message : str
    x : array, shape (n_theta + n_w,)
        ``(θ, w)`` after the last completed epoch.
    best_x : array, shape (n_theta + n_w,)
        The weights with the best validation accuracy (the ones to report).
    best_epoch : int
        Epoch (1-based) of ``best_x``; 0 means the initial weights.
    best_val_accuracy : float
    history : History
        One row per epoch: ``epoch, lr, train_loss, train_accuracy`` (running means
        over the epoch's augmented mini-batches), ``val_loss, val_accuracy``,
        ``epoch_time`` (s), ``images_per_second`` (training only), ``best``.
    test : dict or None
        ``loss``, ``accuracy``, ``n_examples`` of ``best_x`` on the test set.
    running_statistics : dict
        The batch-normalization running statistics belonging to ``best_x``.
    epochs_run : int
        Epochs completed in all calls together.
    resumed_from : int or None
        The epoch the checkpoint held when this call started.
    n_theta : int
    wall_time : float
        Seconds of this call.
    """

    status: str
    message: str
    x: object
    best_x: object
    best_epoch: int
    best_val_accuracy: float
    history: History
    test: dict | None
    running_statistics: dict
    epochs_run: int
    resumed_from: int | None
    n_theta: int
    wall_time: float
    info: dict = field(default_factory=dict)

    @property
    def theta(self):
        """θ of ``best_x``."""
        return self.best_x[:self.n_theta]

    @property
    def w(self):
        """Classifier weights of ``best_x``."""
        return self.best_x[self.n_theta:]

    @property
    def success(self):
        return self.status == "completed"


def evaluate_classifier(network, loss, theta, w, X, y, *, batch_size=1000):
    """Loss and accuracy of ``(θ, w)`` on ``(X, y)``, in chunks of ``batch_size`` examples
    (Meganet.m ``forwardPropBatch``): memory is that of one chunk's output.

    The network is evaluated as it stands (call
    :func:`~meganet.normalization.set_training` ``(network, False)`` first for
    inference-mode batch normalization).

    Parameters
    ----------
    network : Element
    loss : Loss
    theta : array, shape (network.n_theta,)
    w : array, shape (loss.n_w,)
    X : array, shape (n, *network.shape_in)
    y : array of int, shape (n,)
    batch_size : int

    Returns
    -------
    dict
        ``loss`` (mean cross entropy), ``accuracy`` (fraction correct), ``n_examples``.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    n = int(X.shape[0])
    if n == 0:
        raise ValueError("X holds 0 examples: loss and accuracy are means over examples and need at least one")
    if y.shape[0] != n:
        raise ValueError(f"y must hold one label per example of X ({n}), got {y.shape[0]}")
    total_loss = total_correct = 0.0
    for a in range(0, n, batch_size):
        Xc, yc = X[a:a + batch_size], y[a:a + batch_size]
        with np.errstate(over="ignore", invalid="ignore"):
            Z = network._apply(theta, Xc)
        m = Xc.shape[0]
        total_loss += float(loss.value(Z, w, yc)) * m
        total_correct += float(loss.accuracy(Z, w, yc)) * m
    return dict(loss=total_loss / n, accuracy=total_correct / n, n_examples=n)


def _bn():
    from ..normalization import mode

    return mode


def _check_box(name, value, n, dtype, xp):
    if value is None:
        return None
    arr = xp.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        arr = xp.full(n, arr, dtype=dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or an array of length n_theta + n_w = {n}, got shape {arr.shape}")
    if bool(xp.isnan(arr).any()):
        raise ValueError(f"{name} contains NaN")
    return arr


def train_image_classifier(network, loss, data, *, n_epochs=None, learning_rate=None, momentum=0.9, batch_size=125,
                           regularizer=None, classifier_regularizer=None, lower=None, upper=None, augment=None,
                           x0=None, seed=0, eval_batch_size=1000, checkpoint=None, resume=True,
                           max_epochs_per_call=None, progress=False, dtype=None, callback=None):
    r"""Train ``network`` and a linear softmax classifier on images by SGD with momentum
    (Ruthotto & Haber, JMIV 2019, §5; see the module docstring for the loop).

    Parameters
    ----------
    network : Element
        Maps ``(n, C, H, W)`` images to features, e.g. :func:`~meganet.networks.jmiv_network`.
    loss : Loss
        Usually :class:`~meganet.losses.SoftmaxCrossEntropy` ``(network.shape_out, n_classes)``.
    data : ImageDataset
        ``X_train, y_train, X_val, y_val`` (and ``X_test, y_test``, may be empty) in the
        network's input shape; the dtype of ``X_train`` is the dtype of training.
    n_epochs : int, optional
        Default: ``learning_rate.n_epochs`` of a :func:`jmiv_learning_rate` schedule, else required.
    learning_rate : float or LearningRateSchedule, default ``jmiv_learning_rate()``
    momentum : float in [0, 1), default 0.9
    batch_size : int, default 125
    regularizer, classifier_regularizer : Regularizer, optional
        ``R(θ)`` (e.g. weight decay and the time regularizer of JMIV eq. 13) and ``S(w)``.
    lower, upper : float or array of shape (n_theta + n_w,), optional
        Box constraint on ``x = (θ, w)`` (use ±inf where unconstrained); JMIV §4 bounds
        the blocks' convolution weights by ±1.
    augment : callable ``(X, rng) -> X``, optional
        A batch transform (:mod:`meganet.data.augment`), applied to every mini-batch.
    x0 : array, optional
        Start; default ``network.init_theta`` and ``loss.init_w`` from ``seed``.
    seed : int
        Seeds the initial weights, the shuffling and the augmentation.
    eval_batch_size : int, default 1000
        Chunk size of validation and test evaluation.
    checkpoint : str or path, optional
        ``.npz`` file written after every epoch; with ``resume=True`` an existing
        checkpoint of the same problem is loaded and training continues after its epoch.
    resume : bool, default True
    max_epochs_per_call : int, optional
        Stop after this many epochs in this call (status ``'max_epochs_per_call'``).
    progress : bool, default False
        Print a progress bar (loss, accuracy, images/s) to stderr and one line per epoch.
    dtype : float32 or float64, optional
        Must equal the data's dtype when given (a guard for scripts).
    callback : callable ``(epoch, row)``, optional
        Called after every epoch with the history row.

    Returns
    -------
    ImageTrainResult
    """
    if not isinstance(network, Element):
        raise TypeError(f"network must be a meganet Element, got {type(network).__name__}")
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a meganet Loss, got {type(loss).__name__}")
    if tuple(network.shape_out) != tuple(loss.shape_in):
        raise ValueError(f"the network's output shape {tuple(network.shape_out)} does not match the loss's input "
                         f"shape {tuple(loss.shape_in)}")
    for name in ("X_train", "y_train", "X_val", "y_val"):
        if not hasattr(data, name):
            raise TypeError(f"data must be an ImageDataset (with X_train, y_train, X_val, y_val), it lacks {name}")
    Xtr, ytr, Xva, yva = data.X_train, data.y_train, data.X_val, data.y_val
    xp = get_array_module(Xtr, names=["data.X_train"])
    shape_in = tuple(network.shape_in)
    for name, X in (("X_train", Xtr), ("X_val", Xva)):
        if X.ndim != 1 + len(shape_in) or tuple(X.shape[1:]) != shape_in:
            raise ValueError(f"data.{name} must have shape (n, {', '.join(map(str, shape_in))}) for this network, "
                             f"got {tuple(X.shape)}")
        if X.dtype != Xtr.dtype:
            raise TypeError(f"data.{name} has dtype {X.dtype}, data.X_train {Xtr.dtype}; use one dtype")
    if Xtr.dtype not in (np.float32, np.float64):
        raise TypeError(f"data.X_train must be float32 or float64, got {Xtr.dtype}")
    if dtype is not None and np.dtype(dtype) != Xtr.dtype:
        raise TypeError(f"dtype={np.dtype(dtype)} but the data are {Xtr.dtype}; convert the data (readers take dtype=)")
    if Xtr.shape[0] == 0 or Xva.shape[0] == 0:
        raise ValueError(f"training and validation sets must be non-empty, got {Xtr.shape[0]} and {Xva.shape[0]}")
    for name, X in (("X_train", Xtr), ("X_val", Xva)):
        if not bool(xp.isfinite(X).all()):
            raise ValueError(f"data.{name} contains NaN or Inf")
    dt = Xtr.dtype
    schedule = check_schedule(0.1 if learning_rate is None and n_epochs is not None else
                              (jmiv_learning_rate() if learning_rate is None else learning_rate))
    if n_epochs is None:
        n_epochs = getattr(schedule, "n_epochs", None)
        if n_epochs is None:
            raise ValueError("n_epochs is required unless learning_rate is a jmiv_learning_rate schedule")
    n_epochs = check_int("n_epochs", n_epochs, minimum=1)
    if not (isinstance(momentum, (int, float)) and not isinstance(momentum, bool) and 0.0 <= momentum < 1.0):
        raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    eval_batch_size = check_int("eval_batch_size", eval_batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    resume, progress = check_bool("resume", resume), check_bool("progress", progress)
    if max_epochs_per_call is not None:
        max_epochs_per_call = check_int("max_epochs_per_call", max_epochs_per_call, minimum=1)
    for name, reg, n in (("regularizer", regularizer, network.n_theta),
                         ("classifier_regularizer", classifier_regularizer, loss.n_w)):
        if reg is not None:
            if not isinstance(reg, Regularizer):
                raise TypeError(f"{name} must be a meganet Regularizer or None, got {type(reg).__name__}")
            if reg.n_theta != n:
                raise ValueError(f"{name} acts on vectors of length {reg.n_theta}, expected {n}")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be a callable (X, rng) -> X or None, got {type(augment).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    n_theta, n_w = network.n_theta, loss.n_w
    n_x = n_theta + n_w
    lo, hi = _check_box("lower", lower, n_x, dt, xp), _check_box("upper", upper, n_x, dt, xp)
    if lo is not None and hi is not None and bool((lo > hi).any()):
        raise ValueError("lower must not exceed upper")
    # labels validated once by the loss
    loss.evaluate(xp.zeros((1, *loss.shape_in), dtype=dt), xp.zeros(n_w, dtype=dt), ytr[:1], need=("value",))
    bn = _bn()

    rng = np.random.default_rng(seed)
    if x0 is None:
        x = xp.concatenate([network.init_theta(rng=rng, dtype=dt, xp=xp), loss.init_w(rng=rng, dtype=dt, xp=xp)])
    else:
        if getattr(x0, "shape", None) != (n_x,) or x0.dtype != dt:
            raise ValueError(f"x0 must be an array of shape ({n_x},) and dtype {dt}, got "
                             f"{getattr(x0, 'shape', None)} {getattr(x0, 'dtype', None)}")
        if not bool(xp.isfinite(x0).all()):
            raise ValueError("x0 contains NaN or Inf")
        x = xp.array(x0, copy=True)
    if lo is not None or hi is not None:
        x = xp.clip(x, lo, hi)
    v = xp.zeros_like(x)
    history = History()
    fingerprint = dict(version=_CHECKPOINT_VERSION, n_theta=n_theta, n_w=n_w, dtype=str(dt),
                       n_train=int(Xtr.shape[0]), n_val=int(Xva.shape[0]), batch_size=batch_size, seed=seed,
                       network=repr(network)[:2000])
    bn.reset_running_statistics(network)
    best_x = x.copy()
    best_epoch, best_acc = 0, -1.0
    best_stats = bn.running_statistics_state(network)
    start_epoch, resumed_from = 0, None
    path = None if checkpoint is None else os.fspath(checkpoint)
    if path is not None and resume and os.path.exists(path):
        ck = _load_checkpoint(path, fingerprint, xp)
        x, v, best_x = ck["x"], ck["v"], ck["best_x"]
        start_epoch = resumed_from = ck["epoch"]
        best_epoch, best_acc = ck["best_epoch"], ck["best_acc"]
        history = History(ck["history"])
        rng.bit_generator.state = ck["rng_state"]
        bn.load_running_statistics(network, ck["stats"])
        best_stats = ck["best_stats"]
    t_call = time.perf_counter()
    n = int(Xtr.shape[0])
    n_batches = -(-n // batch_size)
    status, message = "completed", f"completed {n_epochs} epochs"
    if start_epoch == 0 and best_acc < 0:  # the initial weights are a candidate (epoch 0)
        bn.set_training(network, False)
        m0 = evaluate_classifier(network, loss, x[:n_theta], x[n_theta:], Xva, yva, batch_size=eval_batch_size)
        best_acc = m0["accuracy"]
    epochs_this_call = 0
    epoch = start_epoch
    while epoch < n_epochs:
        if max_epochs_per_call is not None and epochs_this_call >= max_epochs_per_call:
            status, message = "max_epochs_per_call", (f"stopped after {epochs_this_call} epoch(s) as asked "
                                                      f"(max_epochs_per_call); call again to resume at epoch "
                                                      f"{epoch + 1}")
            break
        lr = float(schedule(epoch))
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"the learning-rate schedule returned {lr!r} at epoch {epoch}; it must be positive")
        x_epoch, v_epoch, stats_epoch = x.copy(), v.copy(), bn.running_statistics_state(network)
        rng_epoch = rng.bit_generator.state
        perm = rng.permutation(n)
        bn.set_training(network, True)
        t0 = time.perf_counter()
        sum_loss = sum_acc = 0.0
        bad = None
        for b in range(n_batches):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            if xp is not np:
                idx = xp.asarray(idx)
            Yb, Cb = Xtr[idx], ytr[idx]
            if augment is not None:
                Yb = augment(Yb, rng)
            theta, w = x[:n_theta], x[n_theta:]
            with np.errstate(over="ignore", invalid="ignore"), bn.track_running_statistics(network):
                Z, cache = network._forward(theta, Yb)
            if not bool(xp.isfinite(Z).all()):
                bad = "the network output"
                break
            ev = loss.evaluate(Z, w, Cb)
            with np.errstate(over="ignore", invalid="ignore"):
                g_theta, _ = network._JTmv(ev.grad_Y, theta, Yb, cache, True, False, False)
            g_theta = xp.zeros(n_theta, dtype=dt) if g_theta is None else g_theta
            g_w = ev.grad_w
            f_b = float(ev.value)
            if regularizer is not None:
                g_theta = g_theta + regularizer.gradient(theta)
            if classifier_regularizer is not None:
                g_w = g_w + classifier_regularizer.gradient(w)
            g = xp.concatenate([g_theta, g_w])
            if not (math.isfinite(f_b) and bool(xp.isfinite(g).all())):
                bad = "the mini-batch loss or gradient"
                break
            v = momentum * v + g
            x = x - lr * v
            if lo is not None or hi is not None:
                x = xp.clip(x, lo, hi)
            m = Yb.shape[0]
            sum_loss += f_b * m
            sum_acc += float(loss.accuracy(Z, w, Cb)) * m
            if progress:
                _progress_bar(epoch + 1, n_epochs, b + 1, n_batches, sum_loss, sum_acc,
                              min((b + 1) * batch_size, n), time.perf_counter() - t0)
        if bad is not None:
            x, v = x_epoch, v_epoch
            bn.load_running_statistics(network, stats_epoch)
            rng.bit_generator.state = rng_epoch
            status = "non_finite"
            message = (f"{bad} became NaN/Inf in epoch {epoch + 1} (learning rate {lr:g}); training stopped and "
                       f"x is the state after epoch {epoch}: lower the learning rate or add weight decay / a box")
            if progress:
                print(file=sys.stderr)
            break
        t_train = time.perf_counter() - t0
        bn.set_training(network, False)
        mv = evaluate_classifier(network, loss, x[:n_theta], x[n_theta:], Xva, yva, batch_size=eval_batch_size)
        improved = mv["accuracy"] > best_acc
        if improved:
            best_x, best_epoch, best_acc = x.copy(), epoch + 1, mv["accuracy"]
            best_stats = bn.running_statistics_state(network)
        epoch += 1
        epochs_this_call += 1
        row = dict(epoch=epoch, lr=lr, train_loss=sum_loss / n, train_accuracy=sum_acc / n, val_loss=mv["loss"],
                   val_accuracy=mv["accuracy"], epoch_time=time.perf_counter() - t0,
                   images_per_second=n / t_train, best=bool(improved))
        history.append(row)
        if progress:
            print(f"\repoch {epoch:3d}/{n_epochs}  lr {lr:.3g}  train loss {row['train_loss']:.4f} "
                  f"acc {row['train_accuracy']:.4f}  val loss {mv['loss']:.4f} acc {mv['accuracy']:.4f}"
                  f"{' *' if improved else '  '}  {row['images_per_second']:.0f} img/s  "
                  f"{row['epoch_time']:.1f} s", file=sys.stderr, flush=True)
        if path is not None:
            _save_checkpoint(path, fingerprint, dict(x=x, v=v, best_x=best_x, epoch=epoch, best_epoch=best_epoch,
                                                     best_acc=best_acc, history=list(history),
                                                     rng_state=rng.bit_generator.state,
                                                     stats=bn.running_statistics_state(network),
                                                     best_stats=best_stats))
        if callback is not None:
            callback(epoch, dict(row))
    # report the best weights with their running statistics, in inference mode
    final_stats = bn.running_statistics_state(network)
    bn.load_running_statistics(network, best_stats)
    bn.set_training(network, False)
    test = None
    Xte, yte = getattr(data, "X_test", None), getattr(data, "y_test", None)
    if Xte is not None and Xte.shape[0] > 0:
        test = evaluate_classifier(network, loss, best_x[:n_theta], best_x[n_theta:], Xte, yte,
                                   batch_size=eval_batch_size)
    info = dict(schedule=schedule_text(schedule), momentum=momentum, batch_size=batch_size, n_batches=n_batches,
                final_running_statistics=final_stats)
    return ImageTrainResult(status=status, message=message, x=x, best_x=best_x, best_epoch=best_epoch,
                            best_val_accuracy=float(best_acc), history=history, test=test,
                            running_statistics=best_stats, epochs_run=epoch, resumed_from=resumed_from,
                            n_theta=n_theta, wall_time=time.perf_counter() - t_call, info=info)


def _progress_bar(epoch, n_epochs, b, n_batches, sum_loss, sum_acc, seen, elapsed, width=24):
    done = int(width * b / n_batches)
    bar = "=" * done + (">" if done < width else "") + " " * max(0, width - done - 1)
    rate = seen / elapsed if elapsed > 0 else float("nan")
    print(f"\repoch {epoch}/{n_epochs} [{bar}] {b}/{n_batches}  loss {sum_loss / seen:.4f}  "
          f"acc {sum_acc / seen:.4f}  {rate:.0f} img/s", end="", file=sys.stderr, flush=True)


def _save_checkpoint(path, fingerprint, state):
    """Write the checkpoint atomically (temporary file in the same folder, fsync, ``os.replace``)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    meta = dict(fingerprint=fingerprint, epoch=state["epoch"], best_epoch=state["best_epoch"],
                best_acc=state["best_acc"], history=state["history"], rng_state=state["rng_state"],
                stats_keys=list(state["stats"]), best_stats_keys=list(state["best_stats"]))
    arrays = dict(x=to_numpy(state["x"]), v=to_numpy(state["v"]), best_x=to_numpy(state["best_x"]),
                  meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    arrays.update({f"stats_{i}": to_numpy(a) for i, a in enumerate(state["stats"].values())})
    arrays.update({f"best_stats_{i}": to_numpy(a) for i, a in enumerate(state["best_stats"].values())})
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load_checkpoint(path, fingerprint, xp):
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            arrays = {k: z[k] for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {path!r} cannot be read ({err}); delete it or pass resume=False") from None
    if meta.get("fingerprint") != fingerprint:
        diff = sorted(k for k in set(fingerprint) | set(meta.get("fingerprint", {}))
                      if meta.get("fingerprint", {}).get(k) != fingerprint.get(k))
        raise ValueError(f"checkpoint {path!r} belongs to another problem (differs in {diff}); use another "
                         f"checkpoint path or resume=False")
    stats = {k: arrays[f"stats_{i}"] for i, k in enumerate(meta["stats_keys"])}  # host arrays, as the state is
    best_stats = {k: arrays[f"best_stats_{i}"] for i, k in enumerate(meta["best_stats_keys"])}
    return dict(x=xp.asarray(arrays["x"]), v=xp.asarray(arrays["v"]), best_x=xp.asarray(arrays["best_x"]),
                epoch=int(meta["epoch"]), best_epoch=int(meta["best_epoch"]), best_acc=float(meta["best_acc"]),
                history=meta["history"], rng_state=meta["rng_state"], stats=stats, best_stats=best_stats)
