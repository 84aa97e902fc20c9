"""The PDE-surrogate data sets (CDR-like, DCR-like): their finite-volume solvers tested as solvers
(operator properties, conservation, convergence orders, analytic solutions) and the data sets
(determinism, shapes, splits, centring, cache, validation).  Small grids: the file runs in seconds."""

import glob
import importlib
import os

import numpy as np
import pytest

from meganet.data import SurrogateDataset, cdr, dcr
from meganet.data._finite_volume import (Grid2D, diffusion_matrix, divergence, face_gradient,
                                         face_velocity_from_streamfunction, harmonic_face_average,
                                         upwind_convection_matrix)
from meganet.data.cdr import cdr_operator, cdr_problem, cdr_solve, implicit_euler
from meganet.data.dcr import dcr_conductivity, dcr_operator, dcr_problem, dcr_solve, grounded_lu, solve_grounded

# ``meganet.data.cdr`` is the function (re-exported by the package); the modules themselves:
cdr_mod = importlib.import_module("meganet.data.cdr")
dcr_mod = importlib.import_module("meganet.data.dcr")

CDR_SMALL = dict(grid=8, n_time_steps=12, progress=False)
DCR_SMALL = dict(grid=(32, 8), progress=False)


def _cos_mode(g):
    """``cos(πx1/L1) cos(πx2/L2)`` at the cell centres and the eigenvalue of the discrete zero-flux
    ``−Δ`` for it: ``Σ_axes (4/h²) sin²(πh/(2L))`` (exact for cell-centred grids)."""
    X1, X2 = g.cell_centers()
    (L1, L2), (h1, h2) = g.extent, g.h
    u = (np.cos(np.pi * X1 / L1) * np.cos(np.pi * X2 / L2)).ravel()
    lam_h = 4 / h1**2 * np.sin(np.pi * h1 / (2 * L1)) ** 2 + 4 / h2**2 * np.sin(np.pi * h2 / (2 * L2)) ** 2
    return u, lam_h, (np.pi / L1) ** 2 + (np.pi / L2) ** 2


# ------------------------------------------------------------------------------------ operators
def test_diffusion_operator_symmetric_psd_with_constant_null_space():
    g = Grid2D((7, 5), (1.3, 0.8))
    sigma = np.random.default_rng(0).uniform(0.2, 5.0, g.n_cells)
    A = diffusion_matrix(g, harmonic_face_average(g, sigma)).toarray()
    M = g.cell_volume * A  # the operator in the cell-volume inner product
    np.testing.assert_allclose(M, M.T, rtol=0, atol=1e-13 * np.abs(M).max())
    lam, V = np.linalg.eigh((M + M.T) / 2)
    assert lam[0] > -1e-12 * lam[-1]  # positive semidefinite
    assert abs(lam[0]) < 1e-12 * lam[-1] and lam[1] > 1e-3 * lam[-1]  # exactly one zero eigenvalue ...
    null = V[:, 0] / V[0, 0]
    np.testing.assert_allclose(null, 1.0, rtol=1e-10)  # ... whose eigenvector is the constants
    # the discrete Gauss theorem behind the symmetry: Div = −Gᵀ on the interior faces
    G, Div = face_gradient(g).toarray(), divergence(g).toarray()
    interior = ~g.boundary_face_mask()
    np.testing.assert_array_equal(Div[:, interior], -G.T[:, interior])
    assert not G[~interior].any()  # zero flux: no gradient on the boundary faces


def test_harmonic_average_is_the_series_conductance():
    g = Grid2D((2, 2))
    sigma = np.array([1.0, 4.0, 9.0, 16.0])  # cells (0,0), (0,1), (1,0), (1,1)
    sf = harmonic_face_average(g, sigma)
    x1_interior = sf[2:4]  # x1-faces (k=1, i2=0), (k=1, i2=1): between cells (0,i2) and (1,i2)
    np.testing.assert_allclose(x1_interior, [2 * 1 * 9 / 10, 2 * 4 * 16 / 20], rtol=1e-15)
    with pytest.raises(ValueError, match="sigma must be positive"):
        harmonic_face_average(g, np.array([1.0, 0.0, 1.0, 1.0]))


