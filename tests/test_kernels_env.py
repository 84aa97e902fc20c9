"""The kernels under environment settings, each in a fresh subprocess.

``NUMBA_DISABLE_JIT=1`` (engine ``'auto'`` falls back to numpy with one
warning; ``'numba'`` runs the kernels as Python); ``OMP_WAIT_POLICY`` defaults
to ``PASSIVE`` when meganet loads numba, a user's setting is kept; the
one-line compile notice appears on a compile (fresh ``NUMBA_CACHE_DIR``), not
when the kernels come from the cache, and can be silenced; in deterministic
mode the gradients are bitwise the same for any ``NUMBA_NUM_THREADS``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import meganet.kernels as K

pytestmark = pytest.mark.skipif(not K.numba_available(), reason="numba not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code, timeout=600, **env):
    """Run ``code`` in a fresh interpreter with ``env`` added (a value None removes the variable);
    returns (the JSON object printed on its last stdout line, stderr)."""
    full = dict(os.environ)
    for k, v in env.items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = v
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=full, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


_NO_JIT = """
    import json, warnings
    import numpy as np
    from meganet.integrators import ResNet
    from meganet.layers import SingleLayer
    from meganet.transforms import Dense
    from meganet.transforms.conv2d import Conv2d

    def run(engine):
        rng = np.random.default_rng(0)
        net = ResNet(SingleLayer(Dense(4, 4)), n_steps=4, final_time=1.0, engine=engine)
        conv = Conv2d(2, 3, (5, 6), engine=engine)
        Z, _ = net.forward(net.init_theta(rng=rng), rng.standard_normal((10, 4)))
        return Z, conv.apply(conv.init_theta(rng=rng), rng.standard_normal((2, 2, 5, 6)))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = run("numpy")
        auto = run("auto")
        auto_again = run("auto")
        numba_as_python = run("numba")
    err = lambda a, b: max(float(abs(x - y).max()) for x, y in zip(a, b))
    print(json.dumps({"warnings": [str(w.message) for w in caught], "auto": err(auto, ref),
                      "again": err(auto_again, ref), "numba": err(numba_as_python, ref)}))
"""


def test_numba_disable_jit_falls_back_to_numpy_with_one_warning():
    out, _ = _run(_NO_JIT, NUMBA_DISABLE_JIT="1")
    assert len(out["warnings"]) == 1 and "NUMBA_DISABLE_JIT" in out["warnings"][0]
    assert "numpy engine" in out["warnings"][0]
    assert out["auto"] == 0.0 and out["again"] == 0.0  # 'auto' ran the numpy engine
    assert out["numba"] < 1e-12  # the kernels as Python (debugging): same values


_WAIT_POLICY = """
    import json, os
    import numpy as np
    import meganet.kernels
    from meganet.kernels.conv2d import conv2d_forward
    import numba

    conv2d_forward(np.ones((4, 2, 5, 5)), np.ones((3, 2, 3, 3)), "zero", engine="numba")  # a parallel kernel
    print(json.dumps({"policy": os.environ.get("OMP_WAIT_POLICY"), "layer": numba.threading_layer()}))
"""


@pytest.mark.parametrize("user, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE"), ("passive", "passive")])
def test_omp_wait_policy_defaults_to_passive_and_keeps_a_users_choice(user, expected):
    out, _ = _run(_WAIT_POLICY, OMP_WAIT_POLICY=user)
    assert out["policy"] == expected


_POOL = """
    import json
    import numpy as np
    from meganet.kernels import pooling

    Z = pooling.avg_pool2d(np.ones((2, 3, 4, 4)), 2, engine="numba")  # two small kernels
    pooling.avg_pool2d_adjoint(Z, 2, engine="numba")
    print(json.dumps({}))
