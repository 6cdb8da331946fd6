"""Tumour growth on anatomy (Fisher-Kolmogorov), the segmentation inverse problem and the
database query: against an independent NumPy scheme, the Fisher-KPP front speed, finite
differences, and recoveries of known parameters."""

import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import invsolve as inv
from invsolve.problems import tumor
from invsolve.problems.tumor import _integrate, _run


def numpy_reference(white, grey, h, D, rho, x0, t_end, n, sigma):
    """The scheme written voxel by voxel: explicit Euler, face diffusivity the mean of the
    two voxels' ``white + grey / 10`` when both hold tissue (white + grey >= 0.1), else 0."""
    inside = (white + grey) >= 0.1
    m = np.where(inside, white + 0.1 * grey, 0.0)
    u = np.zeros(white.shape)
    for idx in np.ndindex(*white.shape):
        x = (np.array(idx) + 0.5) * h
        u[idx] = np.exp(-np.sum((x - x0) ** 2) / (2 * sigma**2)) if inside[idx] else 0.0
    dt = t_end / n
    for _ in range(n):
        new = u.copy()
        for idx in np.ndindex(*white.shape):
            flux = 0.0
            for ax in range(white.ndim):
                for d in (-1, 1):
                    j = list(idx)
                    j[ax] += d
                    j = tuple(j)
                    if 0 <= j[ax] < white.shape[ax] and inside[idx] and inside[j]:
                        flux += 0.5 * (m[idx] + m[j]) * (u[j] - u[idx])
            new[idx] = u[idx] + D * dt / h**2 * flux + rho * dt * u[idx] * (1 - u[idx])
        u = new
    return u


@pytest.mark.parametrize("shape", [(9, 11, 8), (14, 12)])
def test_forward_matches_numpy_reference(shape):
    an = tumor.ellipsoid_brain(shape, 4.0)
    p = tumor.Params(0.5, 0.05, (0.55, 0.4, 0.5)[: len(shape)], 40.0)
    n = tumor.stable_steps(an, 0.5, 0.05, 40.0)
    u = tumor.simulate(an, p, n_steps=n)
    x0 = np.asarray(p.origin) * np.array(shape) * 4.0
    ref = numpy_reference(np.asarray(an.white), np.asarray(an.grey), 4.0, 0.5, 0.05, x0, 40.0, n, 4.0)
    assert u.dtype == jnp.float64 and ref.max() > 0.3
    np.testing.assert_allclose(np.asarray(u), ref, rtol=0, atol=1e-10)


def test_density_stays_in_unit_interval_at_the_stability_limit():
    an = tumor.ellipsoid_brain((16, 20, 16), 3.0)
    p = tumor.Params(1.5, 0.2, (0.6, 0.45, 0.5), 200.0)
    u = tumor.simulate(an, p, dt=tumor.stable_dt(an, 1.5, 0.2), save_at=[20.0, 100.0, 200.0])
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0
    assert float(u[-1].max()) > 0.999  # saturated core
    assert float(jnp.sum(u[0])) < float(jnp.sum(u[1])) < float(jnp.sum(u[2]))  # the tumour grows
    assert float(jnp.max(jnp.where(an.brain, 0.0, u[-1]))) == 0.0  # nothing outside the brain


def test_front_speed_matches_fisher_kpp_with_bramson_correction():
    """Planar front from a compact seed: x(t) ~ lam (2 rho t - 1.5 ln(rho t)) + const, so the
    mean speed between t1 and t2 is [x(t2) - x(t1)] / (t2 - t1) (Bramson 1983)."""
    D, rho, h = 0.1, 0.02, 0.25
    lam = np.sqrt(D / rho)
    an = tumor.homogeneous_box((1600,), h)
    ts = [400.0, 800.0]
    u = np.asarray(tumor.simulate(an, tumor.Params(D, rho, (0.0,), 1.0), save_at=ts,
                                  dt=0.5 * tumor.stable_dt(an, D, rho)))
    x = (np.arange(an.shape[0]) + 0.5) * h
    pos = [np.interp(-0.5, -ui, x) for ui in u]  # where u = 0.5 (u decreases in x)
    speed = (pos[1] - pos[0]) / (ts[1] - ts[0])
    xb = lambda t: lam * (2 * rho * t - 1.5 * np.log(rho * t))
    bramson = (xb(ts[1]) - xb(ts[0])) / (ts[1] - ts[0])
    assert abs(speed / bramson - 1) < 0.02, (speed, bramson)
    assert abs(speed / (2 * np.sqrt(D * rho)) - 1) > 0.05  # the correction matters here


