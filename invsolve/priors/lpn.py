"""Learned proximal networks (LPN): a denoiser that is exactly the proximal operator of a
regularizer ``R``, which can itself be evaluated.

Fang, Buchanan, Sulam, "What's in a Prior? Learned Proximal Networks for Inverse Problems",
ICLR 2024. The network is ``f = grad psi`` with ``psi`` an input-convex neural network
(`invsolve.nn.DenseICNN` for vectors, `invsolve.nn.ConvICNN` for images) plus a strong
convexity term ``alpha/2 ||y||^2``. Any such ``f`` is the prox of some ``R`` (the paper's
Theorem 3.1 after Gribonval & Nikolova):

    f(y) = argmin_x 1/2 ||y - x||^2 + R(x),
    R(f(y)) = <y, f(y)> - 1/2 ||f(y)||^2 - psi(y)          (paper eq. 3.3, up to a constant)

and `LPN.log_prior` evaluates ``R(x)`` by first inverting ``f`` (``y = f^{-1}(x)`` is the
minimiser of the strongly convex ``psi(y) - <x, y>``, found by L-BFGS; the paper's
``invert_cvx`` procedure). Training (`LPN.train`) denoises ``y = x + sigma * noise`` with
the proximal matching loss (paper eq. 3.5)

    L_PM(gamma) = 1 - exp(-||f(y) - x||^2 / gamma^2)

whose minimiser approaches the MAP denoiser (the prox of ``-sigma^2 log p``) as
``gamma -> 0``, where an L2 loss learns the MMSE denoiser (the posterior mean). The
schedule is the paper's: L1 pre-training, then ``gamma_k = gamma_min * 2^(3 - k)``,
``k = 0..3``, ``gamma_min = 0.08 sqrt(number of pixels)``, with the ``wz`` (hidden path)
weights clipped at 0 after every step. ``||f(y) - x||^2`` is used squared (not its square
root: the gradient of ``sqrt`` at 0 is NaN). Float32 parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .. import weights
from .._batch import data_parallel
from .._solver import check_nonneg, key_optimizer
from .._train import fit
from ..nn.icnn import ConvICNN, DenseICNN, clip_nonneg
from ._classic import AbstractProxPrior

LOSSES = ("proximal_matching", "l2", "l1")


def _check_sigma(sigma):
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)) \
            or not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"LPN: sigma (the training noise level) must be a positive number, got {sigma!r}.")
    return float(sigma)


class LPN(AbstractProxPrior):
    """A learned proximal network: ``prox(y) = grad psi(y)``, ``log_prior(x) = R(x)``.

    ``kind="dense"``: inputs are vectors of shape ``(dim,)`` (``shape = (dim,)``);
    ``kind="conv"``: single-channel images ``(H, W)``, any size whose sides are multiples of
    ``2**depth`` (the network is fully convolutional; ``shape`` is the training size). Leading
    axes batch. Float32 parameters by default: inputs are cast to the parameters' dtype and
    results back to the input's.

    Attributes:
        graphdef, params: the flax NNX ICNN.
        kind, shape: see above. config: ``(hidden, depth, beta)``: width, number of hidden
            layers (dense) or of resolution halvings (conv), softplus sharpness.
        alpha: strong-convexity weight (``psi += alpha/2 ||y||^2``, so ``f`` is
            ``alpha``-strongly monotone and invertible).
        sigma: the noise level it was trained to denoise (None if unknown). As a prior in a
            plug-and-play solver, ``R`` stands for ``sigma^2`` times a negative log density,
            so PnP-ADMM's natural penalty is ``rho = 1 / sigma^2``.
        info: how it was trained, ``((key, value), ...)``.
    """

    graphdef: Any = eqx.field(static=True)
    params: Any
    kind: str = eqx.field(static=True)
    shape: tuple[int, ...] = eqx.field(static=True)
    config: tuple = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    sigma: float | None = eqx.field(default=None, static=True)
    info: tuple = eqx.field(default=(), static=True)

    # --- construction ------------------------------------------------------------------
    @classmethod
    def init(cls, shape, key, *, hidden: int | None = None, depth: int | None = None, beta: float = 10.0,
             alpha: float = 1e-6, sigma: float | None = None, kind: str | None = None,
             dtype=jnp.float32) -> "LPN":
        """An untrained LPN for inputs of ``shape``: ``(dim,)`` (dense; default hidden 50,
        4 hidden-to-hidden layers, the paper's 1D setting) or ``(H, W)`` (convolutional;
        default hidden 32, 3 halvings). ``dtype``: of the parameters and the computation."""
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        kind = kind or ("dense" if len(shape) == 1 else "conv")
        if kind == "dense":
            hidden, depth = hidden or 50, depth or 4
            net = DenseICNN(shape[0], hidden, depth, beta, rngs=nnx.Rngs(key), dtype=dtype)
        elif kind == "conv":
            if len(shape) != 2:
                raise ValueError(f"LPN: a convolutional LPN takes (H, W) images, got shape {shape}.")
            hidden, depth = hidden or 32, depth or 3
            net = ConvICNN(1, hidden, depth, beta, rngs=nnx.Rngs(key), dtype=dtype)
        else:
            raise ValueError(f"LPN: kind must be 'dense' or 'conv', got {kind!r}.")
        graphdef, params = nnx.split(net)
        lpn = cls(graphdef, clip_nonneg(params), kind, shape, (hidden, depth, float(beta)), float(alpha),
                  None if sigma is None else _check_sigma(sigma))
        lpn._check_shape(shape)
        return lpn

    @classmethod
    def pretrained(cls, name: str) -> "LPN":
        """A model shipped with invsolve: ``"ellipses-64"`` (random-ellipse phantoms, 64^2)
        or ``"mni-64"`` (MNI152 T1 axial slices, 64^2). ``invsolve/weights/MANIFEST.md``
        gives the command that trained each (`invsolve.recipes`) and its wall time."""
        return weights.pretrained(cls, "lpn", name)

    # --- evaluation ---------------------------------------------------------------------
    def shape_error(self, shape):
        """Why this model cannot take an unknown of ``shape`` (None if it can); leading axes
        beyond the trained shape batch (independent vectors or images)."""
        shape = tuple(shape)
        nc = len(self.shape)
        core = shape[len(shape) - nc:] if len(shape) >= nc else shape
        if self.kind == "dense":
            if core != self.shape:
                return f"this LPN takes vectors of shape {self.shape} (leading axes batch), got {shape}"
            return None
        m = 2 ** self.config[1]
        if len(core) != 2 or core[0] % m or core[1] % m:
            return (f"this convolutional LPN takes images whose sides are multiples of {m} (trained at "
                    f"{self.shape[0]}x{self.shape[1]}; leading axes batch), got shape {shape}")
        return None

    def _check_shape(self, shape):
        why = self.shape_error(shape)
        if why is not None:
            raise ValueError(f"LPN: {why}.")

    def _psi_flat(self, y):
        """``psi`` of a batch ``(n, *core)`` in float32, shape ``(n,)``."""
        net = nnx.merge(self.graphdef, self.params)
        h = y[..., None] if self.kind == "conv" else y
        return net(h) + 0.5 * self.alpha * jnp.sum(y.reshape(y.shape[0], -1) ** 2, axis=1)

    def _batched(self, fn, y):
        self._check_shape(y.shape)
        nc = len(self.shape)
        lead, core = y.shape[:y.ndim - nc], y.shape[y.ndim - nc:]
        out = fn(y.reshape(-1, *core).astype(self.dtype))
        return out.reshape(*lead, *out.shape[1:]).astype(y.dtype)

    def psi(self, y):
        """The convex potential ``psi(y)`` (shape: the leading axes of ``y``)."""
        return self._batched(self._psi_flat, jnp.asarray(y))

    def prox(self, y):
        """The learned proximal operator ``f(y) = grad psi(y)`` (the denoiser), shape of ``y``."""
        return self._batched(lambda v: jax.grad(lambda u: jnp.sum(self._psi_flat(u)))(v), jnp.asarray(y))

    def invert(self, x, *, max_steps: int = 100, tol: float = 1e-5):
        """``y`` with ``f(y) = x``: the minimiser of ``psi(y) - <x, y>`` by L-BFGS from
        ``y = x``, stopped when the gradient ``f(y) - x`` has RMS ``<= tol * max(RMS(x), 1)``
        or after ``max_steps``. Returns ``(y, residual RMS of f(y) - x)`` per sample."""
        x = jnp.asarray(x)
        self._check_shape(x.shape)
        nc = len(self.shape)
        lead, core = x.shape[:x.ndim - nc], x.shape[x.ndim - nc:]
        ys, res = _invert_batch(self, x.reshape(-1, *core).astype(self.dtype), int(max_steps), float(tol))
        return ys.reshape(x.shape).astype(x.dtype), res.reshape(lead)

    def log_prior(self, x, *, max_steps: int = 100, tol: float = 1e-5):
        """The learned regularizer ``R(x) = -log p(x) + const`` (shape: the leading axes of
        ``x``): ``R(x) = <y, x> - 1/2 ||x||^2 - psi(y)`` with ``y = f^{-1}(x)`` (`invert`).
        Points outside the range of ``f`` (where ``R = +inf``) give the value at the
        nearest point L-BFGS reaches; `invert` reports the residual. On 64^2 brain slices
        100 L-BFGS steps give ``R`` to 5 digits (500 steps change it by 1e-5 relative)."""
        x = jnp.asarray(x)
        y, _ = self.invert(x, max_steps=max_steps, tol=tol)
        axes = tuple(range(x.ndim - len(self.shape), x.ndim))
        return jnp.sum(y * x, axis=axes) - 0.5 * jnp.sum(x * x, axis=axes) - self.psi(y)

    def log_density_neg(self, x):
        return jnp.sum(self.log_prior(x))

    @property
    def dtype(self):
        """The dtype of the parameters, in which the network computes."""
        return jax.tree.leaves(self.params)[0].dtype

    @property
    def n_params(self) -> int:
        return int(sum(np.size(x) for x in jax.tree.leaves(self.params)))

    # --- persistence --------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the weights and configuration to ``path`` (``.npz``; `invsolve.weights.save`)."""
        weights.save(path, self, kind=self.kind, shape=list(self.shape), config=list(self.config),
                     alpha=self.alpha, sigma=self.sigma)

    @classmethod
    def load(cls, path) -> "LPN":
        """Read a model written by `save` (`invsolve.weights.load`)."""
        def build(meta):
            hidden, depth, beta = meta["config"]
            return cls.init(meta["shape"], jax.random.key(0), hidden=hidden, depth=depth, beta=beta,
                            alpha=meta["alpha"], sigma=meta["sigma"], kind=meta["kind"])

        return weights.load(path, build, "LPN")

    # --- training -----------------------------------------------------------------------
    @classmethod
    def train(cls, dataset, sigma: float, optimizer: optax.GradientTransformation | None = None,
              loss: str = "proximal_matching", key=None, *, steps: int = 2000, batch_size: int = 32,
              gammas=None, pretrain_fraction: float = 0.5, augment: Callable | None = None,
              init: "LPN | None" = None, checkpoint=None, save_every_s: float = 60.0,
              progress: bool | None = None, time_limit_s: float | None = None, devices=None,
              **network) -> "LPN":
        """Train an LPN to denoise ``y = x + sigma * N(0, I)`` for clean ``x`` from ``dataset``.

        Args:
            dataset: clean samples, an array ``(n, *shape)`` (``(n, dim)`` vectors or
                ``(n, H, W)`` images) from which batches are drawn with replacement, or a
                function ``(key, batch_size) -> (batch_size, *shape)`` that samples them.
            sigma: noise level (> 0), in the units of the data.
            optimizer: any optax transformation (default Adam 1e-3).
            loss: ``"proximal_matching"`` (L1 for ``pretrain_fraction`` of the steps, then
                the proximal matching loss with ``gammas`` in equal stages), ``"l2"``
                (squared error: the MMSE denoiser) or ``"l1"``.
            key: PRNG key (initialisation, batches, noise).
            steps: total optimizer steps; batch_size: samples per step.
            gammas: the proximal matching widths (default the paper's
                ``0.08 sqrt(pixels) * (8, 4, 2, 1)``).
            augment: ``(key, batch) -> batch`` applied to every clean batch (flips,
                intensity scaling, ...).
            init: an LPN to continue from (e.g. an L1-trained one) instead of a fresh one.
            checkpoint, save_every_s, progress: as `invsolve.solvers.dcdm.train` (resume
                after a kill with the same batches as an uninterrupted run).
            time_limit_s: stop (checkpoint written) after the first step past this many
                seconds; the same call continues from the checkpoint.
            devices: data-parallel training: each batch split over this many devices (or
                this list; parameters replicated, gradients summed by XLA). None: one device.
            network: `LPN.init` options (``hidden``, ``depth``, ``beta``, ``alpha``).
        """
        sigma = _check_sigma(sigma)
        replicate, shard = data_parallel(devices)
        if loss not in LOSSES:
            raise ValueError(f"LPN.train: loss must be one of {', '.join(map(repr, LOSSES))}, got {loss!r}.")
        check_nonneg("LPN.train steps", steps, integer=True, allow_none=False)
        if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
            raise ValueError(f"LPN.train: batch_size must be a positive integer, got {batch_size!r}.")
        if not 0 <= pretrain_fraction < 1:
            raise ValueError(f"LPN.train: pretrain_fraction must be in [0, 1), got {pretrain_fraction!r}.")
        key = jax.random.key(0) if key is None else key
        k_init, k_data = jax.random.split(key)
        sample, shape = _sampler(dataset, batch_size)
        model = init if init is not None else cls.init(shape, k_init, sigma=sigma, **network)
        model._check_shape((1, *shape))
        model = dataclasses.replace(model, sigma=sigma)
        stages = _stages(loss, steps, gammas, pretrain_fraction, math.prod(shape))
        optimizer = optax.adam(1e-3) if optimizer is None else optimizer

        def loss_fn(params, x, y, kind, gamma):
            d = dataclasses.replace(model, params=params).prox(y) - x
            axes = tuple(range(1, d.ndim))
            if kind == "l1":
                return jnp.mean(jnp.sum(jnp.abs(d), axis=axes))
            sq = jnp.sum(d * d, axis=axes)
            return jnp.mean(sq) if kind == "l2" else jnp.mean(1.0 - jnp.exp(-sq / gamma**2))

        @functools.partial(jax.jit, static_argnums=(1,))
        def update(carry, kind, gamma):
            params, opt_state, step = carry
            kb, kn, ka = jax.random.split(jax.random.fold_in(k_data, step), 3)
            x = shard(sample(kb))
            if augment is not None:
                x = augment(ka, x)
            y = x + sigma * jax.random.normal(kn, x.shape, x.dtype)
            val, g = jax.value_and_grad(loss_fn)(params, x, y, kind, gamma)
            upd, opt_state = optimizer.update(g, opt_state, params)
            return (clip_nonneg(optax.apply_updates(params, upd)), opt_state, step + 1), val

        def stage_update(carry, k):
            kind, gamma = next((kd, g) for kd, g, end in stages if k < end)
            return update(carry, kind, jnp.float32(gamma or 1.0))

        carry = (model.params, optimizer.init(model.params), jnp.zeros((), jnp.int32))
        (params, _, _), losses, wall = fit(stage_update, carry, steps, name="LPN.train", checkpoint=checkpoint,
                                           save_every_s=save_every_s, progress=progress,
                                           time_limit_s=time_limit_s, place=replicate,
                                           identity=(dataset, key, sigma, stages, batch_size, augment,
                                                     key_optimizer(optimizer, model.params).key))
        info = (("loss", loss), ("sigma", sigma), ("steps", steps), ("batch_size", batch_size),
                ("stages", tuple(f"{kd}:{g:.3g}:{end}" if g else f"{kd}:{end}" for kd, g, end in stages)),
                ("final_loss", float(np.mean(losses[-100:])) if losses.size else float("nan")),
                ("train_time_s", round(wall, 1)))
        return dataclasses.replace(model, params=params, info=info)