def test_dcr_grounded_operator_is_spd():
    P = dcr_problem((32, 8))
    A = dcr_operator(dcr_conductivity(np.array([0.4, 0.1, 0.7]), P.grid), P).toarray()
    assert np.abs(A @ np.ones(A.shape[0])).max() < 1e-10 * np.abs(A).max()  # singular before grounding
    Ar = A[:-1, :-1]
    np.testing.assert_allclose(Ar, Ar.T, rtol=0, atol=1e-13 * np.abs(Ar).max())
    np.linalg.cholesky(Ar)  # raises unless positive definite
    lam = np.linalg.eigvalsh(Ar)
    assert lam[0] > 1e-6 * lam[-1]


def test_streamfunction_velocity_is_discretely_divergence_free_with_no_normal_flow():
    g = Grid2D((9, 6))
    v = face_velocity_from_streamfunction(g, cdr_mod.streamfunction)
    assert np.abs(v[g.boundary_face_mask()]).max() < 1e-15
    assert np.abs(divergence(g) @ v).max() < 1e-12 * np.abs(v).max() / g.h[0]
    Conv = upwind_convection_matrix(g, v)
    assert np.abs(Conv @ np.ones(g.n_cells)).max() < 1e-12  # constants are steady under convection
    assert np.abs(np.ones(g.n_cells) @ Conv).max() < 1e-12  # conservation: zero column sums
    # upwinding: an M-matrix (non-positive off-diagonal), the source of the maximum principle
    off = Conv.toarray() - np.diag(Conv.diagonal())
    assert off.max() <= 0 and off.min() < 0


# ------------------------------------------------------------------------ conservation
def test_cdr_mass_conserved_by_implicit_euler_without_reaction_or_source():
    P = cdr_problem(12)
    K = cdr_operator(np.zeros(55), P)  # diffusion + convection, zero flux
    u0 = np.random.default_rng(1).uniform(0, 1, P.grid.n_cells)
    u, _ = implicit_euler(K, np.zeros_like(u0), u0, final_time=1.0, n_time_steps=25)
    assert np.abs(u - u0).max() > 0.1  # it did move
    assert u.sum() * P.grid.cell_volume == pytest.approx(u0.sum() * P.grid.cell_volume, rel=1e-13)


def test_cdr_mass_balance_with_source():
    P = cdr_problem(12)
    v = P.grid.cell_volume
    K = cdr_operator(np.zeros(55), P)
    u, _ = implicit_euler(K, P.f, np.zeros(P.grid.n_cells), final_time=0.7, n_time_steps=13)
    assert u.sum() * v == pytest.approx(0.7 * P.f.sum() * v, rel=1e-13)  # ∫u(T) − ∫u(0) = ∫∫f
    assert P.f.sum() * v == pytest.approx(1.0, rel=1e-2)  # unit-mass source
    u_r, _ = implicit_euler(cdr_operator(np.full(55, 2.0), P), P.f, np.zeros(P.grid.n_cells), final_time=0.7,
                            n_time_steps=13)
    assert u_r.sum() < 0.9 * u.sum()  # reaction removes mass


def test_dcr_sources_zero_sum_and_flux_conservation():
    P = dcr_problem((32, 8))
    g = P.grid
    v = g.cell_volume
    assert np.abs(P.Q.sum(axis=0)).max() == 0.0  # Σ q = 0 for every source
    m = dcr_conductivity(np.array([0.35, 0.1, 0.3]), g)
    A = dcr_operator(m, P)
    U = solve_grounded(A, P.Q)
    # every equation holds, the grounded one included (so the net flux through ∂Ω vanishes) ...
    scale = np.abs(P.Q).max()
    assert np.abs(A @ U - P.Q).max() < 1e-9 * scale
    sf = harmonic_face_average(g, m)
    F = -sf[:, None] * (P.G @ U)  # face currents
    assert not F[g.boundary_face_mask()].any()
    assert np.abs(v * (P.Div @ F).sum(axis=0)).max() < 1e-9
    # ... and Gauss's law: the current out of a box around the injecting electrode is 1
    n1, n2 = g.shape
    k = 10
    e1 = P.electrodes[k] // n2
    box = np.zeros((n1, n2), bool)
    box[e1 - 1:e1 + 2, 0:3] = True
    out = v * (P.Div @ F)[box.ravel()].sum(axis=0)
    assert out[k] == pytest.approx(1.0, rel=1e-9)  # source k injects at electrode k, returns far left
    assert out[21 + k] == pytest.approx(1.0, rel=1e-9)
    assert abs(out[k + 3]) < 1e-9  # a source injecting elsewhere: nothing leaves the box


