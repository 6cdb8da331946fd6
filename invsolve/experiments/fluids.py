"""Navier-Stokes data assimilation (InverseBench's task, Zheng et al., ICLR 2025): the initial
vorticity of a 2D periodic Kolmogorov flow (Re 200) from its vorticity at ``t_obs``, block-
averaged by 2, with 1 % noise (`invsolve.problems.navier_stokes.initial_condition`).

Two solvers with the prior that made the truth (the Gaussian random field of
`navier_stokes.random_vorticity`): `GradientMAP` (L-BFGS) on the white-noise coordinates
``xi`` of ``omega0 = colour(xi)``, where ``Tikhonov(1)`` is that prior exactly, and
derivative-free `EKI` with an ensemble drawn from it. Both report their forward-model runs.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import priors, solvers
from .._problem import ForwardProblem
from .._solve import solve
from ..problems import navier_stokes
from . import Criterion, Experiment, Outcome, register


@dataclasses.dataclass(frozen=True)
class NSConfig:
    """Grid ``shape``, Reynolds number ``re``, observation time ``t_obs``, pooling
    ``downsample``, relative noise ``noise``. `GradientMAP`: ``map_steps`` L-BFGS iterations
    on the whitened unknown. `EKI`: ``n_ensemble`` members (adaptive step, at most
    ``eki_steps``)."""

    shape: tuple[int, int] = (64, 64)
    re: float = 200.0
    t_obs: float = 1.0
    downsample: int = 2
    noise: float = 0.01
    map_steps: int = 500
    n_ensemble: int = 512
    eki_steps: int = 50


class _Counter:
    """Counts the forward-model runs of a jitted solve (a host callback per run)."""

    def __init__(self):
        self.n = 0

    def __call__(self, *_):
        self.n += 1


def run_initial(cfg: NSConfig, seed: int) -> Outcome:
    if cfg.map_steps < 1 or cfg.n_ensemble < 2:
        raise ValueError(f"map_steps must be >= 1 and n_ensemble >= 2, got {cfg.map_steps} and {cfg.n_ensemble}.")
    prob = navier_stokes.initial_condition(cfg.shape, cfg.re, cfg.t_obs, cfg.downsample, cfg.noise,
                                           key=jax.random.key(seed))
    count = _Counter()

    def forward(xi):
        jax.debug.callback(count)
        return prob.forward(navier_stokes.colour(xi))

    white = ForwardProblem(forward, prob.y_obs, prob.noise, init=jnp.zeros(cfg.shape, prob.y_obs.dtype),
                           constrain=navier_stokes.colour, x_true=prob.x_true)
    sol_map = solve(white, solvers.GradientMAP(optax.lbfgs(), prior=priors.Tikhonov(1.0), max_steps=cfg.map_steps))
    map_forward = count.n
    prior = functools.partial(navier_stokes.random_vorticity, shape=cfg.shape)
    sol_eki = solve(prob, solvers.EKI(n_ensemble=cfg.n_ensemble, prior_samples=prior, max_steps=cfg.eki_steps),
                    key=jax.random.fold_in(jax.random.key(seed), 1))
    truth = np.asarray(prob.x_true)
    rel = {k: float(prob.metrics(s.value)["rel_l2"]) for k, s in (("map", sol_map), ("eki", sol_eki))}
    best = min(rel, key=rel.get)
    upsampled = jnp.repeat(jnp.repeat(prob.y_obs, cfg.downsample, 0), cfg.downsample, 1)
    extra = {"rel_l2_map": rel["map"], "rel_l2_eki": rel["eki"], "rel_l2_best": rel[best], "best": best,
             "rel_l2_observed": float(prob.metrics(upsampled)["rel_l2"]),
             "chi2_map": float(prob.normalized_chi2(sol_map.value)),
             "chi2_eki": float(prob.normalized_chi2(sol_eki.value)),
             "n_forward_map": map_forward, "n_forward_eki": int(sol_eki.stats["n_forward"]),
             "steps_eki": int(sol_eki.stats["num_steps"]), "dt": prob.dt}
    fields = {"truth": truth, "observed (upsampled)": np.asarray(upsampled),
              "GradientMAP": np.asarray(sol_map.value), "EKI mean": np.asarray(sol_eki.value),
              "EKI std": np.asarray(sol_eki.std) if sol_eki.std is not None else np.zeros_like(truth),
              "GradientMAP error": np.asarray(sol_map.value) - truth, "EKI error": np.asarray(sol_eki.value) - truth}
    two_pi = float(2 * np.pi)
    return Outcome(sol_map if best == "map" else sol_eki, fields, extra_metrics=extra,
                   paper={"reference": "Zheng et al., InverseBench, ICLR 2025 (Navier-Stokes)",
                          "setting": f"128^2, 2x downsampled; here {cfg.shape[0]}^2, t_obs {cfg.t_obs:g}",
                          "rel_l2_enkg (about 3e5 simulator calls)": 0.120, "rel_l2_dpg": 0.325, "rel_l2_eki": 0.577},
                   labels={"truth": "true ω₀ (t = 0)", "observed (upsampled)": f"observed ω at t = {cfg.t_obs:g} "
                           f"(÷{cfg.downsample}, 1 % noise)",
                           "GradientMAP": f"GradientMAP ({map_forward} forward runs)",
                           "EKI mean": f"EKI mean (J = {cfg.n_ensemble}, {extra['n_forward_eki']} forward runs)",
                           "EKI std": "EKI ensemble std"},
                   shared=(("truth", "GradientMAP", "EKI mean"), ("GradientMAP error", "EKI error")),
                   extent=((0.0, two_pi), (0.0, two_pi)), axes=("x", "y"),
                   units={"truth": "vorticity [1/time]", "EKI std": "std [1/time]"},
                   panel_metrics={"GradientMAP": ("rel_l2_map",), "EKI mean": ("rel_l2_eki",),
                                  "observed (upsampled)": ("rel_l2_observed",)}, ncols=4)


register(Experiment(
    name="ns-initial",
    description="Navier-Stokes data assimilation: initial vorticity of a Kolmogorov flow (Re 200) from the "
                "block-averaged, noisy vorticity at t_obs: GradientMAP vs derivative-free EKI",
    run=run_initial,
    quick=NSConfig(shape=(32, 32), t_obs=0.5, map_steps=250, n_ensemble=256),
    full=NSConfig(),
    criteria=(
        Criterion("rel_l2_best", "<=", 0.12, 0.12, "the issue's target (InverseBench's EnKG: 0.120); quick: "
                  "measured 0.091 (GradientMAP), deterministic"),
        Criterion("rel_l2_eki", "<=", 0.35, None, "ours: EKI with 256 members at quick settings, measured 0.17 "
                  "(2x margin)"),
    ),
))