"""


def test_compile_notice_once_on_a_compile_and_not_from_the_cache(tmp_path):
    _, err = _run(_POOL, NUMBA_CACHE_DIR=str(tmp_path), MEGANET_QUIET=None)
    assert err.count(K.COMPILE_MESSAGE) == 1, err
    _, err = _run(_POOL, NUMBA_CACHE_DIR=str(tmp_path), MEGANET_QUIET=None)  # loaded from the cache
    assert K.COMPILE_MESSAGE not in err, err


class _FakeDispatcher:
    def __init__(self, module):
        self.py_func = type(lambda: None)((lambda: None).__code__, {"__name__": module})


@pytest.mark.parametrize("quiet, setting, shown", [(None, None, True), ("1", None, False), ("0", None, True),
                                                   ("1", True, True), (None, False, False)])
def test_compile_notice_can_be_silenced(monkeypatch, capsys, quiet, setting, shown):
    monkeypatch.setattr(K, "_NOTICE", {"enabled": None, "shown": False})
    if quiet is None:
        monkeypatch.delenv("MEGANET_QUIET", raising=False)
    else:
        monkeypatch.setenv("MEGANET_QUIET", quiet)
    if setting is not None:
        K.set_compile_message(setting)
    K._compile_notice(_FakeDispatcher("numba_user_module"))  # a user's own numba function: never
    assert capsys.readouterr().err == ""
    for _ in range(2):
        K._compile_notice(_FakeDispatcher("meganet.kernels._conv2d_numba"))
    assert capsys.readouterr().err == (K.COMPILE_MESSAGE + "\n" if shown else "")


_GRADIENTS = """
    import json
    import numpy as np
    import numba
    from meganet.integrators import AntisymmetricResNet
    from meganet.integrators.leapfrog import Leapfrog
    from meganet.integrators.verlet import HamiltonianVerlet
    from meganet.transforms.conv2d import Conv2d

    rng = np.random.default_rng(0)
    out = {"threads": numba.get_num_threads()}
    for name, block, n in [("antisym", AntisymmetricResNet(8, n_steps=8, final_time=2.0), 8),
                           ("leapfrog", Leapfrog(4, n_steps=8, final_time=1.0), 4),
                           ("verlet", HamiltonianVerlet(3, 2, n_steps=8, final_time=1.0), 5)]:
        theta, Y, W = block.init_theta(rng=rng), rng.standard_normal((3001, n)), rng.standard_normal((3001, n))
        out[name] = block.JthetaTmv(W, theta, Y).tobytes().hex()
    conv = Conv2d(3, 4, (8, 8))
    Y, W = rng.standard_normal((37, 3, 8, 8)), rng.standard_normal((37, 4, 8, 8))
    out["conv2d"] = conv.JthetaTmv(W, conv.init_theta(rng=rng), Y).tobytes().hex()
    print(json.dumps(out))
"""


def test_deterministic_mode_gradients_are_bitwise_independent_of_the_thread_count():
    """θ-gradients of the fused sweeps (dense antisymmetric ResNet, leapfrog, Verlet) and the Conv2d weight
    gradient: the same bits with 1, 2 and 3 numba threads (3 on any machine: numba runs more threads than cores)."""
    runs = [_run(_GRADIENTS, MEGANET_DETERMINISTIC="1", NUMBA_NUM_THREADS=str(t))[0] for t in (1, 2, 3)]
    assert [r.pop("threads") for r in runs] == [1, 2, 3]
    assert runs[1] == runs[0] and runs[2] == runs[0]


def test_reduction_chunks_depend_on_the_threads_only_by_default(monkeypatch):
    import numba

    monkeypatch.setattr(K, "_DETERMINISTIC", {"enabled": None})
    monkeypatch.delenv("MEGANET_DETERMINISTIC", raising=False)
    assert not K.deterministic()
    assert list(K._reduction_bounds(10)) == list(np.linspace(0, 10, min(10, numba.get_num_threads()) + 1).round())
    monkeypatch.setenv("MEGANET_DETERMINISTIC", "1")
    assert K.deterministic()
    assert list(K._reduction_bounds(10)) == list(range(11))  # one chunk per item
    assert K._reduction_bounds(1000, 16).size - 1 == 62  # chunks of at least 16 items
    assert K._reduction_bounds(15, 16).size - 1 == 1
    assert K._reduction_bounds(10 ** 6).size - 1 == K.DETERMINISTIC_CHUNKS
    assert K._reduction_bounds(1000, 1, K.DETERMINISTIC_PARTIAL_BYTES // 4).size - 1 == 4  # memory cap
    b = K._reduction_bounds(1003, 16)
    assert b[0] == 0 and b[-1] == 1003 and (np.diff(b) >= 16).all()
    K.set_deterministic(False)  # the function overrides the variable
    assert not K.deterministic()
    K.set_deterministic(None)
    assert K.deterministic()
