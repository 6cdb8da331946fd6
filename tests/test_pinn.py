"""The PINN solver on three physics (flame, Poisson, Fisher-KPP), and its mechanics."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import invsolve as inv
from invsolve._problem import directional_derivatives
from invsolve.nn import MLP
from invsolve.problems import flame, poisson, tumor
from invsolve._sampling import hammersley
from helpers import count_compilations


@pytest.fixture(scope="module")
def ref46():
    return flame.solve_reference(flame.FreelyPropagating(phi=0.46))


def test_directional_derivatives_of_a_row_wise_function():
    x = jnp.linspace(-1.0, 2.0, 7)[:, None] * jnp.array([[1.0, 0.5]])
    f = lambda y: jnp.sin(y[:, 0]) * jnp.exp(y[:, 1])
    v = jnp.zeros_like(x).at[:, 0].set(1.0)
    fx, d1, d2 = directional_derivatives(f, x, v)
    np.testing.assert_allclose(d1, jnp.cos(x[:, 0]) * jnp.exp(x[:, 1]), rtol=1e-12)
    np.testing.assert_allclose(d2, -fx, rtol=1e-12)


def test_hammersley_points():
    p = hammersley(8, 2)
    np.testing.assert_allclose(p[:, 0], (np.arange(8) + 0.5) / 8)
    np.testing.assert_allclose(p[:4, 1], [0.5, 0.25, 0.75, 0.125])  # van der Corput, base 2


def test_mlp_shapes_and_glorot_init():
    from flax import nnx

    net = MLP(1, 1, (64, 64, 64), rngs=nnx.Rngs(0))
    _, state = nnx.split(net)
    assert sum(x.size for x in jax.tree.leaves(state)) == 8513  # the paper's 1-64-64-64-1
    assert net(jnp.ones((5, 1))).shape == (5, 1)
    w = np.asarray(net.layers[1].kernel[...])
    assert abs(w.std() / np.sqrt(2 / 128) - 1) < 0.035  # Glorot normal: var = 2 / (fan_in + fan_out); measured 0.012
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(1, 1, activation="relu6", rngs=nnx.Rngs(0))


def test_pinn_poisson_hard_bc_matches_the_manufactured_solution():
    prob = poisson.PoissonPINN(hard_bc=True, n_eval=17)
    sol = inv.solve(prob, inv.solvers.PINN(hidden=(32, 32), n_collocation=256, steps=1500), key=jax.random.key(0))
    assert float(sol.metrics["rel_l2"]) < 2e-3  # measured 8.1e-4; 2.5x margin
    border = np.asarray(sol.value["u"])[0]  # x = 0: u = 0 exactly with the hard constraint
    np.testing.assert_allclose(border, 0.0, atol=1e-12)  # measured 0.0


def test_pinn_fisher_kpp_matches_the_travelling_wave():
    prob = tumor.FisherKPP1D(n_eval=21)
    sol = inv.solve(prob, inv.solvers.PINN(hidden=(32, 32), n_collocation=512, steps=2000), key=jax.random.key(0))
    assert float(sol.metrics["rel_l2"]) < 0.02  # measured 8.0e-3; 2.5x margin


@pytest.mark.slow  # 13 s on a quiet 2-core machine, cold cache
def test_pinn_flame_forward_finds_the_flame_speed(ref46):
    prob = flame.forward_problem(flame.FreelyPropagating(phi=0.46), s_L_init=0.4, reference=ref46)
    sol = inv.solve(prob, inv.solvers.PINN(steps=1500, warmup_steps=300), key=jax.random.key(0))
    m = sol.metrics
    # measured 1.6e-3 and 0.016; 2.5x and 3x margins
    assert abs(float(m["sL_rel_err"])) < 4e-3 and float(m["T_rel_l2"]) < 0.05
    h = sol.history
    assert h["s_L"][0] == pytest.approx(0.4) and h["loss"].shape == (1800,)
    assert {"residual", "bc_T", "bc_gradT"} <= set(h)


@pytest.mark.slow  # 11 s on a quiet 2-core machine, cold cache
def test_pinn_flame_inverse_recovers_all_unknowns(ref46):
    """From the paper's initial guesses (16 %, 15 % and 24 % off), clean data."""
    prob = flame.inverse(flame.FreelyPropagating(phi=0.46), 10, 0.0, key=jax.random.key(0), reference=ref46)
    sol = inv.solve(prob, inv.solvers.PINN(steps=2000), key=jax.random.key(1))
    m = sol.metrics
    # measured 4.1e-4 (s_L), -1.19e-2 (lambda), -7.7e-4 (Ea), T 2.4e-3; 2.5x margins
    for name, bound in (("s_L", 1e-3), ("lambda", 0.03), ("Ea", 2e-3)):
        assert abs(float(m[f"rel_err_{name}"])) < bound, (name, m)
    assert float(m["T_rel_l2"]) < 6e-3, m