@pytest.mark.slow  # 15 s on a quiet 2-core machine, cold cache
def test_hand_adjoint_equals_autodiff_of_the_loop():
    an = tumor.ellipsoid_brain((10, 12, 9), 4.0)
    u0 = tumor.seed(an, jnp.array([0.5, 0.4, 0.5]))
    faces, w = an.faces(), jax.random.normal(jax.random.key(0), an.shape)
    for n in (1, 7, 30):  # no full block, remainder + blocks, exact blocks
        f_hand = lambda u, a, b: jnp.vdot(w, _integrate(u, faces, a, b, n))
        f_auto = lambda u, a, b: jnp.vdot(w, _run(u, faces, a, b, n))
        args = (u0, jnp.asarray(0.1), jnp.asarray(0.05))
        g1, g2 = jax.grad(f_hand, (0, 1, 2))(*args), jax.grad(f_auto, (0, 1, 2))(*args)
        for x, y in zip(g1, g2):
            np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-13)


def test_grad_matches_finite_differences():
    an = tumor.ellipsoid_brain((16, 20, 16), 4.0)

    def f(D, rho, o):
        u = tumor.simulate(an, tumor.Params(D, rho, o, 200.0), n_steps=40)
        return jnp.sum(u**2)

    args = (jnp.asarray(0.2), jnp.asarray(0.03), jnp.array([0.6, 0.45, 0.55]))
    grads = jax.grad(f, (0, 1, 2))(*args)
    for i, eps in ((0, 1e-6), (1, 1e-7)):
        up = list(args); dn = list(args)
        up[i] = args[i] + eps; dn[i] = args[i] - eps
        fd = (f(*up) - f(*dn)) / (2 * eps)
        np.testing.assert_allclose(grads[i], fd, rtol=1e-6)
    e = jnp.array([1e-6, 0, 0])
    fd = (f(args[0], args[1], args[2] + e) - f(args[0], args[1], args[2] - e)) / 2e-6
    np.testing.assert_allclose(grads[2][0], fd, rtol=1e-6)


def test_gradient_memory_is_bounded_by_checkpointing():
    """Compiled temporary memory of value_and_grad grows like sqrt(n_steps), not n_steps."""
    an = tumor.ellipsoid_brain((16, 20, 16), 4.0)
    u0 = tumor.seed(an, jnp.array([0.5, 0.5, 0.5]))
    faces = an.faces()

    def temp(n):
        f = jax.jit(jax.grad(lambda a: jnp.sum(_integrate(u0, faces, a, jnp.asarray(0.01), n))))
        return f.lower(jnp.asarray(0.1)).compile().memory_analysis().temp_size_in_bytes

    state = u0.size * 8
    small, large = temp(100), temp(1600)
    assert large < 2 * 45 * state, (large / state)  # ~2 sqrt(1600) + a few states
    assert large / small < 5  # 16x the steps, ~4x the memory


def test_float32_follows_the_anatomy_dtype():
    an = tumor.ellipsoid_brain((12, 14), 4.0, dtype=jnp.float32)
    p = tumor.Params(0.3, 0.03, (0.65, 0.4), 150.0)
    u32 = tumor.simulate(an, p)
    u64 = tumor.simulate(tumor.ellipsoid_brain((12, 14), 4.0), p)
    assert u32.dtype == jnp.float32
    np.testing.assert_allclose(u32, u64, atol=1e-5)


def test_mni152_brain():
    pytest.importorskip("nilearn")
    b3 = tumor.mni152_brain(resolution_mm=3)
    assert b3.shape == (51, 63, 53) and b3.spacing_mm == 3.0
    frac = float(jnp.mean(b3.brain))
    assert 0.4 < frac < 0.8
    assert float(jnp.sum(b3.white)) < float(jnp.sum(b3.grey))  # more grey than white matter
    s = tumor.mni152_brain(resolution_mm=4, axial_slice=0.5)
    assert s.shape == (39, 47) and 0.6 < float(jnp.mean(s.brain)) < 0.9  # cropped to the slice's tissue


