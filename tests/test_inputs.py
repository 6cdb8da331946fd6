"""Bad input gets a clear error naming the argument, the value and what was expected, at the
API boundary (issue 18): never a traceback from inside JAX, never a silent wrong answer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import invsolve as inv
from invsolve import metrics
from invsolve._problem import GaussianNoise, LinearInverse, LinearSystem
from invsolve.priors.score import GaussianMixture
from invsolve.problems import blur, flame, phantoms, poisson, tomography, tumor

HUGE = (10**6, 10**6)  # 1e12 cells: terabytes, on any machine


# 1. flame constants outside the model ------------------------------------------------
@pytest.mark.parametrize("phi", [3.0, 0.2, 0.71])
def test_flame_phi_outside_validity_range(phi):
    with pytest.raises(ValueError, match=rf"phi = {phi} is outside the model's validity range \[0.3, 0.7\]"):
        flame.FreelyPropagating(phi=phi)
    with pytest.raises(ValueError, match="allow_extrapolation=True"):
        flame.FreelyPropagating().replace(phi=phi)
    case = flame.FreelyPropagating(phi=phi, allow_extrapolation=True)  # experts may
    assert float(case.phi) == phi and case.replace(lam=0.03).allow_extrapolation


def test_flame_validity_range_ends_are_accepted():
    for phi in flame.PHI_RANGE:
        flame.FreelyPropagating(phi=phi)


def test_newton_failure_names_the_constants():
    case = flame.FreelyPropagating(phi=0.42, p=1.2 * flame.ATM)
    with pytest.raises(flame.NewtonFailed, match=r"did not converge for phi=0.42, p=121590 on 101 points"):
        flame.solve_reference(case, n_grid=101, max_newton=1)


def test_converged_non_flame_is_refused():
    """0.5 atm: the flame is thicker than the 1.5 mm domain; Newton still converges (to
    s_L = 0.09 m/s, with T(L) at 18% of the rise), which used to be returned silently."""
    case = flame.FreelyPropagating(phi=0.7, p=0.5 * flame.ATM, T_in=250.0)
    with pytest.raises(flame.NewtonFailed, match=r"phi=0.7, p=50662.5, T_in=250 the converged solution is not a "
                                                 r"flame burning inside the domain"):
        flame.solve_reference(case, n_grid=101, rtol=1.0)


# 2. grid shapes and memory -----------------------------------------------------------
@pytest.mark.parametrize("shape,bad", [((8.5, 8), "8.5"), ((8, 8.0), "8.0"), ((8, True), "True")])
def test_poisson_shape_must_be_integers(shape, bad):
    with pytest.raises(ValueError, match=rf"shape must be a tuple of 2 or 3 positive integers.*{bad} is not an integer"):
        poisson.operator(shape)


def test_poisson_shape_must_be_positive():
    with pytest.raises(ValueError, match="2 or 3 positive integers"):
        poisson.operator((0, 8))
    assert poisson.operator((np.int64(4), 4)).shape == (4, 4)


def test_too_large_problems_fail_before_allocating():
    with pytest.raises(MemoryError, match=r"poisson.operator on a \(1000000, 1000000\) grid needs about .* GiB"):
        poisson.operator(HUGE)
    with pytest.raises(MemoryError, match=r"poisson.source_identification .* GiB .* use a smaller shape"):
        poisson.source_identification(shape=HUGE, key=jax.random.key(0))
    with pytest.raises(MemoryError, match="poisson.coefficient_identification"):
        poisson.coefficient_identification(shape=(10**4, 10**4, 10**4), key=jax.random.key(0))
    with pytest.raises(MemoryError, match=r"a ParallelBeam of size 10000000 .* GiB"):
        tomography.ParallelBeam(10**7, np.linspace(0, np.pi, 10))
    with pytest.raises(MemoryError, match="a FanBeam of size 10000000"):
        tomography.FanBeam(10**7, np.linspace(0, 2 * np.pi, 10))
    with pytest.raises(MemoryError, match=r"shepp_logan\(10000000\) needs about"):
        phantoms.shepp_logan(10**7)
    with pytest.raises(MemoryError, match="random_ellipses of 100000 images of size 10000"):
        phantoms.random_ellipses(jax.random.key(0), 10**5, 10**4)


# 3. tomography: angles in radians, integer images; numpy noise levels -----------------
def test_angles_in_degrees_are_refused():
    with pytest.raises(ValueError, match=r"angles must be in radians.*np.deg2rad.*largest \|angle\| of 179"):
        tomography.ParallelBeam(16, np.arange(180.0))
    with pytest.raises(ValueError, match="angles must be in radians"):
        tomography.FanBeam(16, np.arange(0.0, 360.0, 10.0))
    tomography.ParallelBeam(16, [0.0, 2 * np.pi])  # exactly 2 pi is radians
    tomography.ParallelBeam(16, [-np.pi, 0.0])
    with pytest.raises(Exception, match="angles must be in radians"):  # traced: eqx.error_if
        jax.jit(lambda a: tomography.ParallelBeam(16, a).mv(jnp.ones((16, 16))))(jnp.arange(180.0)).block_until_ready()


def test_integer_and_boolean_input_is_cast_to_the_operator_dtype():
    op = tomography.ParallelBeam(16, np.linspace(0, np.pi, 6, endpoint=False))
    ref = op.mv(jnp.ones((16, 16)))
    np.testing.assert_allclose(op.mv(np.ones((16, 16), int)), ref)
    np.testing.assert_allclose(op.mv(np.ones((16, 16), bool)), ref)
    assert op.mv(np.ones((16, 16), int)).dtype == op.dtype
    s = np.ones(op.out_shape, int)
    np.testing.assert_allclose(op.transpose().mv(s), op.transpose().mv(jnp.ones(op.out_shape)))
    np.testing.assert_allclose(tomography.fbp(s, op), tomography.fbp(jnp.ones(op.out_shape), op))


def test_numpy_scalar_noise_levels_are_accepted():
    key = jax.random.key(0)
    x = jnp.ones((16, 16))
    for noise in (np.float32(0.01), np.array(0.01), jnp.asarray(0.01), np.float16(0.01), 0):
        assert isinstance(tomography.sparse_view(x, 4, noise=noise, key=key), LinearInverse)
        assert tumor.segment(jnp.linspace(0, 1, 9), noise=noise, key=key).shape == (2, 9)
    assert isinstance(tomography.low_dose(x, 4, photons=np.float32(1e4), key=key), LinearInverse)
    assert isinstance(blur.deblur(x, np.float32(1.0), noise=np.float32(0.01), key=key), LinearInverse)
    prob = poisson.source_identification((5, 5), 4, noise=np.array(0.01), key=key)  # odd shape: CG, fast to compile
    assert prob.y_obs.shape == (4,)


def test_bad_noise_levels_are_refused():
    key = jax.random.key(0)
    for noise in (np.array([0.01]), "0.01", True, -0.1, np.nan):
        with pytest.raises(ValueError, match="noise must be a non-negative relative noise level"):
            tomography.sparse_view(jnp.ones((16, 16)), 4, noise=noise, key=key)
    with pytest.raises(ValueError, match="photons .* must be positive"):
        tomography.low_dose(jnp.ones((16, 16)), 4, photons=np.float32(-1.0), key=key)
    with pytest.raises(ValueError, match="segment: noise .* must be a non-negative number"):
        tumor.segment(jnp.linspace(0, 1, 9), noise=-0.1, key=key)
    with pytest.raises(ValueError, match="width .* must be a positive number"):
        blur.deblur(jnp.ones((8, 8)), 0.0, key=key)


# 4. noise sigma and non-finite data ----------------------------------------------------
@pytest.mark.parametrize("sigma", [0.0, -0.3, np.inf, np.nan, np.array([1.0, 0.0, 2.0])])
def test_gaussian_noise_sigma_must_be_positive_and_finite(sigma):
    with pytest.raises(ValueError, match="GaussianNoise: sigma .* must be positive and finite"):
        GaussianNoise(sigma)


def test_gaussian_noise_sigma_checked_under_jit():
    f = jax.jit(lambda s: GaussianNoise(s).neg_log_likelihood(jnp.ones(3), jnp.zeros(3)))
    assert float(f(1.0)) == 1.5
    with pytest.raises(Exception, match="sigma .* must be positive and finite"):
        f(0.0).block_until_ready()


def test_non_finite_data_are_refused():
    A = poisson.operator((4, 4))
    b = jnp.ones((4, 4)).at[1, 2].set(jnp.nan)
    with pytest.raises(ValueError, match=r"LinearSystem: the right-hand side contains NaN or infinite values \(1 of 16 entries of b\)"):
        LinearSystem(A, b)
    with pytest.raises(ValueError, match=r"LinearInverse: y_obs contains NaN or infinite values \(1 of 16 entries\)"):
        LinearInverse(A, b.at[1, 2].set(jnp.inf), GaussianNoise(1.0))
    with pytest.raises(ValueError, match="b contains NaN"):
        poisson.linear_system(A, b)
    x = jnp.ones((16, 16)).at[3, 3].set(jnp.nan)
    with pytest.raises(ValueError, match="the true image x contains NaN"):
        tomography.sparse_view(x, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="the true image x contains NaN"):
        blur.deblur(x, key=jax.random.key(0))
    prob = LinearInverse(A, jnp.ones((4, 4)), GaussianNoise(1.0))
    with pytest.raises(ValueError, match="y_obs contains"):
        prob.with_observations(prob.y_obs.at[0, 0].set(jnp.nan))


# 5. Gaussian mixture parameters ----------------------------------------------------------
def test_gaussian_mixture_refuses_bad_covariances_and_weights():
    m = jnp.zeros((2, 2))
    eye = jnp.stack([jnp.eye(2)] * 2)
    with pytest.raises(ValueError, match="positive definite .* smallest eigenvalues"):
        GaussianMixture([0.5, 0.5], m, -eye)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture([0.5, 0.5], m, eye.at[1].set(jnp.diag(jnp.array([1.0, 0.0]))))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture([0.5, 0.5], m, eye.at[0, 0, 1].set(0.5))
    with pytest.raises(ValueError, match="weights must be finite, non-negative and not all zero"):
        GaussianMixture([1.5, -0.5], m, eye)
    with pytest.raises(ValueError, match="weights must be"):
        GaussianMixture([0.0, 0.0], m, eye)
    with pytest.raises(ValueError, match=r"weights \(K,\), means \(K, dim\), covs \(K, dim, dim\) expected"):
        GaussianMixture([1.0], m, eye)
    gm = GaussianMixture([1.0, 3.0], m, eye)
    np.testing.assert_allclose(gm.weights, [0.25, 0.75])
    with pytest.raises(Exception, match="positive definite"):  # traced: eqx.error_if
        jax.jit(lambda c: GaussianMixture([0.5, 0.5], m, c).log_prob(jnp.zeros(2)))(-eye).block_until_ready()


# 6. metrics of mismatched shapes -----------------------------------------------------------
@pytest.mark.parametrize("fn", [metrics.psnr, metrics.mse, metrics.rel_l2, metrics.ssim, metrics.dice])
def test_metrics_refuse_mismatched_shapes(fn):
    a, b = jnp.ones((16, 16)), jnp.ones((16, 15))
    with pytest.raises(ValueError, match=r"shapes differ, .* has shape \(16, 16\) but .* has shape \(16, 15\)"):
        fn(a, b)
    with pytest.raises(ValueError, match="shapes differ"):
        fn(jnp.ones((2, 16, 16)), a)  # would broadcast silently


def test_metrics_refuse_mismatched_pytrees():
    with pytest.raises(ValueError, match="rel_l2: estimate and reference have different structures"):
        metrics.rel_l2({"a": jnp.ones(3)}, {"b": jnp.ones(3)})
    with pytest.raises(ValueError, match="coverage: shapes differ"):
        metrics.coverage(jnp.zeros(3), jnp.ones(3), jnp.ones(4))
    assert float(metrics.rel_l2({"a": jnp.ones(3)}, {"a": jnp.ones(3)})) == 0.0


# 7. value checks that used to vanish under jit ----------------------------------------------
def test_traced_value_checks_raise_at_run_time():
    with pytest.raises(Exception, match="FisherKPP1D: D must be positive"):
        jax.jit(lambda d: tumor.FisherKPP1D(D=d).D)(-1.0).block_until_ready()
    with pytest.raises(Exception, match="Params: rho must be positive"):
        jax.jit(lambda r: tumor.Params(0.1, r, (0.5, 0.5), 100.0).rho)(0.0).block_until_ready()
    with pytest.raises(Exception, match="origin must be relative coordinates"):
        jax.jit(lambda o: tumor.Params(0.1, 0.02, o, 100.0).origin)(jnp.array([1.5, 0.5])).block_until_ready()
    with pytest.raises(Exception, match=r"white and grey are probabilities.*\(grey does not\)"):
        jax.jit(lambda g: tumor.Anatomy(jnp.ones(8), g, 1.0).grey)(jnp.full(8, 1.5)).block_until_ready()
    with pytest.raises(ValueError, match="FisherKPP1D: D must be positive"):
        tumor.FisherKPP1D(D=-1.0)
    with pytest.raises(ValueError, match=r"values must lie in \[0, 1\] \(white does not\); got white from -0.5"):
        tumor.Anatomy(jnp.full(8, -0.5), jnp.ones(8), 1.0)
    # and a valid traced value passes
    assert float(jax.jit(lambda d: tumor.FisherKPP1D(D=d).D)(2.0)) == 2.0


def test_solve_still_reports_nonfinite_data_under_jit_as_before():
    """Traced data are not refused by the problem (the solvers report them)."""
    A = poisson.operator((4, 4))
    out = jax.jit(lambda b: LinearSystem(A, b).b)(jnp.full((4, 4), jnp.nan))
    assert bool(jnp.all(jnp.isnan(out)))
    assert inv.LinearSystem is LinearSystem


# 8. arguments of the wrong type: a clear error naming the argument (reliability probe) ------
@pytest.mark.parametrize("make,match", [
    (lambda: GaussianNoise("0.1"), "GaussianNoise: sigma"),
    (lambda: GaussianNoise(None), "GaussianNoise: sigma"),
    (lambda: poisson.operator((8, 8), kappa="1"), "kappa must be a number"),
    (lambda: poisson.operator((8, 8), kappa=None), "kappa must be a number"),
    (lambda: tomography.ParallelBeam(16, None), "angles must be a 1D array"),
    (lambda: tumor.Params("0.1", 0.02, (0.5, 0.5), 100.0), "Params: D_white must be a positive finite number"),
    (lambda: flame.FreelyPropagating(phi=None), "FreelyPropagating: phi must be a number"),
    (lambda: inv.priors.Tikhonov("1"), "Tikhonov alpha must be a non-negative finite number"),
    (lambda: inv.priors.TV(None), "TV alpha must be a non-negative finite number"),
])
def test_non_numbers_are_refused_before_jax_sees_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_lists_are_arrays():
    A = poisson.operator((4, 4))
    assert LinearSystem(A, np.ones((4, 4)).tolist()).b.shape == (4, 4)
    M = inv.MatrixOperator.from_array(2 * np.eye(3))
    assert LinearInverse(M, [1.0, 2.0, 3.0], GaussianNoise(1.0)).y_obs.shape == (3,)
    np.testing.assert_array_equal(tumor.segment([0.1, 0.5, 0.9]), [[False, True, True], [False, False, True]])
    a, b = np.eye(8), np.eye(8) + 0.01
    assert float(metrics.psnr(a.tolist(), b.tolist())) == pytest.approx(float(metrics.psnr(a, b)))


def test_problem_parts_of_the_wrong_kind():
    with pytest.raises(TypeError, match="LinearSystem: A must be a linear operator"):
        LinearSystem("A", jnp.ones((4, 4)))
    M = inv.MatrixOperator.from_array(np.eye(4))
    with pytest.raises(TypeError, match=r"LinearInverse: noise must be a noise model such as .*GaussianNoise"):
        LinearInverse(M, jnp.ones(4), "0.1")
    assert float(LinearInverse(M, jnp.ones(4), 0.1).noise.sigma) == 0.1  # a number is the Gaussian sigma
    with pytest.raises(ValueError, match=r"noise sigma has shape \(3,\), which does not fit the data of shape \(4,\)"):
        LinearInverse(M, jnp.ones(4), GaussianNoise(np.ones(3)))
    LinearInverse(M, jnp.ones(4), GaussianNoise(np.ones(4)))  # one sigma per datum


@pytest.mark.parametrize("kw,match", [
    (dict(bc=None), r"bc must be one of \('dirichlet', 'neumann'\)"),
    (dict(lengths=(1.0, 2.0, 3.0)), "lengths must be one positive number or 2 of them"),
    (dict(lengths=np.nan), "lengths must be one positive number"),  # before: accepted, NaN faces
])
def test_poisson_walls_and_box(kw, match):
    with pytest.raises(ValueError, match=match):
        poisson.operator((8, 8), **kw)
    assert poisson.operator((8, 8), lengths=(1.0, 2.0)).shape == (8, 8)


def test_builders_check_their_key():
    x = jnp.ones((16, 16))
    for make, owner in [
        (lambda k: poisson.source_identification((5, 5), 4, key=k), "poisson.source_identification"),
        (lambda k: poisson.coefficient_identification((5, 5), key=k), "poisson.coefficient_identification"),
        (lambda k: poisson.smooth_field(k, (5, 5)), "poisson.smooth_field"),
        (lambda k: tomography.sparse_view(x, 4, key=k), "sparse_view"),
        (lambda k: tomography.low_dose(x, 4, key=k), "low_dose"),
        (lambda k: blur.deblur(x, key=k), "deblur"),
        (lambda k: phantoms.random_ellipses(k, 1, 8), "random_ellipses"),
        (lambda k: tumor.segment(jnp.linspace(0, 1, 9), noise=0.1, key=k), "segment"),
    ]:
        for bad in (0, np.float32(1.0)):
            with pytest.raises(TypeError, match=f"{owner}: key must be one JAX random key"):
                make(bad)
    with pytest.raises(TypeError, match="flame.inverse: key must be one JAX random key"):
        flame.inverse(flame.FreelyPropagating(), key=None)


def test_numbers_given_as_strings_or_none():
    with pytest.raises(ValueError, match="kappa_init must be a positive number, got '1'"):
        poisson.coefficient_identification((5, 5), key=jax.random.key(0), kappa_init="1")
    for noise in (None, "0.02"):
        with pytest.raises(ValueError, match="noise must be a non-negative relative level"):
            flame.inverse(flame.FreelyPropagating(), noise=noise, key=jax.random.key(0))
    with pytest.raises(ValueError, match="kinetics_inverse: n_obs must be an integer >= 1 and noise a positive"):
        flame.kinetics_inverse(flame.FreelyPropagating(), noise=None, key=jax.random.key(0))
    with pytest.raises(ValueError, match="Anatomy: spacing_mm .* must be a positive number, got '1'"):
        tumor.Anatomy(jnp.ones(8), jnp.zeros(8), "1")  # before: accepted, then failed deep in the simulation


@pytest.mark.parametrize("kw,match", [
    (dict(n_grid="101"), "n_grid must be an integer >= 5"),
    (dict(n_grid=51.5), "n_grid must be an integer >= 5"),
    (dict(rtol=-1.0), "rtol must be a positive number"),  # before: 8 grid doublings, then a Newton failure
    (dict(max_newton=0), "max_newton must be an integer >= 1"),
    (dict(s_L_guess=-1.0), "s_L_guess must be a positive number"),
])
def test_flame_reference_settings(kw, match):
    with pytest.raises(ValueError, match=f"solve_reference: {match}"):
        flame.solve_reference(flame.FreelyPropagating(), **kw)


def test_flame_constants_are_scalars_with_known_names():
    with pytest.raises(ValueError, match=r"phi must be one number \(a case is one flame\), got an array of shape \(2,"):
        flame.FreelyPropagating(phi=[0.4, 0.5])
    with pytest.raises(ValueError, match="FreelyPropagating.replace: no constant named 'bogus'"):
        flame.FreelyPropagating().replace(bogus=1.0)
    assert float(flame.FreelyPropagating().replace(**{"lambda": 0.03}).lam) == 0.03


def test_tumour_shapes_and_arguments():
    for make in (tumor.homogeneous_box, tumor.ellipsoid_brain):
        with pytest.raises(ValueError, match=r"shape must be 1-3 integers .* got \(8.5, 8\)"):
            make((8.5, 8))  # before: truncated to (8, 8)
    box = tumor.homogeneous_box((8, 8))
    with pytest.raises(TypeError, match=r"simulate: params must be tumor.Params\(D_white, rho, origin, t_end\)"):
        tumor.simulate(box, {"D_white": 0.1, "rho": 0.02})


def test_tomography_units_and_empty_images():
    x = phantoms.shepp_logan(16)
    with pytest.raises(ValueError, match=r"wedge is in degrees.*np.rad2deg"):
        tomography.limited_angle(x, wedge=np.pi / 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="low_dose: the image x attenuates nothing"):
        tomography.low_dose(jnp.zeros((16, 16)), 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"p_on .* must be in \[0, 1\]"):
        phantoms.random_ellipses(jax.random.key(0), 1, 8, p_on=2.0)


def test_float32_noise_level_does_not_overflow():
    with jax.enable_x64(False):
        x = jnp.asarray(phantoms.shepp_logan(8), jnp.float32) * 1e30  # sinogram ~1e31: its square overflows
        prob = tomography.sparse_view(x, 2, noise=0.01, key=jax.random.key(0))  # before: sigma = inf, refused
        ref = tomography.sparse_view(x / 1e30, 2, noise=0.01, key=jax.random.key(0))
        np.testing.assert_allclose(float(prob.noise.sigma) / 1e30, float(ref.noise.sigma), rtol=1e-5)


def test_overflowing_simulated_data_are_named():
    with jax.enable_x64(False), pytest.raises(ValueError, match="observations simulated from the true source are not"):
        poisson.source_identification((3, 3), 2, key=jax.random.key(0), source=jnp.full((3, 3), 1e30, jnp.float32))


def test_a_blur_wider_than_the_image_is_exact_and_quick():
    op = blur.GaussianBlur((8, 8), 30.0)  # before: 241 taps per axis, 20 s to trace
    k = np.asarray(blur.gaussian_kernel(30.0))
    i = np.arange(8)
    row = np.array([k[120 + j - i].sum() for j in i])
    np.testing.assert_allclose(op.mv(jnp.ones((8, 8))), np.outer(row, row), rtol=1e-12)
    with pytest.raises(ValueError, match="GaussianBlur width = 1e\\+09 pixels is wider than any image"):
        blur.deblur(jnp.ones((8, 8)), 1e9, key=jax.random.key(0))


def test_cli_reports_a_refused_setting_without_a_traceback(tmp_path, capsys):
    from invsolve import cli

    out = str(tmp_path / "run")
    assert cli.main(["run", "poisson-inverse", "--quick", "--set", "noise=-1", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "poisson-inverse: ValueError: noise must be a positive relative noise level" in err
    assert "Traceback" not in err