# -------------------------------------------------------------- convergence, analytic solutions
@pytest.mark.parametrize("shape, extent", [((1, 1), (1.0, 1.0)), ((2, 1), (2.0, 1.0))])
def test_neumann_poisson_second_order_and_close_to_analytic(shape, extent):
    """−Δu = f, u = cos(πx1/L1) cos(πx2/L2) (zero normal derivative): cell-centred max error O(h²)."""
    errs = []
    for n in (8, 16, 32):
        g = Grid2D((shape[0] * n, shape[1] * n), extent)
        u, _, lam = _cos_mode(g)
        f = lam * u
        U = solve_grounded(diffusion_matrix(g, np.ones(g.n_faces)), (f - f.mean())[:, None])[:, 0]
        errs.append(np.abs(U - (u - u.mean())).max())
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 1.9) & (orders < 2.1)), orders
    assert errs[-1] < 2e-3  # agreement with the analytic solution


def test_cos_mode_is_an_exact_eigenvector_of_the_discrete_operator():
    g = Grid2D((10, 6), (1.0, 0.5))
    u, lam_h, lam = _cos_mode(g)
    A = diffusion_matrix(g, np.ones(g.n_faces))
    np.testing.assert_allclose(A @ u, lam_h * u, rtol=0, atol=1e-11 * lam_h)
    assert lam_h == pytest.approx(lam, rel=0.05)


def test_implicit_euler_first_order_in_time():
    """u_t = −D A u with u(0) an eigenvector: semi-discrete solution e^{−Dλ_h t} u(0), so the error is
    the time error alone; it halves with Δt."""
    P = cdr_problem(8)
    u0, lam_h, _ = _cos_mode(P.grid)
    K = cdr_operator(np.zeros(55), P, diffusion=1.0, convection=False)
    T = 0.05
    exact = np.exp(-lam_h * T) * u0
    errs = []
    for N in (10, 20, 40, 80):
        u, hist = implicit_euler(K, np.zeros_like(u0), u0, final_time=T, n_time_steps=N, record=np.array([0, 5]))
        np.testing.assert_allclose(u, (1 + T / N * lam_h) ** (-N) * u0, rtol=1e-10, atol=1e-14)  # the scheme
        np.testing.assert_array_equal(hist[-1], u[[0, 5]])
        errs.append(np.abs(u - exact).max())
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 0.9) & (orders < 1.1)), orders


# ---------------------------------------------------------------------------- the two solvers
def test_cdr_solve_shapes_positivity_and_monotone_in_reaction():
    y = np.random.default_rng(2).uniform(0, 5, 55)
    c, u = cdr_solve(y, grid=12, n_time_steps=24, return_field=True)
    assert c.shape == (72,) and u.shape == (12, 12)
    assert np.all(c > 0) and np.all(u >= 0)  # upwind + implicit Euler: discrete maximum principle
    c_more = cdr_solve(y + 1.0, grid=12, n_time_steps=24)
    assert np.all(c_more < c)  # more reaction, less u everywhere (comparison principle)
    obs = c.reshape(12, 6)
    assert np.all(np.diff(obs[:, 0]) > 0)  # the sensor next to the source fills up over time
    P = cdr_problem(12)
    np.testing.assert_array_equal(c.reshape(12, 6)[-1], u.ravel()[P.sensors])  # t_12 = T is the last step


