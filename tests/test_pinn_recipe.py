"""The PINN training recipe of Wang et al. 2023 (jaxpi): weight factorisation, periodic and
Fourier embeddings, causal weighting, gradient-norm balancing; each against a direct
computation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import invsolve as inv
from invsolve.nn import FactorizedLinear, FieldNet, PirateNet
from invsolve.problems import pde, poisson


@pytest.fixture(scope="module")
def ac():
    return pde.allen_cahn_1d(nx_eval=16, nt_eval=5, n_ic=16, n_bc=8)


def _small(**kw):
    kw = {"hidden": (8, 8), **kw}
    return inv.solvers.PINN(optax.adam(1e-3), n_collocation=64, steps=3, warmup_steps=0, dtype=jnp.float64, **kw)


def test_factorized_layer_starts_as_the_glorot_layer():
    """W = V diag(exp(s)) with V = W0 / exp(s): the effective kernel is the Glorot draw."""
    rngs = nnx.Rngs(3)
    w0 = nnx.initializers.glorot_normal()(rngs.params(), (5, 7), jnp.float64)
    layer = FactorizedLinear(5, 7, 1.0, 0.1, rngs=nnx.Rngs(3), dtype=jnp.float64)
    np.testing.assert_allclose(layer.v[...] * jnp.exp(layer.s[...]), w0, rtol=1e-12)
    assert 0.6 < float(jnp.mean(layer.s[...])) < 1.4  # s ~ N(1, 0.1)
    x = jnp.ones((2, 5))
    np.testing.assert_allclose(layer(x), x @ w0, rtol=1e-12)


def test_periodic_embedding_is_exactly_periodic(ac):
    solver = _small(periodic=True, features="fourier", fourier_scale=2.0, fourier_dim=16,
                    factorized=True).prepare(ac)
    u = solver.field(ac, solver.init_params(ac, jax.random.key(1)))
    t = jnp.linspace(0.0, 1.0, 9)
    left = u(jnp.stack([jnp.full_like(t, -1.0), t], -1))
    right = u(jnp.stack([jnp.full_like(t, 1.0), t], -1))
    np.testing.assert_allclose(left, right, atol=1e-12)
    inside = u(jnp.stack([jnp.full_like(t, 0.3), t], -1))
    assert float(jnp.max(jnp.abs(inside - left))) > 1e-3  # and not constant


def test_fourier_features_are_fixed_and_match_their_formula():
    net = FieldNet(2, 1, (4,), "tanh", rngs=nnx.Rngs(0), dtype=jnp.float64, fourier=(3.0, 10))
    B = net.embed.B[...]
    assert B.shape == (2, 5) and 1.0 < float(jnp.std(B)) < 6.0
    x = jnp.array([[0.2, -0.4]])
    np.testing.assert_allclose(net.embed(x), jnp.concatenate([jnp.cos(x @ B), jnp.sin(x @ B)], -1), rtol=1e-12)
    grads = nnx.grad(lambda n: jnp.sum(n(x)))(net)
    assert float(jnp.max(jnp.abs(grads["embed"]["B"][...]))) == 0.0


def test_causal_weighting_matches_a_direct_computation(ac):
    solver = _small(causal=True, causal_tol=5.0, causal_chunks=4)
    rng = np.random.default_rng(0)
    pts = jnp.asarray(np.stack([rng.uniform(-1, 1, 40), rng.uniform(0, 1, 40)], -1))
    res = jnp.asarray(rng.standard_normal(40))
    got = solver._causal_mean(ac, res, pts)
    chunk = np.minimum((np.asarray(pts[:, 1]) * 4).astype(int), 3)
    L = np.array([np.mean(np.asarray(res)[chunk == i] ** 2) for i in range(4)])
    w = np.exp(-5.0 * np.concatenate([[0.0], np.cumsum(L)[:-1]]))
    np.testing.assert_allclose(got, np.mean(w * L), rtol=1e-12)
    # no gradient flows through the weights: d/dres of sum w_i L_i with w frozen
    g = jax.grad(lambda r: solver._causal_mean(ac, r, pts))(res)
    want = np.array([w[c] * 2 * r / np.sum(chunk == c) / 4 for c, r in zip(chunk, np.asarray(res))])
    np.testing.assert_allclose(g, want, rtol=1e-10)


def test_grad_norm_balancing_matches_a_direct_computation(ac):
    solver = _small(weighting="grad_norm", balance_every=10).prepare(ac)
    state = solver.init(ac, jax.random.key(0))
    new, _ = solver.step(ac, state)
    terms = lambda p: solver._terms(ac, p, state.points)
    norms = {k: float(optax.global_norm(g)) for k, g in jax.jacrev(terms)(state.params).items()}
    total = sum(norms.values())
    for k, n in norms.items():
        np.testing.assert_allclose(new.balance[k], 0.9 + 0.1 * total / n, rtol=1e-10)
    # not refreshed before balance_every steps
    again, _ = solver.step(ac, new)
    for k in norms:
        assert float(again.balance[k]) == float(new.balance[k])


def test_recipe_trains_allen_cahn_with_soap(ac):
    """The issue's example at CPU scale: SOAP with the whole recipe lowers the loss."""
    pinn = inv.solvers.PINN(optimizer=inv.optim.soap(1e-3), hidden=(16,) * 2, features="fourier", factorized=True,
                            periodic=True, causal=True, weighting="grad_norm", steps=60, n_collocation=128,
                            fourier_dim=16, warmup_steps=0)
    sol = inv.solve(ac, pinn, key=jax.random.key(0))
    loss = np.asarray(sol.history["loss"])
    assert sol.result == inv.RESULTS.successful and np.isfinite(sol.metrics["rel_l2"])
    assert loss[-1] < 0.5 * loss[0], (loss[0], loss[-1])


