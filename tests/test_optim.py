"""invsolve.optim: M-FAC and SOAP against direct computations (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import invsolve as inv
from invsolve import optim
from helpers import count_compilations


def _rand(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


# --- M-FAC ------------------------------------------------------------------------------
@pytest.mark.parametrize("m,n_grads", [(8, 8), (8, 13), (5, 3)])
def test_mfac_direction_equals_dense_inverse(m, n_grads):
    """After n gradients the direction is (lam I + (1/m) sum over the last m g g^T)^-1 g."""
    d, lam = 40, 1e-2
    gs = _rand(1, n_grads, d)
    tx = optim.scale_by_mfac(window=m, damping=lam)
    params = {"a": jnp.zeros((4, 5)), "b": jnp.zeros(20)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    unravel = lambda v: {"a": jnp.asarray(v[:20]).reshape(4, 5), "b": jnp.asarray(v[20:])}
    for g in gs:
        out, state = update(unravel(g), state)
    window = gs[-m:]
    F = lam * np.eye(d) + window.T @ window / m
    want = np.linalg.solve(F, gs[-1])
    got = np.concatenate([np.ravel(out["a"]), np.ravel(out["b"])])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_mfac_window_one_closed_form():
    g = _rand(2, 30)
    lam = 0.3
    tx = optim.scale_by_mfac(window=1, damping=lam)
    out, _ = tx.update(jnp.asarray(g), tx.init(jnp.zeros(30)))
    np.testing.assert_allclose(out, g / (lam + g @ g), rtol=1e-12)


def test_mfac_state_is_vmappable_and_compiles_once():
    tx = optim.mfac(1e-2, window=4, damping=1e-3, momentum=0.9)
    params = jnp.zeros((3, 6))  # three independent problems
    state = jax.vmap(tx.init)(params)
    step = jax.jit(jax.vmap(tx.update))
    g = jnp.asarray(_rand(3, 3, 6))
    gs = [g * (k + 1) for k in range(6)]
    with count_compilations() as n:
        for gk in gs:
            _, state = step(gk, state)
    assert n["lower"] == 1
    # each problem's window holds its own gradients
    np.testing.assert_allclose(state[0].grads[1, 1], 6 * g[1])


# --- SOAP -------------------------------------------------------------------------------
def test_soap_rotated_second_moments_match_direct_computation():
    """With the basis fixed after the first step, V = sum_i (1-b2) b2^(n-i) (Q_L^T G_i Q_R)^2."""
    b2, n = 0.9, 6
    gs = _rand(3, n, 5, 4)
    tx = optim.scale_by_soap(b1=0.8, b2=b2, precondition_frequency=1000)
    state = tx.init({"w": jnp.zeros((5, 4))})
    for g in gs:
        out, state = tx.update({"w": jnp.asarray(g)}, state)
    L1, R1 = (1 - b2) * gs[0] @ gs[0].T, (1 - b2) * gs[0].T @ gs[0]
    QL, QR = state.q_left[0], state.q_right[0]
    # the stored bases are the eigenvectors of the first step's L and R
    np.testing.assert_allclose(QL.T @ L1 @ QL, np.diag(np.diag(QL.T @ L1 @ QL)), atol=1e-12)
    np.testing.assert_allclose(QR.T @ R1 @ QR, np.diag(np.diag(QR.T @ R1 @ QR)), atol=1e-12)
    V = sum((1 - b2) * b2 ** (n - 1 - i) * (QL.T @ g @ QR) ** 2 for i, g in enumerate(gs))
    np.testing.assert_allclose(state.nu[0], V, rtol=1e-12)
    # and the direction is Adam's in that basis
    M = sum((1 - 0.8) * 0.8 ** (n - 1 - i) * g for i, g in enumerate(gs))
    want = QL @ ((QL.T @ M @ QR / (1 - 0.8 ** n)) / (np.sqrt(V / (1 - b2 ** n)) + 1e-8)) @ QR.T
    np.testing.assert_allclose(out["w"], want, rtol=1e-10)


def test_soap_basis_refresh_tracks_the_preconditioner():
    """At a refresh the basis diagonalises the current L and R."""
    gs = _rand(4, 5, 6, 3)
    tx = optim.scale_by_soap(precondition_frequency=2)
    state = tx.init(jnp.zeros((6, 3)))
    for g in gs:  # steps 0..4: refreshes at 0, 2, 4
        _, state = tx.update(jnp.asarray(g), state)
    for S, Q in ((state.left[0], state.q_left[0]), (state.right[0], state.q_right[0])):
        D = Q.T @ S @ Q
        np.testing.assert_allclose(D, np.diag(np.diag(D)), atol=1e-12 * np.abs(D).max())


def test_soap_falls_back_to_adam_for_other_ranks():
    """Biases, scalars and 3-axis tensors get exactly optax's Adam with the same betas/eps."""
    params = {"b": jnp.zeros(7), "s": jnp.zeros(()), "t": jnp.zeros((2, 3, 4))}
    tx, adam = optim.soap(0.1), optax.adam(0.1)
    s1, s2 = tx.init(params), adam.init(params)
    for k in range(4):
        g = jax.tree.map(lambda p: jnp.asarray(_rand(10 + k, *p.shape)), params)
        u1, s1 = tx.update(g, s1, params)
        u2, s2 = adam.update(g, s2, params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), u1, u2)
    assert all(x is None for x in s1[0].left)