# --------------------------------------------------------------------------------------
# the inverse problem
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def case2d():
    an = tumor.ellipsoid_brain((36, 44), 3.0, dtype=jnp.float32)
    truth = tumor.Params(0.3, 0.025, (0.62, 0.42), 300.0)
    return tumor.segmentation_inverse(an, truth, (0.25, 0.675), key=jax.random.key(0))


def test_segment_thresholds_and_boundary_noise():
    u = jnp.linspace(0, 1, 101)
    m = tumor.segment(u, (0.2, 0.6))
    assert int(m[0].sum()) == 81 and int(m[1].sum()) == 41
    noisy = tumor.segment(u, (0.2, 0.6), noise=0.02, key=jax.random.key(0))
    flipped = np.nonzero(np.asarray(noisy != m))[1]
    assert 0 < flipped.size and np.all(np.abs(np.asarray(u)[flipped] - 0.4) > 0.1)  # only near a threshold
    assert np.all((np.abs(np.asarray(u)[flipped] - 0.2) < 0.1) | (np.abs(np.asarray(u)[flipped] - 0.6) < 0.1))


def test_gradient_inversion_recovers_parameters(case2d):
    sol = inv.solve(case2d, inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=600))
    m = sol.metrics
    assert m["dice_edema"] > 0.95 and m["dice_core"] > 0.95, m
    assert m["rel_err_D"] < 0.2 and m["rel_err_rho"] < 0.1, m
    assert m["origin_err_mm"] < 1.5, m


def test_problem_grad_matches_finite_differences(case2d):
    """Through the whole problem: soft masks, seed position and the t_end-free coordinates."""
    prob = tumor.segmentation_inverse(case2d.anatomy.__class__(case2d.anatomy.white.astype(jnp.float64),
                                                               case2d.anatomy.grey.astype(jnp.float64), 3.0),
                                      case2d.truth, (0.25, 0.675), t_end_known=False, softness=0.1)
    theta = jax.tree.map(lambda x: x + 0.1, prob.init_params())
    f = eqx.filter_jit(lambda p, t: p.neg_log_likelihood(t))
    g = jax.grad(lambda t: f(prob, t))(theta)
    for name, i in (("lam", None), ("mu", None), ("origin", 0), ("origin", 1)):
        e = 1e-6
        up = dict(theta); dn = dict(theta)
        if i is None:
            up[name] = theta[name] + e; dn[name] = theta[name] - e
            gi = g[name]
        else:
            up[name] = theta[name].at[i].add(e); dn[name] = theta[name].at[i].add(-e)
            gi = g[name][i]
        fd = (f(prob, up) - f(prob, dn)) / (2 * e)
        np.testing.assert_allclose(gi, fd, rtol=1e-5)


def test_database_query_and_refinement(case2d, tmp_path):
    db = inv.solvers.DatabaseQuery.build(case2d, n=3000, key=jax.random.key(2), path=tmp_path / "bank.npz")
    q = inv.solve(case2d, db)
    assert q.stats["num_steps"] == 0 and q.metrics["dice_edema"] > 0.85 and q.metrics["dice_core"] > 0.85, q.metrics
    assert q.metrics["rel_err_rho"] < 0.2, q.metrics
    assert q.samples["score"].shape == (5,) and bool(jnp.all(jnp.diff(q.samples["score"]) <= 0))
    assert set(q.std) == {"D_white", "rho", "origin"} and float(q.std["rho"]) > 0
    loaded = inv.solvers.DatabaseQuery.load(tmp_path / "bank.npz")
    np.testing.assert_array_equal(loaded.features, db.features)
    assert float(inv.solve(case2d, loaded).metrics["dice_edema"]) == float(q.metrics["dice_edema"])
    ref = inv.solve(case2d, db.refine(inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=300)))
    assert ref.metrics["dice_core"] >= q.metrics["dice_core"] and ref.metrics["dice_edema"] >= q.metrics["dice_edema"]
    assert ref.metrics["rel_err_D"] < 0.2 and ref.metrics["rel_err_rho"] < 0.1, ref.metrics


