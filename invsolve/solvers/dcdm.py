"""The deep conjugate direction method (DCDM) for ``A x = b`` with ``A`` symmetric positive
definite: a Krylov-like iteration whose search directions come from a network.

Kaneda, Akar, Chen, Kala, Teran, "A Deep Conjugate Direction Method for Iteratively Solving
Linear Systems", ICML 2023. Algorithm 1 of the paper:

    r_0 = b - A x_0
    q_k = f(r_k / |r_k|)                                   the network, ~ A^{-1} r_k up to a scale
    q_k <- q_k - sum_{j = k-m..k-1} (q_k.A p_j / p_j.A p_j) p_j      A-orthogonal to the last m
    x_{k+1} = x_k + (q_k.r_k / q_k.A q_k) q_k               exact line search
    r_{k+1} = b - A x_{k+1}                                  recomputed, not recursive

and its unsupervised training (eq. 9 of the paper): minimise the mean over right-hand sides
``b`` of ``|b - A (q.b / q.A q) q|^2`` with ``q = f(b)``, the residual after one exact line
search along ``f(b)``; the ``b`` are random combinations of Ritz vectors of ``A`` from a
Lanczos run, with the low half of the spectrum weighted x9 (the paper's ``datasetcreate.py``).

Here the network (`invsolve.nn.ConvUNet`, float32) sees two channels, the residual scaled to
unit RMS (the paper's ``r/|r|`` times ``sqrt(n)``, so that the input is O(1) on every grid
size) and the fluid mask of the operator (1 in fluid cells, 0 in solid obstacle cells), and
its output is zeroed in solid cells. The solid cells of an `invsolve.problems.poisson`
operator decouple (``A`` is the identity there), so the iteration starts from ``x_0 = b``
on them and never touches them again.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy.linalg import eigh_tridiagonal

from .. import weights
from .._batch import data_parallel
from .._linop import AbstractLinearOperator, HasSolids
from .._problem import HasLinearOperator
from .._solution import Estimate
from .._solver import AbstractSolver, Requirement, SymmetricOperator, check_nonneg, check_rtol, key_optimizer
from .._train import fit
from ..linalg.krylov import krylov_terminate, vdot
from ..nn import ConvUNet


def _solid(A):
    """The obstacle mask of ``A`` (where it is the identity), or None."""
    return A.solid if isinstance(A, HasSolids) else None


class _GridDimension(Requirement):
    """The operator acts on a grid of the model's dimension (None: any)."""

    def __init__(self, ndim):
        self.ndim = ndim

    def unmet(self, problem):
        shape = tuple(problem.operator().in_shape)
        if self.ndim is None or self.ndim == len(shape):
            return None
        return (f"an operator on {self.ndim}D grids (its model was trained on {self.ndim}D grids but the operator acts "
                f"on a {len(shape)}D grid of shape {shape}); use a {len(shape)}D model (e.g. "
                f"invsolve.solvers.dcdm.pretrained('poisson{len(shape)}d-...'))")


