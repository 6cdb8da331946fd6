"""Image metrics against scikit-image: PSNR, SSIM, Dice."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance

from invsolve import metrics
from invsolve.problems import phantoms

skm = pytest.importorskip("skimage.metrics")


@pytest.fixture(scope="module")
def noisy_phantom():
    ref = np.asarray(phantoms.shepp_logan(96))
    est = ref + 0.05 * np.random.default_rng(0).standard_normal(ref.shape)
    return est, ref


def test_psnr_matches_skimage(noisy_phantom):
    est, ref = noisy_phantom
    want = skm.peak_signal_noise_ratio(ref, est, data_range=ref.max() - ref.min())
    np.testing.assert_allclose(float(metrics.psnr(est, ref)), want, rtol=1e-10)
    want = skm.peak_signal_noise_ratio(ref, est, data_range=2.0)
    np.testing.assert_allclose(float(metrics.psnr(est, ref, data_range=2.0)), want, rtol=1e-10)


def test_ssim_matches_skimage_on_noisy_phantom(noisy_phantom):
    est, ref = noisy_phantom
    want = skm.structural_similarity(ref, est, data_range=ref.max() - ref.min(), gaussian_weights=False)
    got = float(metrics.ssim(est, ref))  # default data_range: the reference's range
    assert abs(got - want) < 1e-6, (got, want)
    assert 0.2 < got < 0.9
    assert float(metrics.ssim(ref, ref)) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_skimage_on_random_pair():
    rng = np.random.default_rng(1)
    x, y = rng.random((37, 50)), rng.random((37, 50)) + 0.3 * np.linspace(0, 1, 50)
    for dr in (1.0, 2.5):
        want = skm.structural_similarity(y, x, data_range=dr)
        got = float(metrics.ssim(x, y, data_range=dr))
        assert abs(got - want) < 1e-6, (dr, got, want)


def test_ssim_volume_is_mean_over_first_axis_slices():
    rng = np.random.default_rng(2)
    x, y = rng.random((3, 16, 20)), rng.random((3, 16, 20))
    per_slice = [skm.structural_similarity(b, a, data_range=1.0) for a, b in zip(x, y)]
    assert abs(float(metrics.ssim(x, y, data_range=1.0)) - np.mean(per_slice)) < 1e-6


def test_ssim_jit_and_vmap_over_batch():
    k1, k2 = jax.random.split(jax.random.key(3))
    ref = phantoms.random_ellipses(k1, 4, 32)
    est = ref + 0.1 * jax.random.normal(k2, ref.shape)
    batched = jax.jit(jax.vmap(metrics.ssim))(est, ref)
    assert batched.shape == (4,)
    for e, r, b in zip(est, ref, batched):
        want = skm.structural_similarity(np.asarray(r), np.asarray(e),
                                         data_range=float(r.max() - r.min()))
        assert abs(float(b) - want) < 1e-6
    g = jax.grad(lambda e: metrics.ssim(e, ref[0]))(est[0])  # differentiable
    assert g.shape == (32, 32) and bool(jnp.all(jnp.isfinite(g)))


def test_ssim_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.ssim(jnp.zeros((8, 8)), jnp.zeros((8, 9)))
    with pytest.raises(ValueError, match="at least 7 x 7"):
        metrics.ssim(jnp.zeros((6, 8)), jnp.zeros((6, 8)))


def test_dice():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert float(metrics.dice(a, b)) == 1.0  # both empty
    a[:2] = True  # 8 pixels
    assert float(metrics.dice(a, b)) == 0.0
    b[1:3] = True  # 8 pixels, 4 shared
    assert float(metrics.dice(a, b)) == pytest.approx(2 * 4 / 16)
    assert float(metrics.dice(a, a)) == 1.0
    rng = np.random.default_rng(4)
    x, y = rng.random((2, 20, 20)) > 0.6
    want = 1.0 - scipy.spatial.distance.dice(x.ravel(), y.ravel())
    assert float(metrics.dice(x, y)) == pytest.approx(want, rel=1e-12)