def _sampler(dataset, batch_size, name="LPN.train"):
    """``(key -> clean batch, sample shape)`` from an array or a sampling function."""
    if callable(dataset):
        probe = jnp.asarray(dataset(jax.random.key(0), batch_size))
        if probe.shape[0] != batch_size or not jnp.issubdtype(probe.dtype, jnp.floating):
            raise ValueError(f"{name}: the dataset function must return a float array (batch_size, ...), "
                             f"got {probe.dtype} {probe.shape}.")
        if not bool(jnp.all(jnp.isfinite(probe))):
            raise ValueError(f"{name}: the dataset function returned NaN or inf values.")
        return (lambda k: jnp.asarray(dataset(k, batch_size), jnp.float32)), tuple(probe.shape[1:])
    data = np.asarray(dataset)
    if data.ndim < 2 or not np.issubdtype(data.dtype, np.number) or data.shape[0] < 1:
        raise ValueError(f"{name}: dataset must be an array (n, dim) or (n, H, W) of clean samples, "
                         f"got shape {data.shape} and dtype {data.dtype}.")
    bad = ~np.isfinite(data)
    if bad.any():
        raise ValueError(f"{name}: the dataset has {int(bad.sum())} NaN or inf values "
                         f"(first in sample {int(np.argwhere(bad)[0][0])}); clean them first.")
    data = jnp.asarray(data, jnp.float32)
    return (lambda k: data[jax.random.randint(k, (batch_size,), 0, data.shape[0])]), tuple(data.shape[1:])