def _fluid(A) -> jax.Array:
    """1.0 in cells where ``A`` is not the identity (fluid), 0.0 in solid cells."""
    solid = _solid(A)
    if solid is None:
        return jnp.ones(A.in_shape, A.dtype)
    return jnp.where(solid, 0.0, 1.0).astype(A.dtype)


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
class DCDMModel(eqx.Module):
    """A trained DCDM network: ``model(r, fluid) -> q``, a search direction for residual ``r``.

    ``r`` and ``fluid`` have the grid shape (2D or 3D, any size: the network is fully
    convolutional); ``q`` has the same shape and is zero where ``fluid`` is 0. Float32
    parameters; the input is cast to them and the output cast back to ``r.dtype``.

    Attributes:
        graphdef: the `ConvUNet` structure (static); params: its weights.
        ndim: grid dimension the model was trained for (static).
        config: ``(features, levels, blocks)`` of the network (static).
        info: how it was trained, as ``((key, value), ...)`` (static; for reports).
    """

    graphdef: Any = eqx.field(static=True)
    params: Any
    ndim: int = eqx.field(static=True)
    config: tuple[int, int, int] = eqx.field(static=True)
    info: tuple = eqx.field(default=(), static=True)

    @classmethod
    def init(cls, ndim: int, key, features: int = 16, levels: int = 1, blocks: int = 2,
             dtype=jnp.float32) -> "DCDMModel":
        """A fresh (untrained) model for ``ndim``-dimensional grids."""
        net = ConvUNet(ndim, 2, 1, features, levels, blocks, rngs=nnx.Rngs(key), dtype=dtype)
        graphdef, params = nnx.split(net)
        return cls(graphdef, params, ndim, (features, levels, blocks))

    def batch(self, r, fluid):
        """``r``: ``(batch, *grid)``; ``fluid``: ``(*grid)`` or ``(batch, *grid)``."""
        dtype = jax.tree.leaves(self.params)[0].dtype
        axes = tuple(range(1, r.ndim))
        rms = jnp.sqrt(jnp.mean(jnp.square(r), axis=axes, keepdims=True))
        x = (r / jnp.where(rms > 0, rms, 1.0)).astype(dtype)
        m = jnp.broadcast_to(fluid, r.shape).astype(dtype)
        q = nnx.merge(self.graphdef, self.params)(jnp.stack([x, m], axis=-1))[..., 0]
        return (q * m).astype(r.dtype)

    def __call__(self, r, fluid):
        return self.batch(r[None], fluid)[0]

    @property
    def n_params(self) -> int:
        return int(sum(np.size(x) for x in jax.tree.leaves(self.params)))

    def save(self, path) -> None:
        """Write the weights and configuration to ``path`` (``.npz``; `invsolve.weights.save`)."""
        weights.save(path, self, ndim=self.ndim, config=list(self.config))

    @classmethod
    def load(cls, path) -> "DCDMModel":
        """Read a model written by `save` (`invsolve.weights.load`)."""
        return weights.load(path, lambda meta: cls.init(int(meta["ndim"]), jax.random.key(0), *meta["config"]),
                            "DCDMModel")

    @classmethod
    def pretrained(cls, name: str) -> "DCDMModel":
        """A model shipped with invsolve: ``"poisson2d-64"`` (trained on 64^2 grids) or
        ``"poisson3d-32"`` (trained on 32^3 grids). ``invsolve/weights/MANIFEST.md`` gives the
        command that trained each (`invsolve.recipes`) and its wall time."""
        return weights.pretrained(cls, "dcdm", name)


pretrained = DCDMModel.pretrained  # dcdm.pretrained(name), as the README and notebooks call it


# --------------------------------------------------------------------------------------
# the solver
# --------------------------------------------------------------------------------------
class DCDMState(eqx.Module):
    x: jax.Array
    r: jax.Array
    P: jax.Array  # (m, *grid): the last m directions, newest first (zeros before they exist)
    AP: jax.Array  # A applied to them
    pAp: jax.Array  # (m,)
    rnorm: jax.Array
    bnorm: jax.Array
    curvature_ok: jax.Array


