"""Curvature-aware optimizers as optax ``GradientTransformation``s: M-FAC and SOAP.

Both compose with optax's chains and schedules and work in every optimising solver
(`GradientMAP`, `PINN`, network training), like any optax optimizer::

    inv.solvers.PINN(optimizer=inv.optim.soap(1e-3))
    inv.solvers.GradientMAP(optax.chain(optax.clip_by_global_norm(1.0), inv.optim.mfac(1e-2)))

The state is a pytree of fixed-shape arrays (jit- and vmap-safe; one compilation serves
every step). Arithmetic runs in the parameters' dtype.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

__all__ = ["mfac", "scale_by_mfac", "mfac_inverse_product", "soap", "scale_by_soap", "then", "MFACState", "SOAPState",
           "ThenState"]


def _positive_int(owner, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}.")
    return value


def _positive_float(owner, name, value, *, below_one=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not (math.isfinite(v) and v > 0) or (below_one and v >= 1):
        rng = "in (0, 1)" if below_one else "a positive finite number"
        raise ValueError(f"{owner}: {name} must be {rng}, got {value!r}.")
    return v


def _unit_interval(owner, name, value):
    v = float(value) if not isinstance(value, bool) else math.nan
    if not (0.0 <= v < 1.0):
        raise ValueError(f"{owner}: {name} must lie in [0, 1), got {value!r}.")
    return v


# =====================================================================================
# M-FAC (Frantar, Kurtic & Alistarh, NeurIPS 2021)
# =====================================================================================
class MFACState(NamedTuple):
    grads: jax.Array  # (m, d): the window of flattened gradients (a ring buffer; empty slots are 0)
    gram: jax.Array  # (m, m): their scalar products G G^T
    count: jax.Array  # gradients seen


def mfac_inverse_product(grads, gram, v, damping):
    """``(damping I + (1/m) sum_i g_i g_i^T)^-1 v`` for the rows ``g_i`` of ``grads`` (m, d).

    The recursive Woodbury form of dense M-FAC (Frantar et al. 2021, Sec. 3): with
    ``F_0 = damping I`` and ``F_i = F_{i-1} + g_i g_i^T / m``,
    ``F_i^-1 v = F_{i-1}^-1 v - a_i (a_i^T v) / (m + g_i^T a_i)`` where ``a_i = F_{i-1}^-1 g_i``.
    Each ``a_i`` is kept as coefficients on the window, ``a_i = sum_k B_ik g_k``, so the
    recursion runs on the Gram matrix ``gram = G G^T`` alone: O(m^3) scalar work, plus
    O(m d) for the two products with the window (``G v`` and ``G^T w``). Rows of zeros (an
    unfilled window) contribute nothing.
    """
    m = grads.shape[0]
    lam = jnp.asarray(damping, grads.dtype)

    def row(i, carry):
        B, den = carry
        c = (B @ gram[:, i]) / den  # a_j^T g_i / d_j for the rows j < i (later rows are still 0)
        b = jax.nn.one_hot(i, m, dtype=grads.dtype) / lam - c @ B
        return B.at[i].set(b), den.at[i].set(m + b @ gram[:, i])

    B, den = jax.lax.fori_loop(0, m, row, (jnp.zeros((m, m), grads.dtype), jnp.ones((m,), grads.dtype)))
    w = B @ (grads @ v) / den
    return v / lam - grads.T @ (B.T @ w)


def scale_by_mfac(window: int = 32, damping: float = 1e-4) -> optax.GradientTransformation:
    """Precondition the gradient with the dense M-FAC inverse empirical Fisher.

    The direction is ``(damping I + (1/m) sum_{i<=m} g_i g_i^T)^-1 g`` over a sliding window
    of the last ``m = window`` gradients (the current one included), all parameters raveled
    into one vector of length d (Frantar, Kurtic & Alistarh 2021, Eq. 1 and the dense
    algorithm of Sec. 3). Memory ``m d + m^2``; per step O(m d) for the products with the
    window and O(m^3) for the m x m recursion (negligible for m << d).

    ``damping`` sets the scale. The empirical Fisher has the units of g^2, so while
    ``|g|^2 >> damping`` the direction is ~ ``g / |g|^2`` (a normalised step) and once
    ``|g|^2 << damping`` it is ``g / damping`` (gradient descent with rate
    ``learning_rate / damping``). For a deterministic MAP pick ``damping`` near the squared
    gradient norm where the run should turn into stable gradient descent; for stochastic
    training (the paper's use) a small damping (1e-4 to 1e-6) with SGD-sized rates.
    """
    _positive_int("mfac", "window", window)
    damping = _positive_float("mfac", "damping", damping)

    def init(params):
        flat, _ = ravel_pytree(params)
        return MFACState(jnp.zeros((window, flat.size), flat.dtype), jnp.zeros((window, window), flat.dtype),
                         jnp.zeros((), jnp.int32))

    def update(updates, state, params=None):
        del params
        g, unravel = ravel_pytree(updates)
        g = g.astype(state.grads.dtype)
        i = state.count % window
        grads = state.grads.at[i].set(g)
        r = grads @ g
        gram = state.gram.at[i, :].set(r).at[:, i].set(r)
        d = mfac_inverse_product(grads, gram, g, damping)
        return unravel(d), MFACState(grads, gram, state.count + 1)

    return optax.GradientTransformation(init, update)


def mfac(learning_rate, window: int = 32, damping: float = 1e-4, momentum: float = 0.0) -> optax.GradientTransformation:
    """M-FAC: the `scale_by_mfac` direction, optional heavy-ball ``momentum`` (the paper's
    optimizer runs M-FAC under SGD with momentum), times ``learning_rate`` (a float or an
    optax schedule)."""
    momentum = _unit_interval("mfac", "momentum", momentum)
    parts = [scale_by_mfac(window, damping)]
    if momentum:
        parts.append(optax.trace(momentum))
    return optax.chain(*parts, optax.scale_by_learning_rate(learning_rate))


# =====================================================================================
# SOAP (Vyas et al. 2024: "SOAP: Improving and Stabilizing Shampoo using Adam")
# =====================================================================================
class SOAPState(NamedTuple):
    count: jax.Array  # steps taken
    mu: tuple  # first moments, in the original basis (one per leaf)
    nu: tuple  # second moments, in the rotated basis (one per leaf)
    left: tuple  # per leaf: Shampoo's L = EMA of G G^T (a,a), or None (Adam leaf)
    right: tuple  # per leaf: R = EMA of G^T G (b,b), or None
    q_left: tuple  # eigenvectors of L (a,a), or None
    q_right: tuple  # eigenvectors of R (b,b), or None


def _soap_leaf(p, max_dim):
    return jnp.ndim(p) == 2 and max(jnp.shape(p)) <= max_dim


def _eigvecs(s):
    """Eigenvectors of a symmetric PSD matrix, largest eigenvalue first."""
    _, q = jnp.linalg.eigh(s)
    return q[:, ::-1]


def scale_by_soap(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, precondition_frequency: int = 10,
                  shampoo_beta: float | None = None, max_precond_dim: int = 10_000) -> optax.GradientTransformation:
    """SOAP's direction: Adam run in the eigenbasis of Shampoo's preconditioner.

    For a matrix parameter W (a, b) with gradient G (Vyas et al. 2024, Algorithm 1):
    ``L <- s L + (1-s) G G^T``, ``R <- s R + (1-s) G^T G`` (``s = shampoo_beta``, default
    ``b2``); every ``precondition_frequency`` steps (the first included) ``Q_L, Q_R`` become
    the eigenvectors of ``L, R`` (by ``eigh``; the paper's cheaper option is one power
    iteration + QR) and the second moment is carried into the new basis by
    ``V <- (P_L∘P_L) V (P_R∘P_R)^T``, ``P = Q_new^T Q_old``. Then with ``G' = Q_L^T G Q_R``:
    ``M <- b1 M + (1-b1) G`` (original basis), ``V <- b2 V + (1-b2) G'^2`` and the direction is
    ``Q_L [M'_hat / (sqrt(V_hat) + eps)] Q_R^T`` with ``M' = Q_L^T M Q_R`` and Adam's bias
    corrections. Parameters of any other rank (biases, scalars, tensors), or with a side
    longer than ``max_precond_dim``, fall back to Adam with the same ``b1, b2, eps``.
    """
    b1 = _unit_interval("soap", "b1", b1)
    b2 = _unit_interval("soap", "b2", b2)
    eps = _positive_float("soap", "eps", eps)
    freq = _positive_int("soap", "precondition_frequency", precondition_frequency)
    sb = b2 if shampoo_beta is None else _unit_interval("soap", "shampoo_beta", shampoo_beta)
    _positive_int("soap", "max_precond_dim", max_precond_dim)

    def init(params):
        leaves = jax.tree.leaves(params)
        z = tuple(jnp.zeros_like(p) for p in leaves)

        def side(p, k, eye):
            if not _soap_leaf(p, max_precond_dim):
                return None
            n = jnp.shape(p)[k]
            return jnp.eye(n, dtype=p.dtype) if eye else jnp.zeros((n, n), p.dtype)

        return SOAPState(jnp.zeros((), jnp.int32), z, z,
                         tuple(side(p, 0, False) for p in leaves), tuple(side(p, 1, False) for p in leaves),
                         tuple(side(p, 0, True) for p in leaves), tuple(side(p, 1, True) for p in leaves))

    def update(updates, state, params=None):
        del params
        g_leaves, treedef = jax.tree.flatten(updates)
        t = state.count + 1
        refresh = state.count % freq == 0
        out, mus, nus, ls, rs, qls, qrs = [], [], [], [], [], [], []
        for g, m, v, L, R, QL, QR in zip(g_leaves, state.mu, state.nu, state.left, state.right, state.q_left,
                                         state.q_right):
            g = g.astype(m.dtype)
            bc1 = 1 - jnp.asarray(b1, g.dtype) ** t
            bc2 = 1 - jnp.asarray(b2, g.dtype) ** t
            m = b1 * m + (1 - b1) * g
            if L is None:  # Adam
                v = b2 * v + (1 - b2) * g * g
                out.append((m / bc1) / (jnp.sqrt(v / bc2) + eps))
            else:
                L = sb * L + (1 - sb) * g @ g.T
                R = sb * R + (1 - sb) * g.T @ g

                def rotate(L=L, R=R, QL=QL, QR=QR, v=v):
                    nl, nr = _eigvecs(L), _eigvecs(R)
                    pl, pr = jnp.square(nl.T @ QL), jnp.square(nr.T @ QR)
                    return nl, nr, pl @ v @ pr.T

                QL, QR, v = jax.lax.cond(refresh, rotate, lambda: (QL, QR, v))
                v = b2 * v + (1 - b2) * jnp.square(QL.T @ g @ QR)
                n = (QL.T @ m @ QR / bc1) / (jnp.sqrt(v / bc2) + eps)
                out.append(QL @ n @ QR.T)
            mus.append(m)
            nus.append(v)
            ls.append(L)
            rs.append(R)
            qls.append(QL)
            qrs.append(QR)
        new = SOAPState(t, tuple(mus), tuple(nus), tuple(ls), tuple(rs), tuple(qls), tuple(qrs))
        return jax.tree.unflatten(treedef, out), new

    return optax.GradientTransformation(init, update)


def soap(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, precondition_frequency: int = 10,
         weight_decay: float = 0.0, **kwargs: Any) -> optax.GradientTransformation:
    """SOAP (Vyas et al. 2024): `scale_by_soap`, optional decoupled ``weight_decay`` (AdamW
    style), times ``learning_rate`` (a float or an optax schedule). Defaults: Adam's betas
    (0.9, 0.999) and the paper's frequency 10 (its language-model runs use b1 = b2 = 0.95,
    which measured 10^4x worse than these on the ill-conditioned quadratic of the tests).
    ``kwargs`` go to `scale_by_soap`."""
    parts = [scale_by_soap(b1, b2, eps, precondition_frequency, **kwargs)]
    if weight_decay:
        parts.append(optax.add_decayed_weights(_positive_float("soap", "weight_decay", weight_decay)))
    return optax.chain(*parts, optax.scale_by_learning_rate(learning_rate))


# =====================================================================================
# Stages
# =====================================================================================
class ThenState(NamedTuple):
    count: jax.Array
    first: Any
    second: Any


def then(first: optax.GradientTransformation, second: optax.GradientTransformation, at: int
         ) -> optax.GradientTransformationExtraArgs:
    """``first`` for ``at`` steps, then ``second`` (from its fresh state): e.g. Adam then
    L-BFGS, ``then(optax.adam(1e-3), optax.lbfgs(), 1000)``. Extra arguments (``value``,
    ``grad``, ``value_fn``, as `GradientMAP` passes them) reach both."""
    _positive_int("then", "at", at, minimum=0)
    first, second = optax.with_extra_args_support(first), optax.with_extra_args_support(second)

    def init(params):
        return ThenState(jnp.zeros((), jnp.int32), first.init(params), second.init(params))

    def update(updates, state, params=None, **extra):
        def one():
            u, s = first.update(updates, state.first, params, **extra)
            return u, s, state.second

        def two():
            u, s = second.update(updates, state.second, params, **extra)
            return u, state.first, s

        u, s1, s2 = jax.lax.cond(state.count < at, one, two)
        return u, ThenState(state.count + 1, s1, s2)

    return optax.GradientTransformationExtraArgs(init, update)
