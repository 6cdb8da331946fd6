"""Seismic full-waveform inversion of a layered model with a salt body (`invsolve.problems.wave`):
8 surface shots, 8 Hz Ricker sources, 1 % noise, from a smoothed starting model.

Multiscale (Bunks et al., Geophysics 60(5), 1995): the data and the source wavelet go through
the same causal low-pass filter, and the inversion runs from the lowest band to the full
band, each band starting from the last band's velocity. Low frequencies see the long
wavelengths of the model without cycle skipping; the high ones sharpen it. Each band is a
`GradientMAP` (L-BFGS) with a small TV prior; the velocity stays in its physical bounds by
`wave.FWI`'s scaled sigmoid.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import signal

from .. import priors, solvers
from .._problem import GaussianNoise
from .._solve import solve
from ..problems import wave
from . import Criterion, Experiment, Outcome, register


def lowpass(x, dt: float, f_cut: float, axis: int = -1):
    """``x`` low-passed along ``axis`` (time, step ``dt`` [s]) by a causal 6th-order
    Butterworth filter with corner ``f_cut`` [Hz] (`scipy.signal.sosfilt`, host-side). Causal
    on purpose: a causal filter of a signal that starts at ``t = 0`` is exact on ``[0, T]``, so
    filtering the data equals simulating with the filtered wavelet (a zero-phase filter would
    need the wavelet before ``t = 0``)."""
    sos = signal.butter(6, f_cut, fs=1.0 / dt, output="sos")
    return jnp.asarray(signal.sosfilt(sos, np.asarray(x), axis=axis), jnp.result_type(x))


def band(prob: wave.FWI, f_cut: float) -> wave.FWI:
    """The problem restricted to frequencies below ``f_cut`` [Hz]: the wavelet and the data
    through the same `lowpass` (the wave equation is linear and time-invariant in its source,
    so the filtered data are the filtered wavelet's data), noise ``sigma`` scaled by the
    filter's gain on white noise (the RMS of its impulse response)."""
    nyquist = 0.5 / prob.dt
    if not (isinstance(f_cut, (int, float)) and 0 < f_cut < nyquist):
        raise ValueError(f"band: the cut-off must be a frequency in (0, {nyquist:.4g}) Hz (the Nyquist frequency of "
                         f"dt = {prob.dt:.4g} s), got {f_cut!r}.")
    n_t = prob.wavelet.shape[-1]
    impulse = np.zeros(n_t)
    impulse[0] = 1.0
    gain = float(np.sqrt(np.sum(np.asarray(lowpass(impulse, prob.dt, f_cut)) ** 2)))
    return dataclasses.replace(prob, wavelet=lowpass(prob.wavelet, prob.dt, f_cut),
                               y_obs=lowpass(prob.y_obs, prob.dt, f_cut, axis=1),
                               noise=GaussianNoise(prob.noise.sigma * gain))


@dataclasses.dataclass(frozen=True)
class FWIConfig:
    """``wave.layered_salt(shape, spacing_m)``, ``n_shots`` sources of peak frequency
    ``freq_hz``, relative noise ``noise``, start ``init``. The multiscale schedule: one
    `GradientMAP` band per cut-off in ``bands_hz`` (None: the unfiltered data), ``steps``
    L-BFGS iterations each, `priors.TV` ``(tv)`` on the velocity's unconstrained coordinates."""

    shape: tuple[int, int] = (100, 200)
    spacing_m: float = 10.0
    n_shots: int = 8
    freq_hz: float = 8.0
    noise: float = 0.01
    init: str = "smoothed"
    bands_hz: tuple = (4.0, 6.0, None)
    steps: int = 30
    tv: float = 1e-3


def run_fwi(cfg: FWIConfig, seed: int) -> Outcome:
    if cfg.steps < 1 or not cfg.bands_hz:
        raise ValueError(f"steps must be >= 1 and bands_hz a non-empty tuple of cut-offs in Hz, got {cfg.steps} and "
                         f"{cfg.bands_hz!r}.")
    v_true = wave.layered_salt(cfg.shape, cfg.spacing_m)
    prob = wave.fwi(v_true, cfg.n_shots, cfg.freq_hz, cfg.noise, key=jax.random.key(seed), spacing_m=cfg.spacing_m,
                    init=cfg.init)
    theta = prob.init_params()
    err0 = float(prob.metrics(prob.v_init)["rel_l2"])
    history, per_band = [], []
    for f_cut in cfg.bands_hz:
        sub = prob if f_cut is None else band(prob, float(f_cut))
        sub = dataclasses.replace(sub, v_init=prob.constrain(theta))
        sol = solve(sub, solvers.GradientMAP(optax.lbfgs(), prior=priors.TV(cfg.tv), max_steps=cfg.steps))
        theta = prob.unconstrain(sol.value)
        history.append(sol)
        per_band.append({"band_hz": "full" if f_cut is None else f_cut,
                         "rel_l2": float(prob.metrics(sol.value)["rel_l2"]),
                         "loss_ratio": float(sol.history["loss"][-1] / sol.history["loss"][0])})
    v_est = np.asarray(history[-1].value)
    chi2_start = float(prob.normalized_chi2(prob.init_params()))
    chi2_end = float(prob.normalized_chi2(prob.unconstrain(v_est)))
    extra = {"rel_l2_start": err0, "rel_l2": float(prob.metrics(v_est)["rel_l2"]),
             "chi2_start": chi2_start, "chi2": chi2_end, "misfit_reduction": chi2_start / chi2_end,
             "bands": per_band}
    extra["error_ratio"] = extra["rel_l2"] / err0
    truth = np.asarray(v_true)
    nz, nx = cfg.shape
    box = ((0.0, (nx - 1) * cfg.spacing_m), ((nz - 1) * cfg.spacing_m, 0.0))
    src = np.asarray(prob.src) / cfg.spacing_m  # grid indices (row = depth, column = x) for the figure
    fields = {"truth": truth, "start": np.asarray(prob.v_init), "estimate": v_est,
              "start error": np.asarray(prob.v_init) - truth, "estimate error": v_est - truth}
    return Outcome(history[-1], fields, extra_metrics=extra, points=src, points_label=f"sources ({cfg.n_shots})",
                   points_on=("truth",), layout="image",
                   labels={"truth": "true velocity (salt model)", "start": "smoothed start",
                           "estimate": f"FWI ({len(cfg.bands_hz)} bands × {cfg.steps} L-BFGS steps)",
                           "start error": "start − truth", "estimate error": "estimate − truth"},
                   shared=(("truth", "start", "estimate"), ("start error", "estimate error")),
                   extent=box, axes=("x [m]", "depth [m]"),
                   units={k: "v [m/s]" for k in ("truth", "start", "estimate")} | {
                       k: "Δv [m/s]" for k in ("start error", "estimate error")},
                   panel_metrics={"start": ("rel_l2_start",), "estimate": ("rel_l2",)}, ncols=3)


register(Experiment(
    name="fwi-salt",
    description="seismic full-waveform inversion of a layered model with a salt body (8 shots, 8 Hz, 1% noise) "
                "from a smoothed start: multiscale GradientMAP (L-BFGS, TV), low to high frequency",
    run=run_fwi,
    quick=FWIConfig(shape=(40, 80), spacing_m=25.0, n_shots=4, freq_hz=6.0, bands_hz=(3.0, None), steps=10),
    full=FWIConfig(),
    criteria=(
        Criterion("error_ratio", "<=", 0.9, 0.5, "full: the issue's target (velocity error at most half the "
                  "start's); quick: ours (measured 0.76, deterministic)"),
        Criterion("misfit_reduction", ">=", 30.0, 100.0, "full: the issue's target (data misfit down >= 100x); "
                  "quick: ours (measured 148, 5x margin)"),
    ),
))