class DCDM(AbstractSolver):
    """Deep conjugate direction method (Kaneda et al. 2023, Algorithm 1) for ``A x = b``.

    Args:
        model: a `DCDMModel` (e.g. `pretrained("poisson2d-64")` or `train(...)`), or any
            callable ``model(r, fluid) -> q`` with an ``ndim`` attribute.
        rtol, atol: stop when the recomputed residual ``|b - A x| <= max(rtol |b|, atol)``.
        n_orthogonalize: A-orthogonalize each direction against this many previous ones
            (the paper: 2; 4 costs two more stored vectors and helped on large grids, see
            docs/results.md).
        max_steps: iteration budget (default 200).

    Works in the dtype of ``b`` (the network runs in its own float32). History:
    ``residual`` = ``|b - A x_k| / |b|``, the true residual. Stops with
    ``RESULTS.breakdown`` if a direction has ``q.A q <= 0`` (the operator is not positive
    definite, or the network returned zero).
    """

    model: Any
    rtol: float = 1e-4
    atol: float = 0.0
    n_orthogonalize: int = 2
    max_steps: int | None = None

    def __check_init__(self):
        if not callable(self.model):
            raise TypeError(f"DCDM model must be a DCDMModel or a callable model(r, fluid); got {self.model!r}.")
        check_rtol("DCDM rtol", self.rtol, positive=True)
        check_nonneg("DCDM atol", self.atol, allow_none=False)
        check_nonneg("DCDM n_orthogonalize", self.n_orthogonalize, integer=True, allow_none=False)
        check_nonneg("DCDM max_steps", self.max_steps, integer=True)

    def default_max_steps(self, problem):
        return 200

    @property
    def requires(self):
        return (HasLinearOperator, SymmetricOperator(), _GridDimension(getattr(self.model, "ndim", None)))

    def prepare(self, problem):
        b = problem.y_obs
        if not isinstance(b, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(b))):
            raise ValueError("DCDM: the right-hand side contains NaN or infinite values.")
        return self

    def init(self, problem, key=None):
        A = problem.operator()
        b = problem.y_obs
        solid = _solid(A)
        x = jnp.zeros_like(b) if solid is None else jnp.where(solid, b, 0.0)  # A = I on solids
        r = b - A.mv(x)
        m = self.n_orthogonalize
        return DCDMState(
            x=x, r=r, P=jnp.zeros((m, *b.shape), b.dtype), AP=jnp.zeros((m, *b.shape), b.dtype),
            pAp=jnp.ones((m,), b.dtype), rnorm=jnp.linalg.norm(r), bnorm=jnp.linalg.norm(b),
            curvature_ok=jnp.array(True),
        )

    def step(self, problem, state):
        A = problem.operator()
        b = problem.y_obs
        q = jnp.asarray(self.model(state.r, _fluid(A)), b.dtype)
        for j in range(self.n_orthogonalize):  # modified Gram-Schmidt in the A-inner product
            q = q - (vdot(q, state.AP[j]) / state.pAp[j]) * state.P[j]
        Aq = A.mv(q)
        qAq = vdot(q, Aq)
        ok = jnp.isfinite(qAq) & (qAq > 0)
        alpha = jnp.where(ok, vdot(q, state.r) / jnp.where(ok, qAq, 1.0), 0.0)
        x = state.x + alpha * q
        r = b - A.mv(x)
        rnorm = jnp.linalg.norm(r)
        def push(stack, v):  # newest first, the oldest dropped
            return jnp.concatenate([v[None], stack[:-1]]) if len(stack) else stack

        new = DCDMState(x=x, r=r, P=push(state.P, q), AP=push(state.AP, Aq), pAp=push(state.pAp, jnp.where(ok, qAq, 1.0)),
                        rnorm=rnorm, bnorm=state.bnorm, curvature_ok=ok)
        return new, {"residual": rnorm / jnp.where(state.bnorm > 0, state.bnorm, 1.0)}

    def terminate(self, problem, state):
        return krylov_terminate(self, state)

    def postprocess(self, problem, state):
        return Estimate(state.x)


# --------------------------------------------------------------------------------------
# training data: Ritz vectors from Lanczos
# --------------------------------------------------------------------------------------
def _lanczos(A, v0, n_steps: int):
    """``n_steps`` Lanczos steps with full reorthogonalisation: (alpha, beta, Q (n_steps, n)).

    A host loop over a jitted ``A.mv``: the reorthogonalisation against the filled rows of
    ``Q`` is two BLAS matrix-vector products (numpy, float64): 1500 steps on a 64^2 grid take
    3 s, against 150 s for the same loop compiled by XLA with a fixed-size ``Q``."""
    mv = jax.jit(lambda x: A.mv(x.reshape(A.in_shape).astype(A.dtype)).ravel())
    n = v0.size
    Q = np.zeros((n_steps, n))
    alpha, beta = np.zeros(n_steps), np.zeros(n_steps)
    q = np.array(v0, np.float64).ravel()
    q /= np.linalg.norm(q)
    q_prev, b_prev = np.zeros_like(q), 0.0
    for i in range(n_steps):
        Q[i] = q
        w = np.array(mv(q), np.float64)
        alpha[i] = q @ w
        w -= alpha[i] * q + b_prev * q_prev
        for _ in range(2):  # classical Gram-Schmidt twice ("twice is enough")
            w -= Q[: i + 1].T @ (Q[: i + 1] @ w)
        beta[i] = np.linalg.norm(w)
        if beta[i] <= 1e-10 * max(1.0, abs(alpha[: i + 1]).max()):  # an invariant subspace: done
            return alpha[: i + 1], beta[:i], Q[: i + 1]
        q_prev, q, b_prev = q, w / beta[i], beta[i]
    return alpha, beta[:-1], Q


