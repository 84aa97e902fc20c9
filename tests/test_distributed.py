"""meganet.distributed (issue 14): the sharded objectives on a Dask LocalCluster of 2 workers.

Equality with the serial objectives (value, gradient, Gauss-Newton products to ~1e-12 relative in float64; the
sum order is all that changes) for NetworkObjective and VarProObjective (least squares, cross-entropy, logistic
regression) with 1, 2 and 3 shards of unequal sizes, masks, the Hessian subsample and mini-batches; the same
iterates of a GN-PCG and a GNvpro run; work units; stale caches; bad input; and a worker process killed in a
LocalCluster (processes=True): the shards are re-created and the results are still the serial ones, or, past the
retries, a clear failure (never a partial sum).  The equality tests use a thread-based cluster (the same code
path, in-process workers); the kill test needs worker processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("distributed")

from distributed import Client, LocalCluster  # noqa: E402

import meganet.distributed as md  # noqa: E402
from meganet.objectives import NetworkObjective, VarProObjective  # noqa: E402
from meganet.optimizers import minimize_gnvpro, minimize_newton_cg, minimize_sgd  # noqa: E402
from tests.test_objectives import random_x, tiny_problem  # noqa: E402

SHARDINGS = {"1": [23], "2": [15, 8], "3": [5, 11, 7]}
TOL = 1e-12


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0")
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def pair(kind, client, sizes, *, cls=NetworkObjective, n=23, **kw):
    """A serial objective and the sharded one built from an identical twin (same data, same generator seed)."""
    ser = tiny_problem(kind, n=n, cls=cls, **kw)
    return ser, md.shard(tiny_problem(kind, n=n, cls=cls, **kw), client, shard_sizes=sizes)


# --------------------------------------------------------------------------- equality: NetworkObjective
@pytest.mark.parametrize("sizes", list(SHARDINGS), ids=lambda s: f"{s}shards")
@pytest.mark.parametrize("kind", ["softmax", "logistic", "least_squares"])
def test_network_objective_equals_serial(client, kind, sizes):
    mask = sizes == "3"
    ser, sh = pair(kind, client, SHARDINGS[sizes], mask=mask)
    assert isinstance(sh, md.ShardedNetworkObjective) and sh.shard_sizes() == SHARDINGS[sizes]
    x = random_x(ser)
    v = np.random.default_rng(5).standard_normal(ser.n)
    f1, g1, s1 = ser.value_and_gradient(x)
    f2, g2, s2 = sh.value_and_gradient(x)
    assert rel(f2, f1) < TOL and rel(g2, g1) < TOL
    assert rel(sh.hessian_matvec(x, v, s2), ser.hessian_matvec(x, v, s1)) < TOL
    assert sh.counter.forward == pytest.approx(ser.counter.forward, abs=1e-12)
    assert sh.counter.adjoint == pytest.approx(ser.counter.adjoint, abs=1e-12)
    m1, m2 = ser.metrics(x, ser.Y, ser.C, mask=ser.mask), sh.metrics(x)
    assert m2["n_examples"] == m1["n_examples"] and rel(m2["loss"], m1["loss"]) < TOL
    assert m2["accuracy"] == m1["accuracy"] or rel(m2["accuracy"], m1["accuracy"]) < TOL
    if "relative_error" in m1:
        assert rel(m2["relative_error"], m1["relative_error"]) < TOL


def test_hessian_subsample_minibatches_and_preconditioner(client):
    kw = dict(mask=True, hessian_fraction=0.4, rng=3, batch_size=6, preconditioner="regularizer")
    ser, sh = pair("softmax", client, SHARDINGS["3"], **kw)
    x = random_x(ser)
    v = np.random.default_rng(5).standard_normal(ser.n)
    for _ in range(2):  # a fresh subsample per point, drawn from the same generator
        x = x + 0.01
        f1, g1, s1 = ser.value_and_gradient(x)
        f2, g2, s2 = sh.value_and_gradient(x)
        assert rel(f2, f1) < TOL and rel(g2, g1) < TOL
        assert rel(sh.hessian_matvec(x, v, s2), ser.hessian_matvec(x, v, s1)) < TOL
        assert rel(sh.preconditioner(x, s2)(g2), ser.preconditioner(x, s1)(g1)) < TOL
    ser.shuffle(7)
    sh.shuffle(7)
    for b in range(ser.n_batches):
        fb1, gb1 = ser.stochastic_gradient(x, b)
        fb2, gb2 = sh.stochastic_gradient(x, b)
        assert rel(fb2, fb1) < TOL and rel(gb2, gb1) < TOL
    assert sh.counter.work_units == pytest.approx(ser.counter.work_units, abs=1e-12)


def test_chunked_passes_on_the_shards(client):
    ser, sh = pair("least_squares", client, SHARDINGS["3"], chunk_size=4)
    x = random_x(ser)
    v = np.random.default_rng(5).standard_normal(ser.n)
    f1, g1, s1 = ser.value_and_gradient(x)
    f2, g2, s2 = sh.value_and_gradient(x)
    assert rel(g2, g1) < TOL and rel(sh.hessian_matvec(x, v, s2), ser.hessian_matvec(x, v, s1)) < TOL
    # chunked adjoint / linearized passes recompute the chunks' forward passes: counted on the shards too
    assert sh.counter.forward == pytest.approx(ser.counter.forward, abs=1e-12) and ser.counter.forward > 2


@pytest.mark.parametrize("cls", [NetworkObjective, VarProObjective])
def test_validation_metrics_on_scattered_shards(client, cls):
    ser, sh = pair("softmax", client, SHARDINGS["2"], cls=cls)
    val = tiny_problem("softmax", n=17, seed=9)  # other data: the validation set
    x = random_x(ser) if cls is NetworkObjective else ser.init_x(rng=1)
    sh.scatter_dataset("val", val.Y, val.C, shard_sizes=[4, 6, 7])
    m1, m2 = ser.metrics(x, val.Y, val.C), sh.metrics(x, dataset="val")
    assert m2["n_examples"] == 17 and rel(m2["loss"], m1["loss"]) < TOL and m2["accuracy"] == m1["accuracy"]
    assert sh.metrics(x, val.Y, val.C) == m1  # data passed in: computed on the driver
    with pytest.raises(ValueError, match="dataset must be 'train' or a name given to scatter_dataset"):
        sh.metrics(x, dataset="test")
    with pytest.raises(ValueError, match="name must be a non-empty str other than 'train'"):
        sh.scatter_dataset("train", val.Y, val.C)
    with pytest.raises(TypeError, match="Y must be a numpy array of dtype float64"):
        sh.scatter_dataset("v32", val.Y.astype(np.float32), val.C)
    sh.close()


def test_stale_cache_is_never_used(client):
    ser, sh = pair("softmax", client, SHARDINGS["2"])
    x1 = random_x(ser)
    x2 = x1 + 0.1
    _, s1 = sh.value(x1)
    sh.value(x2)  # the shards now hold the caches of x2
    g = sh.gradient(x1, s1)  # recomputed at x1 (and counted)
    assert rel(g, ser.gradient(x1)) < TOL
    assert sh.counter.forward == pytest.approx(3.0)
    with pytest.raises(ValueError, match="another point"):
        sh.gradient(x2, s1)


@pytest.mark.parametrize("cls", [NetworkObjective, VarProObjective])
def test_float32(client, cls):
    ser, sh = pair("softmax", client, SHARDINGS["3"], dtype=np.float32, cls=cls)
    x = random_x(ser) if cls is NetworkObjective else ser.init_x(rng=1)
    v = np.random.default_rng(5).standard_normal(ser.n).astype(np.float32)
    f1, g1, s1 = ser.value_and_gradient(x)
    f2, g2, s2 = sh.value_and_gradient(x)
    assert g2.dtype == np.float32 and rel(f2, f1) < 1e-6 and rel(g2, g1) < 1e-5
    h2 = sh.hessian_matvec(x, v, s2)
    assert h2.dtype == np.float32 and rel(h2, ser.hessian_matvec(x, v, s1)) < 1e-5


# --------------------------------------------------------------------------- equality: VarProObjective
@pytest.mark.parametrize("sizes", list(SHARDINGS), ids=lambda s: f"{s}shards")
@pytest.mark.parametrize("kind", ["least_squares", "softmax", "logistic"])
def test_varpro_objective_equals_serial(client, kind, sizes):
    mask = sizes == "2"
    ser, sh = pair(kind, client, SHARDINGS[sizes], cls=VarProObjective, mask=mask)
    assert isinstance(sh, md.ShardedVarProObjective)
    th = ser.init_x(rng=1)
    v = np.random.default_rng(5).standard_normal(ser.n)
    f1, g1, s1 = ser.value_and_gradient(th)
    f2, g2, s2 = sh.value_and_gradient(th)
    assert rel(f2, f1) < TOL and rel(g2, g1) < TOL
    assert rel(sh.classifier(th), ser.classifier(th)) < TOL
    assert rel(sh.hessian_matvec(th, v, s2), ser.hessian_matvec(th, v, s1)) < TOL
    assert rel(sh.implicit_derivative(th, v, s2), ser.implicit_derivative(th, v, s1)) < TOL
    assert s2.inner.status == s1.inner.status and s2.inner.n_iter == s1.inner.n_iter
    assert sh.counter.work_units == pytest.approx(ser.counter.work_units, abs=1e-12)
    m1, m2 = ser.metrics(th, ser.Y, ser.C, mask=ser.mask), sh.metrics(th)
    assert rel(m2["loss"], m1["loss"]) < TOL


@pytest.mark.parametrize("kind", ["least_squares", "softmax"])
def test_varpro_hessian_subsample(client, kind):
    ser, sh = pair(kind, client, SHARDINGS["3"], cls=VarProObjective, hessian_fraction=0.5, rng=4)
    th = ser.init_x(rng=1)
    v = np.random.default_rng(5).standard_normal(ser.n)
    _, s1 = ser.value(th)
    _, s2 = sh.value(th)
    assert rel(sh.hessian_matvec(th, v, s2), ser.hessian_matvec(th, v, s1)) < TOL
    assert sh.counter.work_units == pytest.approx(ser.counter.work_units, abs=1e-12)


# --------------------------------------------------------------------------- solvers run unchanged
def test_gn_pcg_run_gives_the_serial_iterates(client):
    ser, sh = pair("softmax", client, SHARDINGS["3"], mask=True)
    x0 = random_x(ser)
    r1 = minimize_newton_cg(ser, x0.copy(), max_iter=6)
    r2 = minimize_newton_cg(sh, x0.copy(), max_iter=6)
    assert r2.status == r1.status and r2.nit == r1.nit and r2.n_hmv == r1.n_hmv
    assert rel(r2.x, r1.x) < 1e-10
    assert np.allclose(r2.history["f"], r1.history["f"], rtol=1e-12, atol=0)
    assert r2.work_units == pytest.approx(r1.work_units, abs=1e-9)


@pytest.mark.parametrize("kind", ["least_squares", "softmax"])
def test_gnvpro_run_gives_the_serial_iterates(client, kind):
    ser, sh = pair(kind, client, [5, 11, 8], cls=VarProObjective, n=24, alpha=1e-3)
    th0 = ser.init_x(rng=2)
    r1 = minimize_gnvpro(ser, th0.copy(), max_iter=6, krylov_dim=6)
    r2 = minimize_gnvpro(sh, th0.copy(), max_iter=6, krylov_dim=6)
    assert r2.status == r1.status and r2.nit == r1.nit
    assert rel(r2.x, r1.x) < 1e-10
    assert np.allclose(r2.history["f"], r1.history["f"], rtol=1e-11, atol=0)
    assert r2.work_units == pytest.approx(r1.work_units, abs=1e-9)  # rejected steps included
    assert rel(sh.classifier(r2.x), ser.classifier(r1.x)) < 1e-9


def test_sgd_runs_on_the_shards(client):
    ser, sh = pair("softmax", client, SHARDINGS["2"], batch_size=5)
    x0 = random_x(ser)
    r1 = minimize_sgd(ser, x0.copy(), n_epochs=2, learning_rate=0.1, rng=0)
    r2 = minimize_sgd(sh, x0.copy(), n_epochs=2, learning_rate=0.1, rng=0)
    assert rel(r2.x, r1.x) < 1e-10


# --------------------------------------------------------------------------- bad input, options
def test_bad_input(client):
    ser = tiny_problem("softmax", n=23)
    with pytest.raises(ValueError, match="shard_sizes must sum to the number of examples 23"):
        md.shard(ser, client, shard_sizes=[10, 10])
    with pytest.raises(ValueError, match="shard_sizes must be a non-empty list of positive ints"):
        md.shard(ser, client, shard_sizes=[23, 0])
    with pytest.raises(ValueError, match=r"n_shards must be an int in \[1, n_examples\] = \[1, 23\], got 24"):
        md.shard(ser, client, n_shards=24)
    with pytest.raises(ValueError, match="pass n_shards or shard_sizes, not both"):
        md.shard(ser, client, n_shards=2, shard_sizes=[20, 3])
    with pytest.raises(TypeError, match="client must be a distributed.Client"):
        md.shard(ser, "tcp://localhost:8786", n_shards=2)
    with pytest.raises(ValueError, match="on_failure must be one of"):
        md.shard(ser, client, n_shards=2, on_failure="ignore")
    with pytest.raises(ValueError, match="max_retries must be an int >= 0, got -1"):
        md.shard(ser, client, n_shards=2, max_retries=-1)
    with pytest.raises(ValueError, match="timeout must be None or a positive number of seconds, got 0"):
        md.shard(ser, client, n_shards=2, timeout=0)
    with pytest.raises(TypeError, match="objective must be a NetworkObjective or VarProObjective"):
        md.shard(object(), client, n_shards=2)
    masked = tiny_problem("softmax", n=23, mask=True)  # example 1 (the second shard here) is unlabelled
    with pytest.raises(ValueError, match="shard 1 .* holds no labelled sample"):
        md.shard(masked, client, shard_sizes=[1, 1, 21])
    vp = tiny_problem("softmax", n=23, cls=VarProObjective, inner_solver="krylov")
    with pytest.raises(NotImplementedError, match="inner solver 'trust_region' only"):
        md.shard(vp, client, n_shards=2)
    from meganet.layers import SingleLayer
    from meganet.losses import SoftmaxCrossEntropy
    from meganet.networks import Meganet
    from meganet.normalization import BatchNorm, set_training
    from meganet.transforms import Dense
    bn_net = Meganet([SingleLayer(Dense(2, 3), activation="tanh", normalization=BatchNorm((3,)))])
    bn = NetworkObjective(bn_net, SoftmaxCrossEntropy(3, 3), ser.Y, ser.C)
    with pytest.raises(ValueError, match="training-mode BatchNorm"):
        md.shard(bn, client, n_shards=2)
    set_training(bn_net, False)
    md.shard(bn, client, n_shards=2).close()  # running statistics: no coupling, accepted
    out = tiny_problem("softmax", n=23)
    out.output_regularizer = object()  # stands for a FeatureSmoothness (the tiny network has vector outputs)
    with pytest.raises(NotImplementedError, match="output_regularizer"):
        md.shard(out, client, n_shards=2)


def test_default_one_shard_per_worker_and_comm_stats(client):
    sh = md.shard(tiny_problem("softmax", n=23), client)
    assert sh.n_shards == 2 and sorted(sh.shard_sizes()) == [11, 12]
    x = random_x(sh.serial)
    sh.value_and_gradient(x)
    c = sh.comm
    assert c.calls == 2 and c.tasks == 4 and c.bytes_sent >= 2 * 2 * x.nbytes and c.bytes_scattered > 0
    assert "ShardedNetworkObjective" in repr(sh)
    sh.close()


def test_import_meganet_does_not_need_dask():
    code = "import sys, meganet, meganet.objectives, meganet.optimizers; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    # without dask, meganet.distributed says what to install
    code = ("import sys; sys.modules['distributed'] = None\n"
            "try:\n    import meganet.distributed\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'meganet[distributed]'" in out.stdout


# --------------------------------------------------------------------------- faults: kill a worker process
def test_worker_killed_mid_run_recovers_or_fails_clearly():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    try:
        ser = tiny_problem("softmax", n=3000)
        sh = md.shard(tiny_problem("softmax", n=3000), client, n_shards=3, timeout=60)
        x = random_x(ser)
        v = np.ones(ser.n)
        f1, g1, s1 = ser.value_and_gradient(x)
        h1 = ser.hessian_matvec(x, v, s1)
        f2, s2 = sh.value(x)
        # 1. a worker dies between value and gradient: its shards (and their caches) are re-created
        pids = client.run(os.getpid)
        killed = sh.shards.workers[0]
        on_killed = sum(w == killed for w in sh.shards.workers)  # 1 or 2 of the 3 shards
        os.kill(pids[killed], signal.SIGKILL)
        g2 = sh.gradient(x, s2)
        assert rel(f2, f1) < TOL and rel(g2, g1) < TOL
        # the shards lost with the worker were rebuilt (Dask may have copied one of them to the other
        # worker already, so 1 ≤ lost ≤ on_killed), their forward passes recomputed and counted
        lost = sh.comm.rebuilt_shards
        assert sh.comm.retries >= 1 and 1 <= lost <= on_killed and sh.comm.events
        assert sum(len(e.get("lost_shards", ())) for e in sh.comm.events) == lost  # each one reported
        assert sh.counter.forward == pytest.approx(1 + lost / 3, abs=1e-12)
        # 2. a worker dies while Gauss-Newton products are running
        client.wait_for_workers(2, timeout=60)
        pids = client.run(os.getpid)
        timer = threading.Timer(0.05, os.kill, (pids[sh.shards.workers[1]], signal.SIGKILL))
        timer.start()
        hs = [sh.hessian_matvec(x, v, s2) for _ in range(15)]
        timer.join()
        assert max(rel(h, h1) for h in hs) < TOL
        # 3. VarPro (cross-entropy): a worker dies between value and gradient, then during GN products
        client.wait_for_workers(2, timeout=60)
        vser = tiny_problem("softmax", n=600, cls=VarProObjective)
        vsh = md.shard(tiny_problem("softmax", n=600, cls=VarProObjective), client, n_shards=3, timeout=60)
        th = vser.init_x(rng=1)
        _, t1 = vser.value(th)
        _, t2 = vsh.value(th)
        pids = client.run(os.getpid)
        os.kill(pids[vsh.shards.workers[0]], signal.SIGKILL)
        assert rel(vsh.gradient(th, t2), vser.gradient(th, t1)) < TOL
        assert rel(vsh.hessian_matvec(th, th, t2), vser.hessian_matvec(th, th, t1)) < TOL
        # 4. past the retries: a clear failure with the last good iterate, or NaN for the solvers
        client.wait_for_workers(2, timeout=60)
        for on_failure in ("raise", "nan"):
            sh0 = md.shard(tiny_problem("softmax", n=3000), client, n_shards=2, max_retries=0,
                           on_failure=on_failure, timeout=60)
            _, st = sh0.value(x)
            pids = client.run(os.getpid)
            os.kill(pids[sh0.shards.workers[0]], signal.SIGKILL)
            if on_failure == "raise":
                with pytest.raises(md.ShardFailure, match="no partial sum") as info:
                    sh0.gradient(x, st)
                assert info.value.last_good_x is x
            else:
                assert np.isnan(sh0.gradient(x, st)).all()
            client.wait_for_workers(2, timeout=60)
            assert rel(sh0.gradient(x, st), g1) < TOL  # the lost shard was re-created: usable again
        # 5. a solver on such an objective stops with status 'non_finite' and the last good iterate
        sh1 = md.shard(tiny_problem("softmax", n=3000), client, n_shards=2, max_retries=0, on_failure="nan",
                       timeout=60)
        iterates = []

        def kill_after_two(xk, row):
            iterates.append(np.array(xk))
            if len(iterates) == 2:
                p = client.run(os.getpid)
                os.kill(p[sh1.shards.workers[1]], signal.SIGKILL)

        res = minimize_newton_cg(sh1, x.copy(), max_iter=10, callback=kill_after_two)
        assert res.status.value == "non_finite" and np.array_equal(res.x, iterates[-1])
        assert sh1.comm.events
    finally:
        client.close()
        cluster.close()


def test_readme_section_runs(capsys):
    """The README's serial → Dask script (section "Many machines: Dask") runs as printed."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Many machines: Dask", 1)[1]
    code = re.search(r"```\n(.*?)```", section, flags=re.S).group(1)
    assert "md.shard(obj, client)" in code
    exec(compile(code, "README.md", "exec"), {"__name__": "__main__"})
    status, accuracy, sent = capsys.readouterr().out.split()[-3:]
    assert float(accuracy) > 0.3 and int(sent) > 0
