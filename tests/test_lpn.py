"""Learned proximal networks: convexity, f = grad psi, the recovered prior, training, the
shipped image priors, plug-and-play solvers, the blur operator, and bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.ndimage as ndi
import scipy.optimize

import invsolve as inv
from invsolve.nn.icnn import clip_nonneg
from invsolve.priors import LPN, L1, TV, soft_threshold
from invsolve.problems import blur, phantoms, tomography
from helpers import dot_product_test, fd_directional, tree_allclose


def _random_lpn(shape, key=0, scale=0.3, nonneg=True, **kw):
    """An LPN in float64 whose hidden-path weights are O(1) (the trained regime), not the
    tiny exp(-10) of the initialisation, so convexity is actually exercised."""
    lpn = LPN.init(shape, jax.random.key(key), dtype=jnp.float64, **kw)
    leaves, tdef = jax.tree.flatten(lpn.params)
    keys = jax.random.split(jax.random.key(key + 1), len(leaves))
    new = [scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    params = jax.tree.unflatten(tdef, new)
    params = clip_nonneg(params) if nonneg else params
    return dataclasses.replace(lpn, params=params)


# --- the architecture ---------------------------------------------------------------------
@pytest.mark.slow  # 24 s on a quiet 2-core machine, cold cache
@pytest.mark.parametrize("shape", [(3,), (8, 8)])
def test_psi_is_convex_hessian_eigenvalues_nonnegative(shape):
    lpn = _random_lpn(shape, hidden=6, depth=2)
    n = int(np.prod(shape))
    for k in range(3):
        y = jax.random.normal(jax.random.key(10 + k), shape, jnp.float64)
        H = jax.hessian(lambda v: lpn.psi(v.reshape(shape)))(y.ravel())
        eig = np.linalg.eigvalsh(np.asarray(H))
        assert eig.min() >= lpn.alpha - 1e-10 * max(1.0, np.abs(eig).max()), eig.min()
        assert np.allclose(H, H.T, atol=1e-10 * np.abs(H).max())
    assert n == H.shape[0]


@pytest.mark.slow  # 10 s on two cores
def test_without_the_clip_psi_is_not_convex():
    """The convexity test can fail: negative hidden weights break it."""
    lpn = _random_lpn((3,), hidden=6, depth=2, scale=2.0, nonneg=False)
    worst = min(np.linalg.eigvalsh(np.asarray(jax.hessian(lpn.psi)(jax.random.normal(jax.random.key(k), (3,),
                                                                                      jnp.float64)))).min()
                for k in range(20))
    assert worst < -1e-3


@pytest.mark.parametrize("shape", [(3,), pytest.param((8, 8), marks=pytest.mark.slow)])  # (8, 8): 11 s
def test_prox_is_the_gradient_of_psi_by_finite_differences(shape):
    lpn = _random_lpn(shape, hidden=6, depth=2)
    y = jax.random.normal(jax.random.key(1), shape, jnp.float64)
    f = lpn.prox(y)
    for k in range(3):
        v = jax.random.normal(jax.random.key(20 + k), shape, jnp.float64)
        fd = float(fd_directional(lpn.psi, y, v, 1e-5))
        assert abs(float(jnp.vdot(f, v)) - fd) <= 1e-7 * max(1.0, abs(fd))


@pytest.mark.slow  # 13 s on a quiet 2-core machine, cold cache
def test_prox_batches_over_leading_axes_and_keeps_the_dtype():
    lpn = _random_lpn((8, 8), hidden=4, depth=2)
    ys = jax.random.normal(jax.random.key(0), (2, 3, 8, 8))
    out = lpn.prox(ys)
    assert out.shape == ys.shape and out.dtype == ys.dtype
    assert np.allclose(out[1, 2], lpn.prox(ys[1, 2]), rtol=1e-12)
    assert np.allclose(lpn.psi(ys)[0, 1], lpn.psi(ys[0, 1]), rtol=1e-12)


def test_log_prior_of_a_linear_prox_is_the_known_quadratic():
    """With the network switched off psi = alpha/2 |y|^2, so f(y) = alpha y = prox of
    R(x) = (1/alpha - 1)/2 |x|^2."""
    lpn = LPN.init((4,), jax.random.key(0), alpha=0.5, dtype=jnp.float64)
    lpn = dataclasses.replace(lpn, params=jax.tree.map(jnp.zeros_like, lpn.params))
    x = jnp.array([[0.3, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert np.allclose(lpn.log_prior(x), 0.5 * jnp.sum(x * x, axis=1), rtol=1e-8, atol=1e-10)


@pytest.mark.slow  # 9 s on a quiet 2-core machine, cold cache
def test_learned_prior_makes_f_its_prox_by_brute_force():
    """Independent check of log_prior: on a 1D grid, f(v) minimises 1/2 (x - v)^2 + R(x)."""
    lpn = _random_lpn((1,), key=4, hidden=8, depth=2, alpha=0.2)
    y = jnp.linspace(-3, 3, 1201)[:, None]
    xs = lpn.prox(y)  # the range of f: R is finite there
    R = lpn.log_prior(xs, tol=1e-10)
    inv_y, res = lpn.invert(xs, tol=1e-10)
    assert float(res.max()) < 1e-7 and np.allclose(inv_y, y, atol=1e-5)
    for v in (-1.7, -0.2, 0.4, 2.1):
        obj = 0.5 * (xs[:, 0] - v) ** 2 + R
        best = float(xs[int(jnp.argmin(obj)), 0])
        assert abs(best - float(lpn.prox(jnp.array([v]))[0])) < 0.02


# --- training ------------------------------------------------------------------------------
def test_l2_training_learns_the_mmse_denoiser_of_a_gaussian():
    """x ~ N(0, 1), y = x + N(0, 0.5^2): the MMSE denoiser is E[x|y] = y / 1.25."""
    data = lambda k, n: jax.random.normal(k, (n, 1))  # noqa: E731
    lpn = LPN.train(data, sigma=0.5, optimizer=optax.adam(optax.cosine_decay_schedule(3e-3, 1500)), loss="l2",
                    key=jax.random.key(0), steps=1500,
                    batch_size=512, hidden=16, depth=2, progress=False)
    y = jnp.linspace(-2, 2, 9)[:, None]
    assert np.allclose(lpn.prox(y), y / 1.25, atol=0.05)
    assert all(float(jnp.min(w)) >= 0 for p, w in jax.tree_util.tree_leaves_with_path(lpn.params)
               if "wz" in jax.tree_util.keystr(p))
    assert dict(lpn.info)["loss"] == "l2" and lpn.sigma == 0.5


@pytest.mark.slow  # 19 s on a quiet 2-core machine, cold cache
def test_proximal_matching_moves_towards_soft_thresholding():
    """A short version of the paper's Laplacian experiment: after L1 pre-training, proximal
    matching brings f closer to soft-thresholding than L2 training (the MMSE denoiser)."""
    data = lambda k, n: jax.random.laplace(k, (n, 1))  # noqa: E731
    kw = dict(sigma=1.0, key=jax.random.key(0), batch_size=1000, hidden=20, depth=3, progress=False)
    sched = optax.piecewise_constant_schedule(1e-2, {1000: 0.1, 1500: 0.1})
    pm = LPN.train(data, optimizer=optax.adam(sched), loss="proximal_matching", steps=2000, pretrain_fraction=0.5,
                   gammas=(0.5, 0.3), **kw)
    l2 = LPN.train(data, optimizer=optax.adam(sched), loss="l2", steps=2000, **kw)
    y = jnp.linspace(-4, 4, 401)[:, None]
    away = np.abs(np.abs(np.asarray(y[:, 0])) - 1) > 0.1
    err = lambda m: float(np.mean(np.abs(np.asarray(m.prox(y) - soft_threshold(y, 1.0)))[away]))  # noqa: E731
    assert err(pm) < 0.1 < err(l2)


@pytest.mark.slow  # 14 s on two cores; DCDM training resume runs in the fast tier
def test_training_resumes_from_a_checkpoint_exactly(tmp_path):
    data = np.asarray(phantoms.random_ellipses(jax.random.key(0), 6, 16))
    kw = dict(sigma=0.1, optimizer=optax.adam(1e-3), key=jax.random.key(0), batch_size=2, hidden=4, depth=2,
              progress=False, loss="proximal_matching")
    full = LPN.train(data, steps=6, **kw)
    ck = tmp_path / "ck.npz"
    for _ in range(3):  # stopped after one step each time (as if killed), in the L1 and the matching stages
        LPN.train(data, steps=6, checkpoint=ck, time_limit_s=0.0, **kw)
    resumed = LPN.train(data, steps=6, checkpoint=ck, **kw)
    assert tree_allclose(resumed.params, full.params, rtol=0)
    assert not tree_allclose(resumed.params, LPN.train(data, steps=5, **kw).params, rtol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    lpn = _random_lpn((8, 8), hidden=4, depth=1, sigma=0.05)
    lpn = dataclasses.replace(lpn, params=jax.tree.map(lambda x: x.astype(jnp.float32), lpn.params))
    lpn.save(tmp_path / "m.npz")
    back = LPN.load(tmp_path / "m.npz")
    assert tree_allclose(back.params, lpn.params, rtol=0) and back.sigma == 0.05 and back.shape == (8, 8)


# --- the shipped priors -------------------------------------------------------------------
@pytest.mark.slow  # 2 x 10 s on a quiet 2-core machine, cold cache
@pytest.mark.parametrize("name", ["ellipses-64", "mni-64"])
def test_shipped_prior_denoises_its_kind_of_image(name):
    lpn = LPN.pretrained(name)
    x = phantoms.random_ellipses(jax.random.key(123), 4, 64) if name == "ellipses-64" \
        else phantoms.axial_slices("test", 64)[0][::6]
    y = x + lpn.sigma * jax.random.normal(jax.random.key(1), x.shape, x.dtype)
    gain = np.mean([float(inv.metrics.psnr(lpn.prox(yi), xi) - inv.metrics.psnr(yi, xi)) for xi, yi in zip(x, y)])
    assert gain > 6.0, gain  # dB over the noisy input
    assert lpn.shape == (64, 64) and lpn.sigma == 0.1


def test_pretrained_unknown_name():
    with pytest.raises(ValueError, match="no pretrained LPN 'celeba'; available: ellipses-64, mni-64"):
        LPN.pretrained("celeba")


# --- proximal operators of the hand-made priors --------------------------------------------
@pytest.mark.slow  # 16 s on a quiet 2-core machine, cold cache
def test_tv_prox_matches_chambolle_pock_denoising():
    x = phantoms.shepp_logan(32) + 0.1 * jax.random.normal(jax.random.key(0), (32, 32))
    A = inv.MatrixOperator.from_array(jnp.eye(32 * 32), (32, 32), (32, 32))
    prob = inv.LinearInverse(A, x, inv.GaussianNoise(1.0))
    ref = inv.solve(prob, inv.solvers.ChambollePock(lam=0.15, nonneg=False, max_steps=3000)).value
    out = TV(0.15, prox_steps=1000).prox(x)
    assert float(jnp.max(jnp.abs(out - ref))) < 2e-3


def test_l1_prox_is_soft_thresholding():
    v = jnp.array([-2.0, -0.5, 0.0, 0.3, 1.5])
    assert np.allclose(L1(0.5).prox(v), [-1.5, 0.0, 0.0, 0.0, 1.0])


# --- plug-and-play solvers -----------------------------------------------------------------
def _lasso():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(30, 20))
    x = np.zeros(20)
    x[[2, 7, 11]] = [1.5, -2.0, 0.8]
    y = M @ x + 0.05 * rng.normal(size=30)
    prob = inv.LinearInverse(inv.MatrixOperator.from_array(jnp.asarray(M)), jnp.asarray(y), inv.GaussianNoise(0.5))
    return prob, M, y


def _lasso_reference(M, y, sigma, w):
    """argmin 1/2 |(M x - y)/sigma|^2 + w |x|_1 by L-BFGS-B on x = p - n, p, n >= 0."""
    n = M.shape[1]

    def fun(z):
        x = z[:n] - z[n:]
        r = (M @ x - y) / sigma
        g = M.T @ r / sigma
        return 0.5 * r @ r + w * z.sum(), np.concatenate([g + w, -g + w])

    res = scipy.optimize.minimize(fun, np.zeros(2 * n), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (2 * n),
                                  options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000})
    return res.x[:n] - res.x[n:]


def test_pnp_pgd_with_l1_solves_the_lasso():
    prob, M, y = _lasso()
    eta = 0.9 / np.linalg.norm(M / 0.5, 2) ** 2
    lam = 0.7
    sol = inv.solve(prob, inv.solvers.PnPPGD(L1(lam), eta=eta, max_steps=5000, rtol=1e-12))
    ref = _lasso_reference(M, y, 0.5, lam / eta)
    assert np.allclose(sol.value, ref, atol=1e-6)
    default = inv.solvers.PnPPGD(L1(lam))  # its step: 0.99 / L from power iterations
    assert abs(float(default._step_size(prob, jnp.zeros(20))) - 0.99 / np.linalg.norm(M / 0.5, 2) ** 2) < 1e-3 * eta


def test_pnp_admm_with_l1_solves_the_lasso_and_reports_the_objective():
    prob, M, y = _lasso()
    lam, rho = 0.1, 40.0
    solver = inv.solvers.PnPADMM(L1(lam), rho=rho, max_steps=3000, rtol=1e-12, cg_steps=20, track_objective=True)
    sol = inv.solve(prob, solver)
    ref = _lasso_reference(M, y, 0.5, rho * lam)
    assert np.allclose(sol.value, ref, atol=1e-6)
    F_ref = 0.5 * np.sum(((M @ ref - y) / 0.5) ** 2) + rho * lam * np.abs(ref).sum()
    assert abs(float(sol.history["objective"][-1]) - F_ref) < 1e-8 * F_ref
    assert np.all(np.diff(sol.history["objective"][50:]) < 1e-6 * F_ref)


@pytest.mark.slow  # 11 s on a quiet 2-core machine, cold cache
def test_pnp_admm_with_tv_matches_chambolle_pock_on_ct():
    x = phantoms.shepp_logan(32)
    prob = tomography.sparse_view(x, n_angles=12, noise=0.02, key=jax.random.key(0))
    lam = 2.0
    cp = inv.solve(prob, inv.solvers.ChambollePock(lam=lam, nonneg=False, max_steps=4000)).value
    rho = 50.0
    admm = inv.solve(prob, inv.solvers.PnPADMM(TV(lam / rho, prox_steps=200), rho=rho, max_steps=300, cg_steps=30))
    assert float(inv.metrics.rel_l2(admm.value, cp)) < 5e-3


def test_pnp_admm_with_the_shipped_lpn_improves_on_fbp():
    x = phantoms.random_ellipses(jax.random.key(5), 1, 64)[0]
    prob = tomography.sparse_view(x, n_angles=30, noise=0.01, key=jax.random.key(0))
    lpn = LPN.pretrained("ellipses-64")
    sol = inv.solve(prob, inv.solvers.PnPADMM(prior=lpn, max_steps=30), key=jax.random.key(1))
    fbp = tomography.fbp(prob)
    assert float(inv.metrics.psnr(sol.value, x)) > float(inv.metrics.psnr(fbp, x)) + 5.0
    assert sol.value.dtype == prob.y_obs.dtype


# --- blur ----------------------------------------------------------------------------------
def test_gaussian_blur_matches_scipy_and_is_its_own_adjoint():
    x = jax.random.uniform(jax.random.key(0), (3, 20, 24), jnp.float64)
    A = blur.GaussianBlur((3, 20, 24), 1.3)
    ref = ndi.gaussian_filter(np.asarray(x), (0, 1.3, 1.3), mode="constant", truncate=4.0)
    assert np.allclose(A.mv(x), ref, atol=1e-14)
    assert dot_product_test(A, jax.random.key(1)) < 1e-13


def test_deblur_problem_and_bad_width():
    prob = blur.deblur(phantoms.shepp_logan(32), width=1.5, noise=0.01, key=jax.random.key(0))
    assert prob.y_obs.shape == (32, 32) and float(prob.noise.sigma) > 0
    with pytest.raises(ValueError, match="width .* must be a positive number"):
        blur.GaussianBlur((8, 8), -1.0)


# --- bad input -----------------------------------------------------------------------------
def test_prior_without_prox_is_refused_by_pnp():
    for cls in (inv.solvers.PnPADMM, inv.solvers.PnPPGD):
        with pytest.raises(TypeError, match="needs a prior with a proximal operator .* got Tikhonov"):
            cls(prior=inv.priors.Tikhonov(1.0), rho=1.0) if cls is inv.solvers.PnPADMM else cls(prior=inv.priors.Tikhonov(1.0))


def test_pnp_admm_without_rho_for_a_prior_without_sigma():
    with pytest.raises(ValueError, match="needs rho"):
        inv.solvers.PnPADMM(prior=L1(0.1))


def test_image_size_the_network_cannot_take():
    lpn = _random_lpn((8, 8), hidden=4, depth=3)
    x = phantoms.shepp_logan(36)
    prob = tomography.sparse_view(x, n_angles=10, noise=0.01, key=jax.random.key(0))
    with pytest.raises(inv.ProblemSolverIncompatible, match="PnPADMM needs .*sides are multiples of 8 .* got shape \\(36, 36\\)"):
        inv.solve(prob, inv.solvers.PnPADMM(prior=lpn, rho=10.0))
    with pytest.raises(ValueError, match="takes vectors of shape \\(3,\\)"):
        _random_lpn((3,), hidden=4, depth=1).prox(jnp.ones((5, 4)))


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan"), "0.1"])
def test_sigma_not_positive(sigma):
    with pytest.raises(ValueError, match="sigma .* must be a positive number"):
        LPN.train(np.ones((4, 3)), sigma=sigma, steps=1)


def test_dataset_with_nan():
    data = np.ones((5, 8, 8))
    data[3, 2, 2] = np.nan
    with pytest.raises(ValueError, match="dataset has 1 NaN or inf values \\(first in sample 3\\)"):
        LPN.train(data, sigma=0.1, steps=1)
    with pytest.raises(ValueError, match="dataset function returned NaN"):
        LPN.train(lambda k, n: jnp.full((n, 2), jnp.nan), sigma=0.1, steps=1)


def test_unknown_loss():
    with pytest.raises(ValueError, match="loss must be one of 'proximal_matching', 'l2', 'l1', got 'mse'"):
        LPN.train(np.ones((4, 3)), sigma=0.1, loss="mse", steps=1)


def test_pnp_reports_non_finite_iterates_even_without_a_tolerance():
    class Broken(inv.priors.AbstractProxPrior):
        def log_density_neg(self, x):
            return jnp.sum(x * x)

        def prox(self, v):
            return v * jnp.nan

    prob, _, _ = _lasso()
    for solver in (inv.solvers.PnPPGD(Broken()), inv.solvers.PnPADMM(Broken(), rho=1.0)):
        with pytest.raises(inv.SolveError, match="NaN or infinity appeared"):
            inv.solve(prob, solver)


def test_deforming_augmentation_is_a_flip_without_deformation_and_rotates_about_the_centre():
    """`recipes.augment_deform`: with every range zero it returns each image or its mirror
    image, exactly; a rotation keeps the centre pixel of an odd-sized image and the mean of a
    disk-shaped image (bilinear resampling, 1 %)."""
    from invsolve.recipes import augment_deform

    x = jax.random.uniform(jax.random.key(0), (6, 9, 9))
    y = augment_deform(jax.random.key(1), x, rotate_deg=0.0, scale=0.0, elastic_px=0.0, gain=(1.0, 1.0),
                       gamma=(1.0, 1.0))
    same = np.all(np.isclose(y, x, atol=1e-6), axis=(1, 2))
    mirrored = np.all(np.isclose(y, x[:, :, ::-1], atol=1e-6), axis=(1, 2))
    assert np.all(same | mirrored) and same.any() and mirrored.any()
    r = np.hypot(*np.meshgrid(np.arange(33) - 16.0, np.arange(33) - 16.0))
    disk = jnp.asarray(np.clip(12.0 - r, 0.0, 1.0))[None].repeat(4, 0)
    rot = augment_deform(jax.random.key(2), disk, rotate_deg=30.0, scale=0.0, elastic_px=0.0, gain=(1.0, 1.0),
                         gamma=(1.0, 1.0))
    np.testing.assert_allclose(rot[:, 16, 16], 1.0, atol=1e-6)
    np.testing.assert_allclose(rot.mean(axis=(1, 2)), disk.mean(), rtol=0.01)