def test_piratenet_starts_linear_in_its_embedding_and_its_blocks_follow_the_equations():
    net = PirateNet(2, 1, 8, 2, rngs=nnx.Rngs(0), dtype=jnp.float64, periodic=(0,), fourier_scale=1.0)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (5, 2)))
    phi = net.embed(x)
    np.testing.assert_allclose(net(x), net.out(phi), rtol=1e-12)  # alpha = 0: the blocks are skipped
    net.alpha[...] = jnp.array([0.3, 0.7])
    U, V = jnp.tanh(net.gate_u(phi)), jnp.tanh(net.gate_v(phi))
    h = phi
    for a, (l1, l2, l3) in zip((0.3, 0.7), net.layers):
        f = jnp.tanh(l1(h))
        g = jnp.tanh(l2(f * U + (1 - f) * V))
        h = a * jnp.tanh(l3(g * U + (1 - g) * V)) + (1 - a) * h
    np.testing.assert_allclose(net(x), net.out(h), rtol=1e-12)


def test_pinn_with_a_piratenet_trains(ac):
    pinn = inv.solvers.PINN(optimizer=inv.optim.soap(1e-3), hidden=(16,) * 3, architecture="pirate", periodic=True,
                            steps=60, n_collocation=128, warmup_steps=0)
    sol = inv.solve(ac, pinn, key=jax.random.key(0))
    loss = np.asarray(sol.history["loss"])
    assert sol.result == inv.RESULTS.successful and loss[-1] < 0.5 * loss[0], (loss[0], loss[-1])


@pytest.mark.parametrize("kwargs,match", [
    (dict(architecture="resnet"), "architecture must be 'mlp' or 'pirate'"),
    (dict(architecture="pirate", hidden=(8, 8)), r"needs hidden = \(width,\) \* 3 \* blocks"),
    (dict(fourier_scale=0.0), "fourier_scale must be a positive finite number"),
    (dict(fourier_scale=-1.0), "fourier_scale must be a positive finite number"),
    (dict(causal_tol=0.0), "causal_tol must be a positive finite number"),
    (dict(causal_chunks=0), "causal_chunks must be an integer >= 1"),
    (dict(fourier_dim=1), "fourier_dim must be an integer >= 2"),
    (dict(features="gabor"), "features must be None or 'fourier'"),
    (dict(weighting="ntk"), "weighting must be None or 'grad_norm'"),
    (dict(factorized=(1.0, -0.1)), "factorized must be True, False or"),
])
def test_bad_recipe_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _small(**kwargs)


def test_causal_or_periodic_on_a_problem_without_that_axis_is_refused():
    prob = poisson.PoissonPINN(hard_bc=True, n_eval=5)
    with pytest.raises(ValueError, match="causal=True needs a time-dependent problem"):
        inv.solve(prob, _small(causal=True), key=jax.random.key(0))
    with pytest.raises(ValueError, match="periodic=True needs a problem with periodic axes"):
        inv.solve(prob, _small(periodic=True), key=jax.random.key(0))
    with pytest.raises(ValueError, match="time_periodic=True needs a time-dependent problem"):
        inv.solve(prob, _small(time_periodic=True), key=jax.random.key(0))


def test_time_periodic_embedding_has_a_trained_period(ac):
    """Time embedded as (cos(w t), sin(w t)) with w trained from pi: the field repeats after
    2 pi / w in the scaled time, and d/dw of the output matches a central difference."""
    solver = _small(periodic=True, time_periodic=True, features="fourier", fourier_dim=16).prepare(ac)
    params = solver.init_params(ac, jax.random.key(2))
    assert float(params["net"]["embed"]["omega"][...]) == pytest.approx(np.pi)
    net = nnx.merge(solver.graphdef, params["net"])
    z = jnp.array([[0.3, -0.7], [-0.5, 0.2]])
    np.testing.assert_allclose(net(z), net(z + jnp.array([0.0, 2.0])), atol=1e-12)  # one period: 2 in scaled time
    with pytest.raises(ValueError, match="time_periodic axis 0 must be an input axis"):
        FieldNet(2, 1, (4,), "tanh", rngs=nnx.Rngs(0), periodic=(0,), time_periodic=0)

    def out(w):
        p = jax.tree.map(lambda a: a, params)
        p["net"]["embed"]["omega"] = p["net"]["embed"]["omega"].replace(w)
        return jnp.sum(nnx.merge(solver.graphdef, p["net"])(z))

    w0, h = jnp.asarray(np.pi), 1e-6
    fd = (out(w0 + h) - out(w0 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(out)(w0), fd, rtol=1e-6)
    assert abs(float(fd)) > 1e-3
