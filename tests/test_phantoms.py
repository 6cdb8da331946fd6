"""Phantoms: Shepp-Logan against scikit-image, random ellipses, MNI152 brain slices."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from invsolve.problems import phantoms

pytest.importorskip("skimage")
import skimage.data  # noqa: E402
import skimage.transform  # noqa: E402


def _outside_disk(size):
    i = np.arange(size) - size // 2
    return i[:, None] ** 2 + i[None, :] ** 2 > (size // 2) ** 2


def test_shepp_logan_matches_skimage_at_400():
    ref = skimage.data.shepp_logan_phantom()  # 400 x 400, stored with 8-bit intensities
    got = np.asarray(phantoms.shepp_logan(400))
    assert got.shape == (400, 400) and got.dtype == np.float64
    agree = np.mean(np.abs(got - ref) < 0.02)
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert agree > 0.99 and rel < 0.05, (agree, rel)
    assert agree < 1.0 or np.mean(np.abs(got[:, ::-1] - ref) < 0.02) < 0.99  # orientation matters
    np.testing.assert_allclose(np.unique(got), [0.0, 0.1, 0.2, 0.3, 0.4, 1.0], atol=1e-12)


def test_shepp_logan_128_close_to_resized_skimage():
    ref = skimage.transform.resize(skimage.data.shepp_logan_phantom(), (128, 128))
    got = np.asarray(phantoms.shepp_logan(128))
    # ours is point-sampled, the resize is antialiased: only edge pixels differ much
    assert np.mean(np.abs(got - ref)) < 0.02
    assert np.mean(np.abs(got - ref) > 0.25) < 0.05


@pytest.mark.parametrize("size", [8, 9, 64, 129])
def test_shepp_logan_range_and_support(size):
    img = np.asarray(phantoms.shepp_logan(size))
    assert img.shape == (size, size)
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert np.all(img[_outside_disk(size)] == 0.0)


def test_default_dtype_follows_x64():
    jax.config.update("jax_enable_x64", False)
    try:
        assert phantoms.shepp_logan(16).dtype == jnp.float32
        assert phantoms.random_ellipses(jax.random.key(0), 1, 16).dtype == jnp.float32
    finally:
        jax.config.update("jax_enable_x64", True)
    assert phantoms.shepp_logan(16).dtype == jnp.float64


def test_random_ellipses_range_support_and_determinism():
    k = jax.random.key(7)
    imgs = phantoms.random_ellipses(k, 6, 48)
    assert imgs.shape == (6, 48, 48) and imgs.dtype == jnp.float64
    x = np.asarray(imgs)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.all(x[:, _outside_disk(48)] == 0.0)
    assert np.all(x.reshape(6, -1).max(1) > 0)  # every image has an ellipse
    assert len({x[i].tobytes() for i in range(6)}) == 6  # images differ within the batch
    np.testing.assert_array_equal(x, phantoms.random_ellipses(k, 6, 48))
    assert not np.array_equal(x, phantoms.random_ellipses(jax.random.key(8), 6, 48))


def test_random_ellipses_jit_and_vmap_in_key():
    keys = jax.random.split(jax.random.key(1), 3)
    f = jax.jit(phantoms.random_ellipses, static_argnums=(1, 2, 3))
    v = jax.vmap(lambda k: phantoms.random_ellipses(k, 2, 24, 4))(keys)
    assert v.shape == (3, 2, 24, 24)
    for k, vi in zip(keys, v):
        np.testing.assert_allclose(f(k, 2, 24, 4), vi, atol=1e-12)


@pytest.mark.parametrize("bad", [4, 7, 16.0, "64", True, None])
def test_bad_size_raises(bad):
    """Sizes must be ints >= 8 (floats, strings and bools are refused)."""
    with pytest.raises(ValueError, match="size must be an int >= 8"):
        phantoms.shepp_logan(bad)
    with pytest.raises(ValueError, match="size must be an int >= 8"):
        phantoms.random_ellipses(jax.random.key(0), 1, bad)


def test_random_ellipses_bad_arguments():
    with pytest.raises(ValueError, match="n and n_ellipses must be ints >= 1"):
        phantoms.random_ellipses(jax.random.key(0), 0, 16)
    with pytest.raises(ValueError, match="axes"):
        phantoms.random_ellipses(jax.random.key(0), 1, 16, axes=(0.5, 0.95))


def test_brain_argument_errors():
    with pytest.raises(ValueError, match=r"index must be a number in \[0, 1\]"):
        phantoms.brain_slice(64, index=1.5)
    with pytest.raises(ValueError, match=r"index must be a number in \[0, 1\]"):
        phantoms.brain_slice(64, index=float("nan"))
    with pytest.raises(ValueError, match="axis must be 0 .* 1 .* or 2"):
        phantoms.brain_slice(64, axis=3)
    with pytest.raises(ValueError, match="unknown kind 'pd'; known kinds: 't1', 'gm', 'wm'"):
        phantoms.brain_slice(64, kind="pd")
    with pytest.raises(ValueError, match="size must be an int >= 8"):
        phantoms.brain_slice(4)
    with pytest.raises(ValueError, match="shape must be three ints"):
        phantoms.brain_volume((32, 32))
    with pytest.raises(ValueError, match="unknown kind"):
        phantoms.brain_volume(kind="T1")


def test_brain_needs_nilearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "nilearn", None)  # makes `import nilearn...` fail
    with pytest.raises(ImportError, match=r"brain_slice needs nilearn.*pip install -e \"\.\[brain\]\""):
        phantoms.brain_slice(32)
    with pytest.raises(ImportError, match="brain_volume needs nilearn"):
        phantoms.brain_volume()


@pytest.fixture(scope="module")
def nilearn():
    return pytest.importorskip("nilearn.datasets")


@pytest.mark.parametrize("axis,kind", [(2, "t1"), (1, "gm"), (0, "wm")])  # sagittal off the midline
def test_brain_slice(nilearn, axis, kind):
    img = np.asarray(phantoms.brain_slice(64, 0.5 if axis else 0.35, axis, kind))
    assert img.shape == (64, 64) and img.dtype == np.float64
    assert img.min() >= 0.0 and img.max() == pytest.approx(1.0)
    assert np.mean(img > 0) > 0.2
    assert np.all(img[_outside_disk(64)] == 0.0)


def test_brain_slice_orientation(nilearn):
    vol = np.asarray(nilearn.load_mni152_template(resolution=1).get_fdata())  # (197, 233, 189) RAS
    # axial at full size (no resampling): rows anterior -> posterior, columns left -> right
    got = np.asarray(phantoms.brain_slice(233, 0.5, 2))
    want = np.zeros((233, 233))
    want[:, 18:215] = vol[:, ::-1, 94].T
    want = np.where(_outside_disk(233), 0.0, want)
    np.testing.assert_allclose(got, want / want.max(), atol=1e-6)
    # sagittal midline: superior at the top, so the cerebellum (posterior) sits bottom left
    sag = np.asarray(phantoms.brain_slice(64, 0.5, 0))
    low = sag[48:]
    assert (low.sum(0) @ np.arange(64)) / low.sum() < 28
    rows = np.nonzero(sag.sum(1))[0]
    assert rows.min() > 63 - rows.max()  # the brain sits low in the MNI box


def test_brain_volume(nilearn):
    vol = np.asarray(phantoms.brain_volume((24, 28, 20)))
    assert vol.shape == (24, 28, 20)
    assert vol.min() >= 0.0 and vol.max() == pytest.approx(1.0)
    assert np.mean(vol > 0.1) > 0.2


def test_orthogonal_training_slices_share_no_voxel_with_the_held_out_slabs(monkeypatch):
    """The coronal and sagittal training slices of the ``mni-64`` score prior: with a template
    whose held-out planes (test and validation slabs with their 4-slice guards, z 84-115 and
    124-139) are NaN, none of the 149 planes handed to the resampler contains a NaN, while an
    uncut coronal plane of the same volume would."""
    vol = np.ones((197, 233, 189))
    vol[:, :, 84:116] = np.nan
    vol[:, :, 124:140] = np.nan
    planes = []
    resample = phantoms._resample_slice
    monkeypatch.setattr(phantoms, "_template", lambda kind: vol)
    monkeypatch.setattr(phantoms, "_require_nilearn", lambda caller: None)
    monkeypatch.setattr(phantoms, "_resample_slice",
                        lambda v, k, axis, size: planes.append(np.take(v, k, axis=axis)) or resample(v, k, axis, size))
    x = phantoms.orthogonal_slices(16)
    assert x.shape == (149, 16, 16) and len(planes) == 149
    assert not any(np.isnan(p).any() for p in planes)
    assert {p.shape for p in planes} == {(197, 141), (233, 141)}  # 189 - 48 planes cut out
    assert np.isnan(np.take(vol, 100, axis=1)).any()