def ritz_pairs(A, n_steps: int, key) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values (ascending, ``(m,)``) and Ritz vectors (``(m, *grid)``, orthonormal) of
    ``A`` from ``n_steps`` Lanczos steps (full reorthogonalisation) started from a random
    vector supported on the fluid cells (so solid cells, where ``A = I``, stay out).
    ``A.mv`` runs in the operator's dtype, the rest in float64 numpy; memory
    ``n_steps * A.size`` float64 numbers."""
    n_steps = int(min(n_steps, int(np.prod(A.in_shape))))
    v0 = jax.random.normal(key, A.in_shape, A.dtype) * _fluid(A)
    alpha, beta, Q = _lanczos(A, v0, n_steps)
    theta, S = eigh_tridiagonal(alpha, beta)
    return theta, (S.T @ Q).reshape((len(theta), *A.in_shape))


def training_rhs(A, n_vectors: int, key, n_lanczos: int = 1000, low_weight: float = 9.0) -> np.ndarray:
    """``n_vectors`` right-hand sides ``b = sum_j w_j c_j v_j / |.|`` (``(n_vectors, *grid)``):
    Ritz vectors ``v_j`` of ``A`` from ``n_lanczos`` Lanczos steps, ``c_j ~ N(0, 1)``,
    ``w_j = low_weight`` (9) on the lowest half of the Ritz values plus a margin of 5% of
    them (the paper's m/2 + 500 of m = 10000), 1 above; Ritz values below 1e-6 of the
    largest are dropped (the null space of a singular operator)."""
    k1, k2 = jax.random.split(key)
    theta, V = ritz_pairs(A, n_lanczos, k1)
    keep = theta > 1e-6 * theta.max()
    theta, V = theta[keep], V[keep]
    m = len(theta)
    w = np.ones(m, V.dtype)
    w[: min(m, m // 2 + m // 20)] = low_weight
    c = np.asarray(jax.random.normal(k2, (n_vectors, m)), V.dtype) * w
    b = (c @ V.reshape(m, -1)).reshape((n_vectors, *A.in_shape))
    b /= np.linalg.norm(b.reshape(n_vectors, -1), axis=1).reshape((-1,) + (1,) * len(A.in_shape))
    return b


def one_step_loss(model: DCDMModel, A, b) -> jax.Array:
    """Mean over the batch ``b`` (``(batch, *grid)``) of ``|b - A (q.b / q.A q) q|^2``,
    ``q = model(b)``: the residual after one exact line search (Kaneda et al., eq. 9)."""
    q = model.batch(b, _fluid(A)).astype(b.dtype)
    Aq = jax.vmap(A.mv)(q)
    axes = tuple(range(1, b.ndim))
    alpha = jnp.sum(q * b, axes, keepdims=True) / jnp.sum(q * Aq, axes, keepdims=True)
    return jnp.mean(jnp.sum(jnp.square(b - alpha * Aq), axes))


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------
def _family(operators) -> list:
    ops = [operators] if not isinstance(operators, (list, tuple)) else list(operators)
    if not ops:
        raise ValueError("dcdm.train needs at least one operator.")
    shape = ops[0].in_shape
    for i, A in enumerate(ops):
        if not isinstance(A, AbstractLinearOperator) or not A.symmetric:
            raise TypeError(f"dcdm.train: operator {i} is not a symmetric linear operator ({type(A).__name__}).")
        if A.in_shape != shape:
            raise ValueError(f"dcdm.train: operator {i} has grid shape {A.in_shape}, operator 0 has {shape}; "
                             "train on one grid size (the network then applies to any size).")
    if len(shape) not in (2, 3):
        raise ValueError(f"dcdm.train works on 2D or 3D grids, got shape {shape}.")
    if len({type(A) for A in ops}) > 1:
        raise TypeError("dcdm.train: all operators must be of the same type.")
    if isinstance(ops[0], HasSolids):  # make them stackable: an obstacle-free operator gets an all-False mask
        ops = [A if A.solid is not None else dataclasses.replace(A, solid=jnp.zeros(shape, bool)) for A in ops]
    return ops


def train(operators, optimizer: optax.GradientTransformation | None = None, n_vectors: int = 4000,
          key=None, *, n_lanczos: int = 1000, steps: int = 10_000, batch_size: int = 10,
          features: int = 16, levels: int = 1, blocks: int = 2, checkpoint=None,
          save_every_s: float = 60.0, progress: bool | None = None, devices=None) -> DCDMModel:
    """Train a DCDM network on ``operators`` (one SPD operator, or a list of them on the same
    grid, e.g. Poisson operators with different obstacles) by the paper's unsupervised loss.

    For each operator, ``n_vectors / len(operators)`` right-hand sides come from
    `training_rhs` (``n_lanczos`` Lanczos steps). Each of the ``steps`` updates takes a
    random batch of ``batch_size`` of them, from the operators in turn, and applies
    ``optimizer`` (default: Adam 1e-3 with cosine decay to 1e-5; the paper: Adam 1e-4,
    batch 10) to `one_step_loss`. Float32. ``features``, ``levels``, ``blocks``: the
    `ConvUNet`; the default is the paper's one pooling level with 16 channels (a 4-level
    net fitted 64^2 grids better but stalled on 128^2 ones: its coarse levels learn the box).

    Progress goes to stderr (default: when stderr is a terminal). With ``checkpoint`` (a
    ``.npz`` path) the weights, optimizer state and step are written every
    ``save_every_s`` seconds and at the end; calling `train` again with the same
    arguments resumes there, with the same batches as an uninterrupted run. ``devices``:
    data-parallel training, each batch split over this many devices (parameters replicated).
    Returns the `DCDMModel`.
    """
    replicate, shard = data_parallel(devices)

    ops = _family(operators)
    check_nonneg("dcdm.train steps", steps, integer=True, allow_none=False)
    for name, v in (("n_vectors", n_vectors), ("batch_size", batch_size), ("n_lanczos", n_lanczos)):
        if not (isinstance(v, (int, np.integer)) and v >= 1):
            raise ValueError(f"dcdm.train {name} must be a positive integer, got {v!r}.")
    if optimizer is None:
        optimizer = optax.adam(optax.cosine_decay_schedule(1e-3, max(steps, 1), alpha=1e-2))
    key = jax.random.key(0) if key is None else key
    k_model, k_data, k_batch = jax.random.split(key, 3)
    nd = len(ops[0].in_shape)
    t0 = time.perf_counter()
    per_op = max(1, n_vectors // len(ops))
    data = np.stack([training_rhs(A, per_op, jax.random.fold_in(k_data, i), n_lanczos)
                     for i, A in enumerate(ops)]).astype(np.float32)
    data_time = time.perf_counter() - t0
    data = jnp.asarray(data)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *ops)

    model = DCDMModel.init(nd, k_model, features, levels, blocks)
    graphdef, config = model.graphdef, model.config

    @jax.jit
    def update(carry, data, stacked):
        params, opt_state, step = carry
        i = step % len(ops)
        A = jax.tree.map(lambda x: x[i], stacked)
        idx = jax.random.randint(jax.random.fold_in(k_batch, step), (batch_size,), 0, per_op)
        b = shard(data[i][idx])
        loss, g = jax.value_and_grad(lambda p: one_step_loss(DCDMModel(graphdef, p, nd, config), A, b))(params)
        upd, opt_state = optimizer.update(g, opt_state, params)
        return (optax.apply_updates(params, upd), opt_state, step + 1), loss

    carry = (model.params, optimizer.init(model.params), jnp.zeros((), jnp.int32))
    (params, _, _), all_losses, wall = fit(lambda c, k: update(c, data, stacked), carry, steps, name="dcdm.train",
                                           checkpoint=checkpoint, save_every_s=save_every_s, progress=progress,
                                           place=replicate, identity=(data, stacked, key, batch_size,
                                                                      key_optimizer(optimizer, model.params).key))
    info = (("grid", "x".join(map(str, ops[0].in_shape))), ("n_operators", len(ops)), ("n_vectors", per_op * len(ops)),
            ("n_lanczos", n_lanczos), ("steps", steps), ("batch_size", batch_size),
            ("final_loss", float(np.mean(all_losses[-200:])) if all_losses.size else float("nan")),
            ("data_time_s", round(data_time, 1)), ("train_time_s", round(wall, 1)))
    return dataclasses.replace(model, params=params, info=info)