def test_dcr_solve_superposition_agrees_with_direct_solve():
    y = np.array([0.45, 0.09, 2.0])
    c, U = dcr_solve(y, grid=(32, 8), return_field=True)
    assert c.shape == (882,) and U.shape == (32, 8, 42)
    P = dcr_problem((32, 8))
    U2 = solve_grounded(dcr_operator(dcr_conductivity(y, P.grid), P), P.Q)
    np.testing.assert_allclose(U.reshape(-1, 42), U2, rtol=0, atol=1e-10 * np.abs(U2).max())
    np.testing.assert_allclose(c.reshape(42, 21).sum(axis=1), 0.0, atol=1e-10 * np.abs(c).max())
    # a conductive anomaly changes the data; a tiny one barely does
    c_tiny = dcr_solve(np.array([0.6, 1e-3, 0.0]), grid=(32, 8))
    c_big = dcr_solve(np.array([0.3, 0.12, 0.0]), grid=(32, 8))
    assert np.linalg.norm(c_big - c_tiny) > 1e-3 * np.linalg.norm(c_tiny)


def test_solve_grounded_rejects_incompatible_sources():
    P = dcr_problem((32, 8))
    A = dcr_operator(np.ones(P.grid.n_cells), P)
    Q = np.zeros((P.grid.n_cells, 1))
    Q[3] = 1.0
    with pytest.raises(ValueError, match="must sum to zero"):
        solve_grounded(A, Q)
    assert grounded_lu(A).shape == (P.grid.n_cells - 1,) * 2


# ------------------------------------------------------------------------------- the data sets
def test_cdr_dataset_determinism_shapes_split(tmp_path):
    d = cdr(20, n_train=10, n_val=6, seed=3, cache_dir=tmp_path / "a", **CDR_SMALL)
    e = cdr(20, n_train=10, n_val=6, seed=3, cache_dir=tmp_path / "b", **CDR_SMALL)  # generated again
    f = cdr(20, n_train=10, n_val=6, seed=4, cache_dir=tmp_path / "a", **CDR_SMALL)
    assert isinstance(d, SurrogateDataset) and d.name == "CDR-like" and d.n_outputs == 72
    assert (d.Y_train.shape, d.C_train.shape, d.Y_val.shape, d.C_val.shape, d.Y_test.shape, d.C_test.shape) == \
        ((10, 55), (10, 72), (6, 55), (6, 72), (4, 55), (4, 72))
    for name in ("Y_train", "C_train", "Y_val", "C_val", "Y_test", "C_test"):
        np.testing.assert_array_equal(getattr(d, name), getattr(e, name))
        assert getattr(d, name).dtype == np.float64
    assert not np.array_equal(d.Y_train, f.Y_train) and not np.array_equal(d.C_train, f.C_train)
    np.testing.assert_array_equal(d.c_mean, np.zeros(72))  # no scaling
    Y = np.concatenate([d.Y_train, d.Y_val, d.Y_test])
    assert np.unique(Y, axis=0).shape[0] == 20 and Y.min() >= 0 and Y.max() <= 5
    np.testing.assert_array_equal(d.C_val[2], cdr_solve(d.Y_val[2], grid=8, n_time_steps=12))
    assert d.params["seed"] == 3 and d.params["n_train"] == 10 and d.params["grid"] == 8