def _stages(loss, steps, gammas, pretrain_fraction, n_pixels):
    """``[(loss kind, gamma or None, end step), ...]``."""
    if loss != "proximal_matching":
        return [(loss, None, steps)]
    if gammas is None:
        gammas = [0.08 * math.sqrt(n_pixels) * 2.0 ** (3 - k) for k in range(4)]
    gammas = [float(g) for g in gammas]
    if not gammas or any(not (np.isfinite(g) and g > 0) for g in gammas):
        raise ValueError(f"LPN.train: gammas must be positive numbers, got {gammas!r}.")
    pre = int(round(pretrain_fraction * steps))
    ends = [pre + int(round((steps - pre) * (i + 1) / len(gammas))) for i in range(len(gammas))]
    return ([("l1", None, pre)] if pre else []) + [("pm", g, e) for g, e in zip(gammas, ends)]


@eqx.filter_jit
def _invert_batch(lpn, xs, max_steps, tol):
    """`_invert_one` over a batch, compiled once per model structure, shape and settings
    (``max_steps`` and ``tol`` are Python numbers, hence static)."""
    return jax.vmap(lambda xi: _invert_one(lpn, xi, max_steps, tol))(xs)


def _invert_one(lpn, x, max_steps, tol):
    """L-BFGS on ``phi(y) = psi(y) - <x, y>`` for one sample ``x`` (float32)."""
    def phi(y):
        return lpn._psi_flat(y[None])[0] - jnp.vdot(x, y)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(phi)
    scale = jnp.maximum(jnp.sqrt(jnp.mean(x * x)), 1.0)

    def cond(c):
        _, _, k, res = c
        return (k < max_steps) & (res > tol * scale)

    def body(c):
        y, state, k, _ = c
        val, g = value_and_grad(y, state=state)
        upd, state = opt.update(g, state, y, value=val, grad=g, value_fn=phi)
        y = optax.apply_updates(y, upd)
        return y, state, k + 1, jnp.sqrt(jnp.mean(g * g))

    init = (x, opt.init(x), jnp.zeros((), jnp.int32), jnp.full((), jnp.inf, x.dtype))
    y, _, _, _ = jax.lax.while_loop(cond, body, init)
    g = jax.grad(phi)(y)
    return y, jnp.sqrt(jnp.mean(g * g))