def test_best_parameters_are_returned_and_lbfgs_refines():
    prob = poisson.PoissonPINN(hard_bc=True, n_eval=9)
    solver = inv.solvers.PINN(optax.adam(1e-2), hidden=(16,), n_collocation=64, steps=200, lbfgs_steps=50)
    sol = inv.solve(prob, solver, key=jax.random.key(0))
    loss = np.asarray(sol.history["loss"])
    assert loss.shape == (250,)  # no warm-up data: physics + L-BFGS stages only
    assert loss[200:].min() < loss[:200].min()  # the refinement lowers the loss
    s = sol.state
    assert float(s.best_loss) == pytest.approx(loss.min())  # the best seen is kept


def test_resampling_draws_new_points():
    prob = tumor.FisherKPP1D(n_eval=5)
    solver = inv.solvers.PINN(hidden=(8,), n_collocation=32, steps=10, resample_every=5)
    sol = inv.solve(prob, solver, key=jax.random.key(0))
    fixed = prob.collocation(32)
    assert not np.allclose(sol.state.points, fixed)
    lo, hi = np.asarray(prob.lower), np.asarray(prob.upper)
    assert np.all((np.asarray(sol.state.points) >= lo) & (np.asarray(sol.state.points) <= hi))


def test_second_solve_with_a_fresh_optimizer_does_not_recompile():
    prob = tumor.FisherKPP1D(n_eval=5)
    run = lambda: inv.solve(prob, inv.solvers.PINN(optax.adam(1e-3), hidden=(8,), n_collocation=16, steps=5),
                            key=jax.random.key(0))
    run()
    with count_compilations() as c:
        run()
    assert c["lower"] == 0, c


def test_checkpoint_resume_after_kill_gives_the_same_answer(tmp_path):
    prob = poisson.PoissonPINN(hard_bc=True, n_eval=5)
    solver = inv.solvers.PINN(hidden=(8,), n_collocation=32, steps=60)
    ref = inv.solve(prob, solver, key=jax.random.key(0), driver=inv.HostLoop(chunk_size=10))
    ckpt = os.fspath(tmp_path / "pinn.npz")

    def kill(step, info):
        if step >= 30:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        inv.solve(prob, solver, key=jax.random.key(0), driver=inv.HostLoop(chunk_size=10, checkpoint=ckpt, callback=kill))
    resumed = inv.solve(prob, solver, key=jax.random.key(0), driver=inv.HostLoop(chunk_size=10, checkpoint=ckpt))
    np.testing.assert_array_equal(resumed.value["u"], ref.value["u"])
    np.testing.assert_array_equal(resumed.history["loss"], ref.history["loss"])


def test_nan_at_initialization_names_the_term(ref46):
    prob = flame.inverse(flame.FreelyPropagating(phi=0.46), 10, 0.0, key=jax.random.key(0), reference=ref46,
                         init={"s_L": 1e-200})
    with pytest.raises(ValueError, match=r"loss term\(s\) obs_u, residual .*NaN or infinite at the initial guess.*'s_L': 1e-200"):
        inv.solve(prob, inv.solvers.PINN(hidden=(8,), steps=1, dtype=jnp.float64), key=jax.random.key(0))


def test_pinn_needs_a_residual_and_a_key():
    with pytest.raises(inv.ProblemSolverIncompatible, match="PINN needs a problem with HasResidual"):
        inv.solve(poisson.linear_system(poisson.operator((4, 4)), jnp.ones((4, 4))), inv.solvers.PINN())
    with pytest.raises(ValueError, match="stochastic"):
        inv.solve(tumor.FisherKPP1D(), inv.solvers.PINN())


@pytest.mark.parametrize("kwargs,match", [
    (dict(hidden=(0, 4)), "hidden must be a tuple of positive"),
    (dict(n_collocation=0), "n_collocation must be at least 1"),
    (dict(steps=-1), "steps must be a non-negative integer"),
    (dict(optimizer="adam"), "optax GradientTransformation"),
])
def test_pinn_bad_settings(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        inv.solvers.PINN(**kwargs)