def test_dcr_dataset_centred_by_training_mean(tmp_path):
    d = dcr(14, n_train=8, n_val=3, seed=1, cache_dir=tmp_path, **DCR_SMALL)
    assert d.name == "DCR-like" and d.n_outputs == 882 and d.c_mean.shape == (882,)
    assert (d.Y_train.shape, d.C_train.shape, d.Y_val.shape, d.Y_test.shape, d.C_test.shape) == \
        ((8, 3), (8, 882), (3, 3), (3, 3), (3, 882))
    raw_train = np.array([dcr_solve(y, grid=(32, 8)) for y in d.Y_train])
    np.testing.assert_allclose(d.c_mean, raw_train.mean(axis=0), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(d.C_train.mean(axis=0), 0.0, atol=1e-12 * np.abs(d.c_mean).max())
    np.testing.assert_allclose(d.C_test[0] + d.c_mean, dcr_solve(d.Y_test[0], grid=(32, 8)), rtol=1e-12,
                               atol=1e-12 * np.abs(d.c_mean).max())
    lo, hi = dcr_mod.Y_LOW, dcr_mod.Y_HIGH
    Y = np.concatenate([d.Y_train, d.Y_val, d.Y_test])
    assert np.all(Y >= lo) and np.all(Y <= hi)
    e = dcr(14, n_train=8, n_val=3, seed=2, cache_dir=tmp_path, **DCR_SMALL)
    assert not np.array_equal(d.Y_train, e.Y_train)


def test_cache_round_trip_loads_without_solving(tmp_path, monkeypatch):
    d = cdr(12, n_train=6, n_val=3, seed=0, cache_dir=tmp_path, **CDR_SMALL)
    files = glob.glob(str(tmp_path / "*.npz"))
    assert len(files) == 1 and os.path.basename(files[0]).startswith("cdr_like_")

    def boom(*args, **kwargs):
        raise AssertionError("the solver ran although the cache should have been used")

    monkeypatch.setattr(cdr_mod, "cdr_solve", boom)
    e = cdr(12, n_train=5, n_val=2, seed=0, cache_dir=tmp_path, **CDR_SMALL)  # another split, same data
    np.testing.assert_array_equal(np.sort(np.concatenate([d.C_train, d.C_val, d.C_test]), axis=0),
                                  np.sort(np.concatenate([e.C_train, e.C_val, e.C_test]), axis=0))
    with np.load(files[0], allow_pickle=False) as z:
        assert set(z.files) == {"Y", "C", "params", "version"} and int(z["version"]) == cdr_mod.GENERATOR_VERSION
    monkeypatch.setattr(dcr_mod, "dcr_solve", boom)
    with pytest.raises(AssertionError, match="the solver ran"):
        dcr(12, n_train=6, n_val=3, seed=0, cache_dir=tmp_path, **DCR_SMALL)  # nothing cached for DCR


def test_cache_with_other_parameters_is_not_reused(tmp_path, monkeypatch):
    cdr(12, n_train=6, n_val=3, seed=0, cache_dir=tmp_path, **CDR_SMALL)
    calls = []
    real = cdr_mod.cdr_solve
    monkeypatch.setattr(cdr_mod, "cdr_solve", lambda y, **kw: calls.append(kw) or real(y, **kw))
    for kw in (dict(seed=1), dict(n_examples=13), dict(n_time_steps=13), dict(grid=9)):
        args = dict(dict(n_examples=12, seed=0, **CDR_SMALL), **kw)
        n = args.pop("n_examples")
        calls.clear()
        cdr(n, n_train=6, n_val=3, cache_dir=tmp_path, **args)
        assert len(calls) == n, kw
    assert len(glob.glob(str(tmp_path / "*.npz"))) == 5


def test_corrupted_or_mismatching_cache_is_regenerated_with_a_warning(tmp_path):
    d = cdr(12, n_train=6, n_val=3, seed=0, cache_dir=tmp_path, **CDR_SMALL)
    (fname,) = glob.glob(str(tmp_path / "*.npz"))
    with open(fname, "wb") as fh:
        fh.write(b"not an npz file")
    with pytest.warns(RuntimeWarning, match="unreadable.*regenerating the CDR-like data"):
        e = cdr(12, n_train=6, n_val=3, seed=0, cache_dir=tmp_path, **CDR_SMALL)
    np.testing.assert_array_equal(d.C_train, e.C_train)
    # a file with the right name but NaNs inside
    with np.load(fname, allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    parts["C"][0, 0] = np.nan
    np.savez(fname, **parts)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        f = cdr(12, n_train=6, n_val=3, seed=0, cache_dir=tmp_path, **CDR_SMALL)
    np.testing.assert_array_equal(d.C_train, f.C_train)
    with np.load(fname, allow_pickle=False) as z:  # rewritten, healthy
        assert np.isfinite(z["C"]).all()
    assert not glob.glob(str(tmp_path / ".tmp_*"))  # no temporary file left behind


def test_cache_from_another_generator_version_is_regenerated(tmp_path, monkeypatch):
    cdr(12, n_train=6, n_val=3, seed=0, cache_dir=tmp_path, **CDR_SMALL)
    (fname,) = glob.glob(str(tmp_path / "*.npz"))
    with np.load(fname, allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    parts["version"] = np.array(cdr_mod.GENERATOR_VERSION + 1)  # same file name, stale contents
    np.savez(fname, **parts)
    calls = []
    real = cdr_mod.cdr_solve
    monkeypatch.setattr(cdr_mod, "cdr_solve", lambda y, **kw: calls.append(1) or real(y, **kw))
    with pytest.warns(RuntimeWarning, match="other parameters"):
        cdr(12, n_train=6, n_val=3, seed=0, cache_dir=tmp_path, **CDR_SMALL)
    assert len(calls) == 12
    with np.load(fname, allow_pickle=False) as z:
        assert int(z["version"]) == cdr_mod.GENERATOR_VERSION

def test_default_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEGANET_DATA_DIR", str(tmp_path / "env"))
    cdr(12, n_train=6, n_val=3, seed=0, **CDR_SMALL)
    assert len(glob.glob(str(tmp_path / "env" / "cdr_like_*.npz"))) == 1


def test_progress_bar_on_stderr(tmp_path, capsys):
    cdr(12, n_train=6, n_val=3, seed=0, cache_dir=tmp_path, grid=8, n_time_steps=12, progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rCDR-like: [") and "12/12" in err and " s" in err and err.endswith("\n")
    assert err.count("\n") == 1  # one line, redrawn with \r
    cdr(12, n_train=6, n_val=3, seed=5, cache_dir=tmp_path, grid=8, n_time_steps=12, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("call, exc, match", [
    (lambda p: cdr(10, n_train=6, n_val=4, cache_dir=p), ValueError, r"n_train \+ n_val must be < n_examples = 10"),
    (lambda p: dcr(10, n_train=9, n_val=1, cache_dir=p), ValueError, r"n_train = 9, n_val = 1"),
    (lambda p: cdr(10, n_train=4, n_val=2, seed=-1, cache_dir=p), ValueError, "seed must be >= 0, got -1"),
    (lambda p: cdr(10, n_train=4, n_val=2, seed=1.5, cache_dir=p), TypeError, "seed must be an integer, got 1.5"),
    (lambda p: cdr(10, n_train=4, n_val=2, grid=4, cache_dir=p), ValueError, "grid must be >= 8, got 4"),
    (lambda p: cdr(10, n_train=4, n_val=2, n_time_steps=5, cache_dir=p), ValueError,
     "n_time_steps must be >= 12, got 5"),
    (lambda p: dcr(10, n_train=4, n_val=2, grid=(16, 8), cache_dir=p), ValueError, r"n1 >= 32.*got \(16, 8\)"),
    (lambda p: dcr(10, n_train=4, n_val=2, grid=32, cache_dir=p), TypeError, "grid must be a pair of integers"),
    (lambda p: cdr("10", cache_dir=p), TypeError, "n_examples must be an integer, got '10'"),
    (lambda p: cdr(10, n_train=4, n_val=2, cache_dir=3, progress=False), TypeError, "cache_dir must be None"),
    (lambda p: cdr(10, n_train=4, n_val=2, cache_dir=p, progress="yes"), TypeError, "progress must be True or False"),
    (lambda p: cdr_solve(np.ones(54), grid=8, n_time_steps=12), ValueError, r"y must have shape \(55,\), got \(54,\)"),
    (lambda p: dcr_solve(np.array([0.3, -0.1, 0.0]), grid=(32, 8)), ValueError, "positive size"),
])
def test_bad_inputs_raise_naming_the_parameter(tmp_path, call, exc, match):
    with pytest.raises(exc, match=match):
        call(tmp_path)
    assert not os.listdir(tmp_path)  # validated before anything was generated or written


def test_package_exports_the_solvers():
    import meganet.data as data

    for name in ("cdr", "dcr", "cdr_solve", "dcr_solve", "SurrogateDataset"):
        assert name in data.__all__ and callable(getattr(data, name))
    assert data.cdr_solve is cdr_mod.cdr_solve and data.dcr_solve is dcr_mod.dcr_solve
