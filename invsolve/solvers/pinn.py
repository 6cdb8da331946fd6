"""Physics-informed neural networks for any problem with a residual (`HasResidual`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from .._problem import HasResidual
from .._solution import RESULTS, Estimate
from .._solver import AbstractOptaxSolver, check_nonneg, key_optimizer
from ..nn import MLP, FieldNet, PirateNet


def paper_adam(lr: float = 1e-3, every: int = 1000, factor: float = 0.95):
    """Adam with the learning rate multiplied by ``factor`` every ``every`` steps (staircase),
    the schedule of FlamePINN-1D (and DeepXDE's ``decay=("step", 1000, 0.95)``)."""
    return optax.adam(optax.exponential_decay(lr, every, factor, staircase=True))


class PINNState(eqx.Module):
    params: Any  # {"net": network parameters, "theta": raw unknown constants}
    opt_state: Any  # physics stage (Adam, or the given optimizer)
    warm_state: Any  # warm-up stage (same optimizer, fresh state)
    refine_state: Any  # L-BFGS stage
    step: jax.Array
    points: jax.Array
    key: jax.Array  # raw key data, for resampling
    loss: jax.Array
    best_params: Any
    best_loss: jax.Array
    balance: Any  # {term: weight} from gradient-norm balancing (ones when off)


class PINN(AbstractOptaxSolver):
    """Train a network ``u(x)`` (and the problem's unknown constants) to satisfy the
    problem's residual and side conditions.

    The loss is ``w_res mean(residual^2) + sum_k w_k mean(condition_k^2)`` over the
    collocation points (Raissi et al. 2019); unknown constants are trained jointly with the
    network (in the problem's O(1) raw scaling). Stages, all through optax:

    1. warm-up (``warmup_steps``, only when the problem gives ``warmup_data``): fit the
       network to a rough profile (FlamePINN-1D fits a Z-shaped temperature);
    2. physics: ``steps`` updates with ``optimizer`` (default: Adam 1e-3, x0.95 every 1000
       steps, as the paper) on the full loss;
    3. optional refinement: ``lbfgs_steps`` of ``optax.lbfgs()``.

    The parameters with the lowest physics loss seen are kept and returned (the paper's
    "best model"). The network is `invsolve.nn.MLP` (``hidden`` widths, ``activation``,
    Glorot-normal init) in ``dtype`` (float32 by default); its input is
    ``problem.scale_input(x)`` and its output goes through ``problem.transform`` (bounds,
    hard boundary conditions).

    Training options of Wang et al. 2023 ("An expert's guide to training PINNs"; jaxpi), all
    off by default:

    * ``factorized``: random weight factorisation of every layer (`invsolve.nn.FactorizedLinear`;
      True means ``(mu, sigma) = (1.0, 0.1)``, as jaxpi and FlamePINN-1D);
    * ``periodic``: an exact periodic embedding of the problem's ``periodic_axes`` (the box's
      side is one period); ``features="fourier"``: random Fourier features of scale
      ``fourier_scale`` and size ``fourier_dim`` (`invsolve.nn.Embedding`);
    * ``time_periodic``: the time axis embedded as ``(cos(w t), sin(w t))`` with a trained
      frequency ``w`` (jaxpi's trainable time period, for travelling waves such as advection);
    * ``causal``: causal weighting of the residual (Wang, Sankaran & Perdikaris 2024, Eq. 2.11):
      the points are binned into ``causal_chunks`` slices along the problem's ``time_axis``,
      slice i's mean squared residual ``L_i`` is weighted by
      ``w_i = exp(-causal_tol sum_{k<i} L_k)`` (no gradient through w);
    * ``weighting="grad_norm"``: every ``balance_every`` physics steps each loss term's weight
      becomes ``0.9 old + 0.1 sum_j |grad L_j| / |grad L_k|`` (Wang et al. 2023, Eq. 5.3), on top
      of ``weights``;
    * ``architecture="pirate"``: a PirateNet (`invsolve.nn.PirateNet`, Wang et al. 2024) with
      ``len(hidden) // 3`` residual blocks of width ``hidden[0]`` on random Fourier features of
      that size (``features`` is implied, ``fourier_dim`` ignored).

    Their fields: ``factorized``, ``periodic``, ``time_periodic``, ``features``, ``fourier_scale``,
    ``fourier_dim``, ``causal``, ``causal_tol``, ``causal_chunks``, ``weighting``,
    ``balance_every``, ``architecture``.

    Args:
        optimizer: optax ``GradientTransformation`` for the warm-up and physics stages.
        hidden, activation: the network.
        n_collocation: number of residual points (a Hammersley set over the problem's box).
        resample_every: draw fresh uniform random points every so many physics steps
            (None: keep the fixed set).
        steps, warmup_steps, lbfgs_steps: the stages' lengths (total = their sum).
        weights: loss weights by term name (``"residual"`` or a condition's name; default 1).
        dtype: network and collocation dtype.
        devices: data-parallel training: the collocation points split over this many
            devices (``n_collocation`` a multiple of it), the network replicated. None: one.

    `Solution.value` is ``problem.evaluate(...)``: the unknowns in physical units and the
    fields on the problem's evaluation points. History: ``loss`` (the objective of the
    step), every loss term, and each scalar unknown.
    """

    requires: ClassVar = (HasResidual,)
    needs_key: ClassVar = True
    optimizer: Any = None
    hidden: tuple[int, ...] = (64, 64, 64)
    activation: str = "tanh"
    n_collocation: int = 1001
    resample_every: int | None = None
    steps: int = 30_000
    warmup_steps: int = 1000
    lbfgs_steps: int = 0
    weights: dict | None = None
    dtype: Any = jnp.float32
    devices: int | None = eqx.field(default=None, static=True)
    factorized: bool | tuple = eqx.field(default=False, static=True)
    periodic: bool = eqx.field(default=False, static=True)
    time_periodic: bool = eqx.field(default=False, static=True)
    features: str | None = eqx.field(default=None, static=True)
    fourier_scale: float = 1.0
    fourier_dim: int = eqx.field(default=128, static=True)
    causal: bool = eqx.field(default=False, static=True)
    causal_tol: float = 1.0
    causal_chunks: int = eqx.field(default=32, static=True)
    weighting: str | None = eqx.field(default=None, static=True)
    balance_every: int = eqx.field(default=1000, static=True)
    architecture: str = eqx.field(default="mlp", static=True)
    graphdef: Any = eqx.field(default=None, static=True)
    refiner: Any = eqx.field(default=None, static=True)

    def __check_init__(self):
        for name in ("n_collocation", "steps", "warmup_steps", "lbfgs_steps"):
            check_nonneg(f"PINN {name}", getattr(self, name), integer=True, allow_none=False)
        check_nonneg("PINN resample_every", self.resample_every, integer=True)
        if self.n_collocation < 1:
            raise ValueError("PINN n_collocation must be at least 1.")
        if self.devices is not None and (not isinstance(self.devices, int) or self.n_collocation % self.devices):
            raise ValueError(f"PINN devices must be an integer that divides n_collocation ({self.n_collocation}), "
                             f"got {self.devices!r}.")
        if not all(isinstance(h, int) and h > 0 for h in self.hidden):
            raise ValueError(f"PINN hidden must be a tuple of positive layer widths, got {self.hidden!r}.")
        if self.architecture not in ("mlp", "pirate"):
            raise ValueError(f"PINN architecture must be 'mlp' or 'pirate', got {self.architecture!r}.")
        if self.architecture == "pirate" and (len(set(self.hidden)) != 1 or len(self.hidden) % 3):
            raise ValueError("PINN architecture='pirate' needs hidden = (width,) * 3 * blocks (three equal layers per "
                             f"residual block), got {self.hidden!r}.")
        if self.features not in (None, "fourier"):
            raise ValueError(f"PINN features must be None or 'fourier', got {self.features!r}.")
        if self.weighting not in (None, "grad_norm"):
            raise ValueError(f"PINN weighting must be None or 'grad_norm', got {self.weighting!r}.")
        for name in ("fourier_scale", "causal_tol"):
            v = getattr(self, name)
            if not isinstance(v, jax.core.Tracer) and (isinstance(v, bool) or not float(v) > 0 or not jnp.isfinite(v)):
                raise ValueError(f"PINN {name} must be a positive finite number, got {v!r}.")
        for name in ("fourier_dim", "causal_chunks", "balance_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (2 if name == "fourier_dim" else 1):
                raise ValueError(f"PINN {name} must be an integer >= {2 if name == 'fourier_dim' else 1}, got {v!r}.")
        if self.factorized is not False and self.factorized is not True and not (
                isinstance(self.factorized, tuple) and len(self.factorized) == 2 and self.factorized[1] >= 0):
            raise ValueError("PINN factorized must be True, False or (mu, sigma) with sigma >= 0, "
                             f"got {self.factorized!r}.")
        if self.optimizer is not None and not isinstance(self.optimizer, optax.GradientTransformation) \
                and not hasattr(self.optimizer, "update"):
            raise TypeError(f"PINN optimizer must be an optax GradientTransformation, got {self.optimizer!r}.")

    # --- set-up -------------------------------------------------------------------------
    def _network(self, problem, key):
        dim = jnp.shape(problem.lower)[0]
        factorized = (1.0, 0.1) if self.factorized is True else (self.factorized or None)
        fourier = (self.fourier_scale, self.fourier_dim) if self.features == "fourier" else None
        periodic = tuple(problem.periodic_axes) if self.periodic else ()
        tp = problem.time_axis if self.time_periodic else None
        if self.architecture == "pirate":
            return PirateNet(dim, problem.n_out, self.hidden[0], len(self.hidden) // 3, self.activation,
                             rngs=nnx.Rngs(key), dtype=self.dtype, factorized=factorized, periodic=periodic,
                             fourier_scale=self.fourier_scale, time_periodic=tp)
        if fourier is None and not periodic and tp is None:
            return MLP(dim, problem.n_out, self.hidden, self.activation, rngs=nnx.Rngs(key), dtype=self.dtype,
                       factorized=factorized)
        return FieldNet(dim, problem.n_out, self.hidden, self.activation, rngs=nnx.Rngs(key), dtype=self.dtype,
                        factorized=factorized, periodic=periodic, fourier=fourier, time_periodic=tp)

    def _check_problem(self, problem):
        name = type(problem).__name__
        if self.periodic and not tuple(problem.periodic_axes):
            raise ValueError(f"PINN periodic=True needs a problem with periodic axes (periodic_axes); {name} has none.")
        if self.time_periodic and problem.time_axis is None:
            raise ValueError(f"PINN time_periodic=True needs a time-dependent problem (a time_axis); {name} has no "
                             "time axis. Use time_periodic=False.")
        if self.causal and problem.time_axis is None:
            raise ValueError(f"PINN causal=True needs a time-dependent problem (a time_axis); {name} has no time "
                             "axis. Use causal=False.")

    def init_params(self, problem, key=None):
        key = jax.random.key(0) if key is None else key
        _, net = nnx.split(self._network(problem, key))
        theta = jax.tree.map(lambda v: jnp.asarray(v, self.dtype), problem.init_params())
        return {"net": net, "theta": theta}

    def _warmup(self, problem):
        return 0 if problem.warmup_data() is None else self.warmup_steps

    def default_max_steps(self, problem):
        return self._warmup(problem) + self.steps + self.lbfgs_steps

    def prepare(self, problem):
        self._check_problem(problem)
        graphdef, _ = nnx.split(nnx.eval_shape(lambda: self._network(problem, jax.random.key(0))))
        opt = paper_adam() if self.optimizer is None else self.optimizer
        solver = dataclasses.replace(self, optimizer=opt, graphdef=graphdef)
        params = jax.eval_shape(solver.init_params, problem)
        refiner = key_optimizer(optax.lbfgs(), params) if self.lbfgs_steps else None
        solver = dataclasses.replace(solver, optimizer=key_optimizer(opt, params), refiner=refiner)
        solver._check_weights(problem)
        if not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(problem)):
            solver._check_initial_loss(problem)
        return solver

    def _check_weights(self, problem):
        """Every name in ``weights`` must be a loss term of this problem (a misspelt name would
        be ignored silently)."""
        if not self.weights:
            return
        terms = jax.eval_shape(lambda: self._terms(problem, self.init_params(problem), self._points(problem)))
        unknown = sorted(set(self.weights) - set(terms))
        if unknown:
            raise ValueError(f"PINN weights name {', '.join(map(repr, unknown))}, which {type(problem).__name__} has "
                             f"no loss term of; its terms are {', '.join(map(repr, terms))}.")

    def _check_initial_loss(self, problem):
        """A NaN at the start would only show up as a failed solve: name the term now."""
        terms = _initial_terms(self, problem)
        bad = [k for k, v in terms.items() if not bool(jnp.isfinite(v))]
        if bad:
            init = {k: float(v) if jnp.ndim(v) == 0 else v for k, v in problem.constrain(problem.init_params()).items()}
            raise ValueError(
                f"PINN: the loss term(s) {', '.join(sorted(bad))} of {type(problem).__name__} are NaN or "
                f"infinite at the initial guess; check the initial values of the unknowns ({init}) and "
                "the problem's constants."
            )

    def _points(self, problem, key=None):
        from .._batch import data_parallel

        return data_parallel(self.devices)[1](jnp.asarray(problem.collocation(self.n_collocation, key), self.dtype))

    # --- the loss -----------------------------------------------------------------------
    def field(self, problem, params):
        """The trained field: points ``x`` (n, dim) -> values (n, n_out)."""
        theta = problem.constrain(params["theta"])
        net = nnx.merge(self.graphdef, params["net"])

        def u(x):
            return problem.transform(x, net(problem.scale_input(jnp.asarray(x, self.dtype))), theta)

        return u

    def _terms(self, problem, params, points):
        theta = problem.constrain(params["theta"])
        u = self.field(problem, params)
        res = problem.residual(u, theta, points)
        terms = {"residual": self._causal_mean(problem, res, points) if self.causal else jnp.mean(jnp.square(res))}
        for k, v in problem.conditions(u, theta).items():
            terms[k] = jnp.mean(jnp.square(v))
        return terms

    def _causal_mean(self, problem, res, points):
        """``mean_i w_i L_i`` over time slices (see the class docstring)."""
        ax, m = problem.time_axis, self.causal_chunks
        t0, t1 = problem.lower[ax], problem.upper[ax]
        idx = jnp.clip(jnp.floor((points[:, ax] - t0) / (t1 - t0) * m), 0, m - 1).astype(jnp.int32)
        sq = jnp.square(res).reshape(res.shape[0], -1).mean(axis=1)
        count = jax.ops.segment_sum(jnp.ones_like(sq), idx, m)
        L = jax.ops.segment_sum(sq, idx, m) / jnp.maximum(count, 1)
        w = jax.lax.stop_gradient(jnp.exp(-self.causal_tol * (jnp.cumsum(L) - L)))
        return jnp.mean(w * L)

    def _total(self, terms, balance=None):
        w = self.weights or {}
        b = balance or {}
        return sum(w.get(k, 1.0) * b.get(k, 1.0) * v for k, v in terms.items())

    def _balanced(self, problem, points, params, balance):
        """Gradient-norm balancing (Wang et al. 2023, Eq. 5.3), with momentum 0.9."""
        grads = jax.jacrev(lambda p: self._terms(problem, p, points))(params)
        norms = {k: optax.global_norm(g) for k, g in grads.items()}
        total = sum(norms.values())
        tiny = jnp.finfo(total.dtype).tiny
        # a term with no gradient (e.g. periodicity under an exact periodic embedding) keeps its weight
        return {k: jnp.where(n > 0, 0.9 * balance[k] + 0.1 * total / jnp.maximum(n, tiny), balance[k])
                for k, n in norms.items()}

    def _loss(self, problem, points):
        def f(params, balance=None):
            terms = self._terms(problem, params, points)
            return self._total(terms, balance), terms

        return f

    def _warm_loss(self, problem):
        xw, tw = problem.warmup_data()

        def f(params):
            u = self.field(problem, params)
            return jnp.mean(jnp.square(problem.field_scale * (u(xw) - tw)))

        return f

    # --- the solver protocol ------------------------------------------------------------
    def init(self, problem, key):
        params = self.init_params(problem, key)
        points = self._points(problem)
        dtype = jnp.result_type(*jax.tree.leaves(params["net"]))
        inf = jnp.full((), jnp.inf, dtype)
        return PINNState(
            params=params, opt_state=self.optimizer.init(params), warm_state=self.optimizer.init(params),
            refine_state=self.refiner.init(params) if self.lbfgs_steps else None,
            step=jnp.zeros((), jnp.int32), points=points,
            key=jax.random.key_data(jax.random.fold_in(key, 1)), loss=inf,
            best_params=params, best_loss=inf,
            balance={k: jnp.ones((), dtype) for k in jax.eval_shape(lambda: self._terms(problem, params, points))},
        )

    def _info(self, problem, loss, terms, params):
        info = {"loss": loss, **terms}
        for k, v in problem.constrain(params["theta"]).items():
            if jnp.ndim(v) == 0:
                info[k] = v
        return jax.tree.map(lambda v: jnp.asarray(v, loss.dtype), info)

    def step(self, problem, state):
        nw = self._warmup(problem)
        points = state.points
        if self.resample_every:
            k = state.step - nw
            fresh = (k > 0) & (k % self.resample_every == 0)
            key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
            points = jax.lax.cond(fresh, lambda: self._points(problem, key), lambda: points)
        f = self._loss(problem, points)

        def physics(s):
            balance = s.balance
            if self.weighting == "grad_norm":
                due = (s.step - nw) % self.balance_every == 0
                balance = jax.lax.cond(due, lambda: self._balanced(problem, points, s.params, s.balance),
                                       lambda: s.balance)
            (_, terms), g = jax.value_and_grad(f, has_aux=True)(s.params, balance)
            upd, opt_state = self.optimizer.update(g, s.opt_state, s.params)
            # history's loss leaves out the balancing weights, which change the objective's scale
            return dataclasses.replace(s, params=optax.apply_updates(s.params, upd), opt_state=opt_state,
                                       balance=balance), self._total(terms), terms

        def warm(s):
            wl = self._warm_loss(problem)
            loss, g = jax.value_and_grad(wl)(s.params)
            upd, warm_state = self.optimizer.update(g, s.warm_state, s.params)
            terms = f(s.params)[1]
            return dataclasses.replace(s, params=optax.apply_updates(s.params, upd), warm_state=warm_state), loss, terms

        def refine(s):
            value_fn = lambda p: f(p, s.balance)[0]
            (value, terms), g = jax.value_and_grad(f, has_aux=True)(s.params, s.balance)
            upd, st = self.refiner.update(g, s.refine_state, s.params, value=value, grad=g, value_fn=value_fn)
            return dataclasses.replace(s, params=optax.apply_updates(s.params, upd), refine_state=st), \
                self._total(terms), terms

        branches = [b for b, n in ((warm, nw), (physics, self.steps), (refine, self.lbfgs_steps)) if n]
        bounds = jnp.cumsum(jnp.array([n for n in (nw, self.steps, self.lbfgs_steps) if n]))
        stage = jnp.minimum(jnp.sum(state.step >= bounds), len(branches) - 1)
        old = state.params
        new, loss, terms = jax.lax.switch(stage, branches, state) if len(branches) > 1 else branches[0](state)
        physics_loss = self._total(terms)
        better = (state.step >= nw) & (physics_loss < state.best_loss)
        best = jax.lax.cond(better, lambda: old, lambda: state.best_params)
        best_loss = jnp.where(better, physics_loss, state.best_loss).astype(state.best_loss.dtype)
        new = dataclasses.replace(new, step=state.step + 1, points=points, loss=loss.astype(state.loss.dtype),
                                  best_params=best, best_loss=best_loss)
        return new, self._info(problem, loss, terms, old)

    def terminate(self, problem, state):
        # a fixed schedule: done after its last stage; cut short by a smaller step budget,
        # the run reports max_steps_reached
        done = state.step >= self.default_max_steps(problem)
        return done, jnp.where(done, RESULTS.successful, RESULTS.max_steps_reached).astype(jnp.int32)

    def best(self, s):
        """The parameters to report: the best seen in the physics stages (else the last)."""
        return jax.tree.map(lambda a, b: jnp.where(jnp.isfinite(s.best_loss), a, b), s.best_params, s.params)

    def postprocess(self, problem, state):
        params = self.best(state)
        return Estimate(problem.evaluate(self.field(problem, params), problem.constrain(params["theta"])))


@eqx.filter_jit
def _initial_terms(solver, problem):
    return solver._terms(problem, solver.init_params(problem), solver._points(problem))