def _kron_quadratic(seed=0, a=12, b=8, cond=1e6):
    """f(W) = 1/2 <W - W*, H_L (W - W*) H_R>: a Kronecker-factored Hessian H_R (x) H_L whose
    eigenbases are random rotations (so the ill-conditioning is not axis-aligned)."""
    rng = np.random.default_rng(seed)

    def spd(n):
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        return q @ np.diag(np.logspace(0, np.log10(cond) / 2, n)) @ q.T

    HL, HR, Ws = spd(a), spd(b), rng.standard_normal((a, b))
    f = lambda W: 0.5 * jnp.sum((W - Ws) * (HL @ (W - Ws) @ HR))
    return f, jnp.zeros((a, b))


def _run(tx, f, w, steps):
    s = tx.init(w)

    def body(carry, _):
        w, s = carry
        u, s = tx.update(jax.grad(f)(w), s, w)
        return (optax.apply_updates(w, u), s), None

    (w, _), _ = jax.lax.scan(body, (w, s), None, steps)
    return float(f(w))


def test_soap_beats_adam_on_an_ill_conditioned_quadratic():
    """Best final loss over one learning-rate grid, 300 steps each (Hessian condition number
    1e6, f(0) = 2.1e6). Measured: SOAP 2.1e-8, Adam 4.8e2; bounds at 10x / 0.2x of those."""
    f, w0 = _kron_quadratic()
    lrs = [1e-2, 3e-2, 1e-1, 3e-1, 1.0]
    best_soap = min(_run(optim.soap(lr), f, w0, 300) for lr in lrs)
    best_adam = min(_run(optax.adam(lr), f, w0, 300) for lr in lrs)
    assert best_soap < 2e-7 and best_adam > 1e2, (best_soap, best_adam)


def test_mfac_minimises_a_quadratic_in_gradient_map():
    """M-FAC as GradientMAP's optimizer on a Tikhonov MAP reaches the closed-form solution of
    the normal equations (measured 3e-13 relative after 1000 steps). Gradients start at
    |g| = 2e4: the empirical-Fisher step is ~ lr / |g| while |g|^2 >> damping and plain
    gradient descent with rate lr / damping = 2e-4 (< 2 / lambda_max(H) = 2.3e-4) after."""
    rng = np.random.default_rng(0)
    A = jnp.asarray(rng.standard_normal((30, 20)))
    x_true = jnp.asarray(rng.standard_normal(20))
    prob = inv.LinearInverse(inv.MatrixOperator.from_array(A), A @ x_true, inv.GaussianNoise(0.1))
    prior = inv.priors.Tikhonov(1.0)
    sol = inv.solve(prob, inv.solvers.GradientMAP(optim.mfac(1e3, window=8, damping=5e6), prior=prior,
                                                  max_steps=1000), key=jax.random.key(0))
    assert sol.result == inv.RESULTS.successful, sol.result
    H = A.T @ A / 0.01 + np.eye(20)  # the MAP's normal equations
    want = np.linalg.solve(H, A.T @ (A @ x_true) / 0.01)
    assert np.linalg.norm(sol.value - want) < 1e-10 * np.linalg.norm(want)


# --- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: optim.mfac(1e-2, window=0), "window must be an integer >= 1"),
    (lambda: optim.mfac(1e-2, window=2.5), "window must be an integer >= 1"),
    (lambda: optim.mfac(1e-2, damping=0.0), "damping must be a positive finite number"),
    (lambda: optim.mfac(1e-2, damping=-1.0), "damping must be a positive finite number"),
    (lambda: optim.mfac(1e-2, momentum=1.0), "momentum must lie in"),
    (lambda: optim.soap(1e-3, precondition_frequency=0), "precondition_frequency must be an integer >= 1"),
    (lambda: optim.soap(1e-3, b2=1.0), "b2 must lie in"),
    (lambda: optim.soap(1e-3, eps=0), "eps must be a positive"),
])
def test_bad_settings_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_then_switches_stage_and_passes_extra_args():
    """Adam for 3 steps then L-BFGS: the first updates are Adam's, and L-BFGS (which needs
    value/grad/value_fn) then minimises a quadratic to machine precision."""
    f = lambda w: 0.5 * jnp.sum((jnp.arange(1.0, 5.0) * (w - 1.0)) ** 2)
    tx, adam = optim.then(optax.adam(0.1), optax.lbfgs(), 3), optax.adam(0.1)
    w, s, sa = jnp.zeros(4), tx.init(jnp.zeros(4)), adam.init(jnp.zeros(4))
    wa = w
    for k in range(20):
        v, g = jax.value_and_grad(f)(w)
        u, s = tx.update(g, s, w, value=v, grad=g, value_fn=f)
        if k < 3:
            ua, sa = adam.update(jax.grad(f)(wa), sa, wa)
            np.testing.assert_allclose(u, ua, rtol=1e-12)
            wa = wa + ua
        w = w + u
    assert float(f(w)) < 1e-20
    with pytest.raises(ValueError, match="at must be an integer >= 0"):
        optim.then(optax.adam(0.1), optax.lbfgs(), -1)
