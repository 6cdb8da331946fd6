"""The deep conjugate direction method: Lanczos data, the loss, the iteration, training,
the shipped models, and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.ndimage as ndi

import invsolve as inv
from invsolve.nn import ConvUNet
from invsolve.problems import poisson
from invsolve.solvers import dcdm
from helpers import tree_allclose


class Dense(eqx.Module):
    """A "network" that applies a fixed matrix: the exact inverse, or the identity."""

    M: jax.Array
    ndim: int = eqx.field(default=2, static=True)

    def __call__(self, r, fluid):
        return (self.M @ r.ravel()).reshape(r.shape) * fluid


def _op(n=12, key=3, obstacles=True):
    mask = poisson.smoke_obstacles((n, n), jax.random.key(key)) if obstacles else None
    return poisson.operator((n, n), kappa=jnp.ones((n, n), jnp.float64), obstacles=mask)


def _fluid_block(A):
    dense = A.to_scipy().toarray()
    fluid = ~np.asarray(A.solid).ravel() if A.solid is not None else np.ones(dense.shape[0], bool)
    return dense[np.ix_(fluid, fluid)], fluid


def test_smoke_obstacles_leave_no_enclosed_fluid_and_an_spd_operator():
    mask = np.asarray(poisson.smoke_obstacles((40, 40), jax.random.key(0), n_obstacles=8))
    assert 0.05 < mask.mean() < 0.6
    labels, n = ndi.label(~mask)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    assert set(range(1, n + 1)) <= set(border.tolist())  # every fluid region touches a wall
    assert np.array_equal(mask, np.asarray(poisson.smoke_obstacles((40, 40), jax.random.key(0), n_obstacles=8)))
    assert poisson.smoke_obstacles(8, jax.random.key(1)).shape == (8, 8, 8)
    block, _ = _fluid_block(_op(12))
    assert np.linalg.eigvalsh(block).min() > 0


def test_ritz_pairs_of_a_full_lanczos_run_are_the_eigenpairs():
    A = _op(12)
    block, fluid = _fluid_block(A)
    theta, V = dcdm.ritz_pairs(A, 400, jax.random.key(0))  # more steps than fluid cells: stops early
    assert len(theta) == fluid.sum()
    np.testing.assert_allclose(theta, np.linalg.eigvalsh(block), rtol=1e-13, atol=0)  # measured 3.9e-14
    V = V.reshape(len(theta), -1)
    np.testing.assert_allclose(V @ V.T, np.eye(len(theta)), atol=5e-15)  # measured 1.3e-15
    assert np.abs(V[:, ~fluid]).max() == 0  # solid cells stay out of the Krylov space
    dense = A.to_scipy().toarray()
    np.testing.assert_allclose(V @ dense, theta[:, None] * V, atol=1e-15 * theta.max())  # measured 2.0e-16


def test_training_rhs_are_unit_norm_and_weight_the_low_modes_nine_times():
    A = _op(12)
    theta, V = dcdm.ritz_pairs(A, 400, jax.random.key(0))
    b = dcdm.training_rhs(A, 4000, jax.random.key(0), n_lanczos=400)
    assert b.shape == (4000, 12, 12)
    np.testing.assert_allclose(np.linalg.norm(b.reshape(4000, -1), axis=1), 1.0, rtol=1e-12)
    c = b.reshape(4000, -1) @ V.reshape(len(theta), -1).T  # coefficients in the eigenbasis
    m = len(theta)
    n_low = m // 2 + m // 20
    ratio = np.mean(c[:, :n_low] ** 2) / np.mean(c[:, n_low:] ** 2)
    assert 70 < ratio < 95  # 81 = 9^2; measured 77.2


def test_one_step_loss_matches_a_dense_computation():
    A = _op(12)
    model = dcdm.DCDMModel.init(2, jax.random.key(1), features=4, levels=1, blocks=1)
    b = jnp.asarray(dcdm.training_rhs(A, 3, jax.random.key(2), n_lanczos=50))
    fluid = 1.0 - np.asarray(A.solid, float)
    dense = A.to_scipy().toarray()
    expected = []
    for bi in np.asarray(b):
        q = np.asarray(model(jnp.asarray(bi), jnp.asarray(fluid))).ravel()
        alpha = q @ bi.ravel() / (q @ dense @ q)
        expected.append(np.sum((bi.ravel() - alpha * dense @ q) ** 2))
    np.testing.assert_allclose(float(dcdm.one_step_loss(model, A, b)), np.mean(expected), rtol=1e-14)  # measured 7.8e-16


@pytest.mark.parametrize("obstacles", [False, True])
def test_dcdm_with_the_exact_inverse_converges_in_one_step(obstacles):
    A = _op(12, obstacles=obstacles)
    b = jax.random.normal(jax.random.key(0), (12, 12), jnp.float64)
    if obstacles:
        b = b.at[3, 3].set(2.0)  # a value in a solid cell: x = b there
    Ainv = jnp.asarray(np.linalg.inv(A.to_scipy().toarray()))
    sol = inv.solve(poisson.linear_system(A, b), inv.solvers.DCDM(Dense(Ainv), rtol=1e-10))
    assert sol.result == inv.RESULTS.successful
    assert sol.stats["num_steps"] == 1
    assert float(jnp.linalg.norm(b - A.mv(sol.value)) / jnp.linalg.norm(b)) < 1e-12


def test_dcdm_with_the_identity_network_is_conjugate_gradients():
    """q = r A-orthogonalised against the previous direction is exactly CG's direction, so
    the iterates coincide (float64, no preconditioner)."""
    A = _op(16, obstacles=True)
    b = jax.random.normal(jax.random.key(1), (16, 16), jnp.float64) * (1 - A.solid)
    ident = Dense(jnp.eye(256, dtype=jnp.float64))
    d = inv.solve(poisson.linear_system(A, b), inv.solvers.DCDM(ident, rtol=1e-8, n_orthogonalize=1, max_steps=400))
    c = inv.solve(poisson.linear_system(A, b), inv.solvers.CG(rtol=1e-8))
    k = 25
    np.testing.assert_allclose(d.history["residual"][:k], c.history["residual"][:k], rtol=1e-14)  # measured 4.0e-15
    assert d.stats["num_steps"] == c.stats["num_steps"]  # measured 58 and 58


def test_dcdm_true_residual_is_recomputed():
    A = _op(16)
    b = jax.random.normal(jax.random.key(1), (16, 16), jnp.float64) * (1 - A.solid)
    sol = inv.solve(poisson.linear_system(A, b), inv.solvers.DCDM(Dense(jnp.eye(256)), rtol=1e-6, max_steps=500))
    true = float(jnp.linalg.norm(b - A.mv(sol.value)) / jnp.linalg.norm(b))
    assert sol.result == inv.RESULTS.successful and true <= 1e-6
    assert sol.history["residual"][-1] == pytest.approx(true, rel=1e-10)


@pytest.mark.parametrize("name,shape,obst_key", [("poisson2d-64", (128, 128), 11)])
def test_pretrained_model_beats_cg_fourfold_on_an_unseen_size_and_layout(name, shape, obst_key):
    model = dcdm.pretrained(name)
    A = poisson.operator(shape, obstacles=poisson.smoke_obstacles(shape, jax.random.key(obst_key)))
    b = jax.random.normal(jax.random.key(2), shape, jnp.float64) * (1 - A.solid)
    A = poisson.operator(shape, kappa=jnp.ones(shape, jnp.float64), obstacles=A.solid)
    sol = inv.solve(poisson.linear_system(A, b), inv.solvers.DCDM(model, rtol=1e-4))
    cg = inv.solve(poisson.linear_system(A, b), inv.solvers.CG(rtol=1e-4))
    assert sol.result == inv.RESULTS.successful
    assert float(jnp.linalg.norm(b - A.mv(sol.value)) / jnp.linalg.norm(b)) <= 1e-4
    assert sol.stats["num_steps"] * 4 <= cg.stats["num_steps"], (sol.stats["num_steps"], cg.stats["num_steps"])
    assert sol.stats["num_steps"] <= 30, sol.stats["num_steps"]  # measured 20 (CG: 261)


def test_pretrained_models_load():
    m2, m3 = dcdm.pretrained("poisson2d-64"), dcdm.pretrained("poisson3d-32")
    assert (m2.ndim, m3.ndim) == (2, 3)
    assert dict(m2.info)["grid"] == "64x64" and dict(m3.info)["grid"] == "32x32x32"
    q = m3(jnp.ones((10, 12, 9)), jnp.ones((10, 12, 9)))  # any size, also not a multiple of 2^levels
    assert q.shape == (10, 12, 9) and bool(jnp.all(jnp.isfinite(q)))
    with pytest.raises(ValueError, match="available: poisson2d-64, poisson3d-32"):
        dcdm.pretrained("poisson4d")


def test_model_save_load_roundtrip(tmp_path):
    model = dcdm.DCDMModel.init(3, jax.random.key(0), features=4, levels=2, blocks=1)
    model.save(tmp_path / "m.npz")
    back = dcdm.DCDMModel.load(tmp_path / "m.npz")
    assert back.config == model.config and tree_allclose(back.params, model.params, rtol=0)


def test_conv_unet_keeps_odd_shapes():
    from flax import nnx

    net = ConvUNet(2, 2, 1, features=4, levels=3, rngs=nnx.Rngs(0))
    assert net(jnp.ones((2, 13, 30, 2))).shape == (2, 13, 30, 1)


def test_training_resumes_from_a_checkpoint_exactly(tmp_path):
    ops = [poisson.operator((16, 16)), poisson.operator((16, 16), obstacles=poisson.smoke_obstacles((16, 16), jax.random.key(0)))]
    kw = dict(optimizer=optax.adam(1e-3), n_vectors=40, key=jax.random.key(0), n_lanczos=30, batch_size=4,
              features=4, levels=2, blocks=1, progress=False)
    full = dcdm.train(ops, steps=6, **kw)
    ck = tmp_path / "ck.npz"
    dcdm.train(ops, steps=3, checkpoint=ck, **kw)  # "killed" after 3 steps
    resumed = dcdm.train(ops, steps=6, checkpoint=ck, **kw)
    assert tree_allclose(resumed.params, full.params, rtol=0)
    assert not tree_allclose(resumed.params, dcdm.train(ops, steps=3, **kw).params, rtol=1e-6)


@pytest.mark.slow  # 9 s on a quiet 2-core machine, cold cache
def test_training_lowers_the_loss():
    A = poisson.operator((16, 16))
    model = dcdm.train(A, n_vectors=200, key=jax.random.key(0), n_lanczos=60, steps=150, batch_size=8,
                       features=8, levels=2, blocks=1, progress=False)
    b = jnp.asarray(dcdm.training_rhs(A, 50, jax.random.key(9), n_lanczos=60), jnp.float32)
    untrained = dcdm.DCDMModel.init(2, jax.random.key(0), features=8, levels=2, blocks=1)
    # measured 0.188 vs 1.235 untrained (0.15x); 2.3x margin
    assert float(dcdm.one_step_loss(model, A, b)) < 0.35 * float(dcdm.one_step_loss(untrained, A, b))


# --- bad input ---------------------------------------------------------------------------
def test_a_2d_model_on_a_3d_operator_is_refused():
    model = dcdm.DCDMModel.init(2, jax.random.key(0), features=4, levels=1, blocks=1)
    prob = poisson.linear_system(poisson.operator((8, 8, 8)), jnp.ones((8, 8, 8)))
    with pytest.raises(inv.ProblemSolverIncompatible, match="trained on 2D grids but the operator acts on a 3D grid"):
        inv.solve(prob, inv.solvers.DCDM(model))


def test_nan_right_hand_side_is_refused():
    model = dcdm.DCDMModel.init(2, jax.random.key(0), features=4, levels=1, blocks=1)
    b = jnp.ones((8, 8)).at[2, 2].set(jnp.nan)
    with pytest.raises(ValueError, match="right-hand side contains NaN"):
        inv.solve(inv.LinearSystem(poisson.operator((8, 8)), b), inv.solvers.DCDM(model))


@pytest.mark.parametrize("rtol", [0.0, -1e-4, float("nan")])
def test_rtol_must_be_positive(rtol):
    with pytest.raises(ValueError, match="rtol must be a positive number"):
        inv.solvers.DCDM(Dense(jnp.eye(4)), rtol=rtol)


def test_negative_curvature_stops_with_breakdown():
    M = np.diag([1.0, -1.0, 2.0, 3.0])
    A = inv.MatrixOperator.from_array(M, in_shape=(2, 2), out_shape=(2, 2), symmetric=True)
    b = jnp.array([[0.0, 1.0], [0.0, 0.0]])
    sol = inv.solve(inv.LinearSystem(A, b), inv.solvers.DCDM(Dense(jnp.eye(4)), rtol=1e-8), throw=False)
    assert sol.result == inv.RESULTS.breakdown
    assert bool(jnp.all(jnp.isfinite(sol.value)))


def test_training_on_different_grid_sizes_is_refused():
    with pytest.raises(ValueError, match="train on one grid size"):
        dcdm.train([poisson.operator((8, 8)), poisson.operator((16, 16))], steps=1)