def test_database_build_resumes_after_interrupt(case2d, tmp_path):
    path = tmp_path / "bank.npz"
    calls = []

    class Stop(Exception):
        pass

    real = jax.device_put

    def flaky(x, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise Stop
        return real(x, *a, **k)

    jax.device_put, saved = flaky, jax.device_put
    try:
        with pytest.raises(Stop):
            inv.solvers.DatabaseQuery.build(case2d, n=200, key=jax.random.key(3), batch_size=32, path=path,
                                            save_every_s=0.0)
    finally:
        jax.device_put = saved
    with np.load(path) as z:
        assert bytes(z["meta"]).decode().count('"done": 64') == 1
    with pytest.raises(ValueError, match="unfinished build"):
        inv.solvers.DatabaseQuery.load(path)
    resumed = inv.solvers.DatabaseQuery.build(case2d, n=200, key=jax.random.key(3), batch_size=32, path=path)
    fresh = inv.solvers.DatabaseQuery.build(case2d, n=200, key=jax.random.key(3), batch_size=32)
    np.testing.assert_array_equal(resumed.features, fresh.features)


def test_database_build_shards_over_devices(tmp_path):
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        import invsolve as inv
        from invsolve.problems import tumor
        assert jax.device_count() == 2
        an = tumor.ellipsoid_brain((20, 24), 3.0, dtype=jnp.float32)
        prob = tumor.segmentation_inverse(an, tumor.Params(0.3, 0.025, (0.6, 0.45), 300.0), (0.25, 0.675))
        db = inv.solvers.DatabaseQuery.build(prob, n=40, key=jax.random.key(0), batch_size=8)
        one = jax.jit(lambda z: prob.features(prob.theta_from_unit(z)))
        ref = np.stack([np.asarray(one(z)) for z in np.asarray(db.unit[:3])]).astype(np.float16)
        np.testing.assert_allclose(np.asarray(db.features[:3], np.float32), ref.astype(np.float32), atol=2e-3)
        print("ok", db.n)
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok 40"


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
def test_bad_input_messages(case2d):
    an = case2d.anatomy
    with pytest.raises(ValueError, match="D_white must be positive"):
        tumor.Params(-0.1, 0.02, (0.5, 0.5), 100.0)
    with pytest.raises(ValueError, match="rho must be positive"):
        tumor.Params(0.1, 0.0, (0.5, 0.5), 100.0)
    with pytest.raises(ValueError, match="origin must be relative coordinates"):
        tumor.Params(0.1, 0.02, (1.5, 0.5), 100.0)
    with pytest.raises(ValueError, match="outside the brain"):
        tumor.simulate(an, tumor.Params(0.1, 0.02, (0.01, 0.01), 100.0))
    with pytest.raises(ValueError, match="stability limit"):
        tumor.simulate(an, tumor.Params(0.1, 0.02, (0.5, 0.3), 100.0), dt=50.0)
    with pytest.raises(ValueError, match="stability limit"):
        tumor.simulate(an, tumor.Params(0.1, 0.02, (0.5, 0.3), 100.0), n_steps=2)
    with pytest.raises(ValueError, match="0 < edema < core < 1"):
        tumor.segmentation_inverse(an, case2d.truth, (0.6, 0.2))
    with pytest.raises(ValueError, match="0 < edema < core < 1"):
        tumor.segment(jnp.ones(3), (0.2, 1.2))
    edema, core = np.asarray(case2d.y_obs, bool)
    with pytest.raises(ValueError, match="has shape"):
        tumor.from_segmentation(an, edema[:-1], core, (0.25, 0.675), t_end=300.0)
    with pytest.raises(ValueError, match="core mask is empty"):
        tumor.from_segmentation(an, edema, np.zeros_like(core), (0.25, 0.675), t_end=300.0)
    with pytest.raises(ValueError, match="covers the whole brain"):
        tumor.from_segmentation(an, np.ones_like(edema), core, (0.25, 0.675), t_end=300.0)
    with pytest.raises(ValueError, match="under jit/grad/vmap pass n_steps"):
        jax.jit(lambda D: tumor.simulate(an, tumor.Params(D, 0.02, (0.5, 0.3), 100.0)))(0.1)
    other = tumor.segmentation_inverse(an, tumor.Params(0.3, 0.025, (0.4, 0.5), 300.0), (0.25, 0.675))
    db = inv.solvers.DatabaseQuery.build(case2d, n=16, key=jax.random.key(0))
    with pytest.raises(ValueError, match="built for another problem"):
        inv.solve(other, db)
