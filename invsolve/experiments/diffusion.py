"""Diffusion posterior sampling on sparse-view CT of held-out MNI152 slices (DPS, RED-diff,
score-SDE, DDS, DiffPIR, DAPS, PnP-DM, STSL, against FBP and TV-MAP) and 3D reconstruction of
a slice stack with a 2D prior (DiffusionMBIR against independent per-slice sampling; DDS-3D
against DiffusionMBIR)."""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import metrics, solvers
from .._solve import solve
from ..priors import ScorePrior
from ..problems import phantoms, tomography
from . import Criterion, Experiment, Outcome, register

# As read from the papers' repositories (PAPERS.md); their settings differ from ours (256^2
# natural images or CT, GPU, 1000-step samplers): printed beside our numbers, not compared.
PAPER = {
    "dps": {"reference": "Chung et al., Diffusion Posterior Sampling for General Noisy Inverse Problems, ICLR 2023",
            "setting": "FFHQ 256^2, 1000 steps, zeta 0.3-1.0, sigma_y 0.05", "fid_inpainting": 21.19,
            "fid_deblur": 44.05},
    "reddiff": {"reference": "Mardani et al., A Variational Perspective on Solving Inverse Problems with "
                             "Diffusion Models, ICLR 2024",
                "setting": "ImageNet 256^2, Adam lr 0.1, lambda 0.25"},
    "score-sde": {"reference": "Song et al., Score-Based Generative Modeling through Stochastic Differential "
                               "Equations, ICLR 2021 (predictor-corrector sampling with projection)",
                  "setting": "reverse-diffusion predictor, Langevin corrector snr 0.16, 1000-2000 steps, GPU"},
    "dds": {"reference": "Chung, Lee & Ye, Decomposed Diffusion Sampler for Accelerating Large-Scale Inverse "
                         "Problems, ICLR 2024",
            "setting": "AAPM 256^2 CT, 50 NFE, M = 5 CG steps, eta 0.15; reported > 80x faster than DiffusionMBIR"},
    "diffpir": {"reference": "Zhu et al., Denoising Diffusion Models for Plug-and-Play Image Restoration, CVPRW 2023",
                "setting": "FFHQ/ImageNet 256^2, 100 NFE, lambda and zeta per task"},
    "daps": {"reference": "Zhang et al., Improving Diffusion Inverse Problem Solving with Decoupled Noise "
                          "Annealing, CVPR 2025",
             "setting": "InverseBench: 200 annealing levels x 5 ODE steps, 100 Langevin steps each",
             "inversebench_scattering_psnr": 34.64},
    "pnpdm": {"reference": "Wu et al., Principled Probabilistic Imaging using Diffusion Models as Plug-and-Play "
                           "Priors, NeurIPS 2024",
              "setting": "split Gibbs, rho annealed, EDM denoising prior step", "inversebench_scattering_psnr": 33.91},
    "stsl": {"reference": "Rout et al., Beyond First-Order Tweedie: Solving Inverse Problems using Latent "
                          "Diffusion, CVPR 2024",
             "setting": "latent diffusion (Stable Diffusion), FFHQ/ImageNet/COCO; here in pixel space"},
    "mbir": {"reference": "Chung et al., Solving 3D Inverse Problems using Pre-trained 2D Diffusion Models, CVPR 2023",
             "setting": "AAPM 256^3, 8 views, VE NCSN++, lambda 0.04, rho 10",
             "psnr_8_views_recalled_unchecked": 33.5},
}


@dataclasses.dataclass(frozen=True)
class CTConfig:
    """Sparse-view CT (parallel beam, ``n_angles`` views, relative noise ``noise``) of every
    ``test_stride``-th slice of the held-out test slab (`phantoms.axial_slices("test")`, the
    split of the learned-proximal-network experiments), with the shipped ``prior``.

    method: ``"dps"`` (``zeta``), ``"reddiff"`` (Adam ``lr``, ``lam``), ``"score-sde"``,
    ``"dds"`` (``eta``, ``cg_steps``), ``"diffpir"`` (``lam``, ``mix`` = DiffPIR's zeta,
    ``cg_steps``), ``"daps"`` (``n_steps`` annealing levels, ``n_ode``, ``n_inner`` Langevin
    steps, ``r_scale``, ``sigma_max``), ``"pnpdm"`` (``rho_max``, ``rho_min``, ``n_prior``,
    ``cg_steps``) or ``"stsl"`` (``zeta``, ``omega``); ``n_steps`` reverse steps, ``n_samples``
    particles. The TV-MAP baseline's weight is picked from ``tv_lams`` on ``n_val`` validation
    slices; sampler settings were tuned on the validation slab (docs/results.md;
    ``benchmarks/tune_samplers.py``)."""

    method: str = "dps"
    prior: str = "mni-64"
    n_angles: int = 30
    noise: float = 0.01
    n_steps: int = 500
    n_samples: int = 8
    zeta: float = 0.05
    lr: float = 0.002
    lam: float = 16.0
    eta: float = 1.0
    cg_steps: int = 5
    mix: float = 0.3
    n_ode: int = 3
    n_inner: int = 30
    r_scale: float = 1.0
    sigma_max: float = 5.0
    rho_max: float = 2.0
    rho_min: float = 0.02
    n_prior: int = 10
    omega: float = 0.0
    tv_lams: tuple = (3.0, 10.0, 30.0)
    tv_steps: int = 500
    n_val: int = 2
    test_stride: int = 8


METHODS = ("dps", "reddiff", "score-sde", "dds", "diffpir", "daps", "pnpdm", "stsl")


def make_solver(cfg: CTConfig, prior):
    common = dict(n_samples=cfg.n_samples, clip=(0.0, 1.0))
    if cfg.method == "dps":
        return solvers.DPS(prior, n_steps=cfg.n_steps, zeta=cfg.zeta, **common)
    if cfg.method == "reddiff":
        return solvers.REDDiff(prior, optimizer=optax.adam(cfg.lr), n_steps=cfg.n_steps, lam=cfg.lam,
                               n_samples=cfg.n_samples)
    if cfg.method == "score-sde":
        return solvers.ScoreSDE(prior, n_steps=cfg.n_steps, **common)
    if cfg.method == "dds":
        return solvers.DDS(prior, n_steps=cfg.n_steps, eta=cfg.eta, cg_steps=cfg.cg_steps, **common)
    if cfg.method == "diffpir":
        return solvers.DiffPIR(prior, n_steps=cfg.n_steps, lam=cfg.lam, zeta=cfg.mix, cg_steps=cfg.cg_steps, **common)
    if cfg.method == "daps":
        return solvers.DAPS(prior, n_anneal=cfg.n_steps, n_ode=cfg.n_ode, n_langevin=cfg.n_inner,
                            r_scale=cfg.r_scale, sigma_max=cfg.sigma_max, **common)
    if cfg.method == "pnpdm":
        return solvers.PnPDM(prior, n_steps=cfg.n_steps, rho_max=cfg.rho_max, rho_min=cfg.rho_min,
                             n_prior=cfg.n_prior, cg_steps=cfg.cg_steps, **common)
    if cfg.method == "stsl":
        return solvers.STSL(prior, n_steps=cfg.n_steps, zeta=cfg.zeta, omega=cfg.omega, **common)
    raise ValueError(f"method must be one of {', '.join(METHODS)}; got {cfg.method!r}.")


def _problems(cfg, xs, seed, base):
    return [tomography.sparse_view(x, n_angles=cfg.n_angles, noise=cfg.noise,
                                   key=jax.random.fold_in(jax.random.key(seed), base + i)) for i, x in enumerate(xs)]


def run_ct(cfg: CTConfig, seed: int) -> Outcome:
    prior = ScorePrior.pretrained(cfg.prior)
    tv = lambda lam: solvers.ChambollePock(lam=lam, max_steps=cfg.tv_steps)  # noqa: E731
    xv = phantoms.axial_slices("val", 64)[0][:: max(1, 8 // max(cfg.n_val, 1))][: cfg.n_val]
    pv = _problems(cfg, xv, seed, 100)
    lam_tv = max(cfg.tv_lams, key=lambda lam: np.mean([metrics.psnr(solve(p, tv(lam)).value, x)
                                                       for p, x in zip(pv, xv)]))
    xt, zs = phantoms.axial_slices("test", 64)
    xt, zs = xt[:: cfg.test_stride], zs[:: cfg.test_stride]
    rows, t_method, t_run, solver = [], 0.0, [], make_solver(cfg, prior)
    for i, (x, prob) in enumerate(zip(xt, _problems(cfg, xt, seed, 200))):
        t0 = time.perf_counter()
        sol = solve(prob, solver, key=jax.random.fold_in(jax.random.key(seed), 300 + i))
        t_method += time.perf_counter() - t0
        t_run.append(sol.stats["wall_time_s"] - sol.stats["compile_time_s"])
        s_tv, fbp = solve(prob, tv(lam_tv)).value, tomography.fbp(prob)
        row = {"psnr": metrics.psnr(sol.value, x), "ssim": metrics.ssim(sol.value, x),
               "psnr_fbp": metrics.psnr(fbp, x), "ssim_fbp": metrics.ssim(fbp, x),
               "psnr_tv": metrics.psnr(s_tv, x), "ssim_tv": metrics.ssim(s_tv, x),
               "psnr_sample": metrics.psnr(sol.samples[0], x), "mean_std": jnp.mean(sol.std),
               "chi2": prob.normalized_chi2(sol.value), "chi2_tv": prob.normalized_chi2(s_tv)}
        if sol.samples.shape[0] > 1:  # the per-pixel 90 % interval of the particles
            lo, hi = sol.credible_interval(0.9)
            row["coverage_90"] = metrics.coverage(lo, hi, x)
        rows.append(row)
    extra = {k: float(np.mean([float(r[k]) for r in rows])) for k in rows[0]}
    extra.update(psnr_per_slice=[float(r["psnr"]) for r in rows], test_slices_z=[int(z) for z in zs],
                 tv_lam=lam_tv, time_per_slice_s=t_method / len(xt), gain_over_tv_db=extra["psnr"] - extra["psnr_tv"],
                 gain_over_fbp_db=extra["psnr"] - extra["psnr_fbp"],
                 run_time_per_slice_s=float(np.median(t_run)),
                 run_time_per_sample_s=float(np.median(t_run)) / cfg.n_samples, nfe=int(sol.stats.get("nfe", 0)),
                 n_forward=int(sol.stats.get("n_forward", 0)))
    truth = np.asarray(x)
    mean = f"{cfg.method} mean"
    fields = {"truth": truth, "FBP": np.asarray(fbp), "TV": np.asarray(s_tv),
              mean: np.asarray(sol.value), "posterior std": np.asarray(sol.std),
              "error": np.asarray(sol.value) - truth}
    paper = PAPER[cfg.method]
    m = _DISPLAY.get(cfg.method, cfg.method)
    return Outcome(sol, fields, paper=paper, extra_metrics=extra, **mni_figure(
        fields, f"test slice z = {int(zs[-1])}",
        {"FBP": f"FBP ({cfg.n_angles} views)", "TV": f"TV-MAP (λ = {lam_tv:g})",
         mean: f"{m} posterior mean ({cfg.n_samples} samples)", "posterior std": f"{m} posterior std",
         "error": f"{m} error (mean − truth)"}))


_DISPLAY = {"dps": "DPS", "reddiff": "RED-diff", "score-sde": "score-SDE", "dds": "DDS", "diffpir": "DiffPIR",
            "daps": "DAPS", "pnpdm": "PnP-DM", "stsl": "STSL"}


# MNI152 slices (`phantoms.brain_slice`): 1 mm voxels, the axial plane's larger side (218 mm)
# resampled to the image, rows from anterior (top) to posterior.
MNI_FOV_MM = 218.0


def mni_figure(fields: dict, shown: str, labels: dict, coverage=None) -> dict:
    """Outcome figure fields of an MNI152 slice reconstruction: image layout, axes in mm,
    truth and estimates on one scale, PSNR/SSIM of the shown slice in each estimate's title."""
    truth = fields["truth"]
    pm = {k: (("PSNR", float(metrics.psnr(v, truth))), ("SSIM", float(metrics.ssim(v, truth))))
          for k, v in fields.items() if k != "truth" and "std" not in k and "error" not in k}
    box = ((0.0, MNI_FOV_MM), (0.0, MNI_FOV_MM))
    return dict(layout="image", extent=box, axes=("x [mm]", "y [mm]"), ncols=3,
                labels={"truth": f"truth: {shown}", **labels}, panel_metrics=pm,
                units={k: "std (intensity)" for k in fields if "std" in k})


_QUICK = dict(n_steps=40, n_samples=2, tv_lams=(10.0,), n_val=1, test_stride=24)
for _method, _name in (("dps", "ct-dps"), ("reddiff", "ct-reddiff"), ("score-sde", "ct-score-sde")):
    register(Experiment(
        _name, f"sparse-view CT (64^2, 30 views, 1% noise) of held-out MNI152 slices: {_method} with the shipped "
               "score prior vs FBP and TV-MAP",
        run_ct, quick=CTConfig(method=_method, **_QUICK),
        full=CTConfig(method=_method, n_samples=1 if _method == "reddiff" else 8),
        x64=False,
        criteria=(Criterion("psnr", ">=", 1.0, 1.0, "ours: a posterior mean with a learned prior at least 1 dB "
                            "above FBP", ref="psnr_fbp"),
                  Criterion("psnr", ">=", 0.0, 0.0, "ours: a learned prior should not lose to TV-MAP with its "
                            "weight picked on validation slices", ref="psnr_tv"))))


# The second generation: settings picked on the validation slab (`benchmarks/tune_samplers.py`,
# 2 slices, one sample each; docs/results.md); the full runs use 6 test slices.
TUNED = {
    "dds": dict(n_steps=100, eta=0.15, cg_steps=3),
    "diffpir": dict(n_steps=100, lam=1.0, mix=1.0, cg_steps=10),
    "daps": dict(n_steps=50, n_ode=3, n_inner=30, r_scale=1.0, sigma_max=5.0),
    "pnpdm": dict(n_steps=40, rho_max=2.0, rho_min=0.005, n_prior=5, cg_steps=20),
    "stsl": dict(n_steps=300, zeta=0.01, omega=1.0),
}


def _criteria(method):
    both = (
        Criterion("psnr", ">=", 1.0, 5.0, "quick: ours, 1 dB over FBP; full: the project's target, FBP + 5 dB",
                  ref="psnr_fbp"),
        Criterion("psnr", ">=", -3.0, 2.0, "quick: ours, within 3 dB of TV-MAP at a fraction of the steps; full: "
                  "the project's target for the best sampler, TV-MAP + 2 dB", ref="psnr_tv"),
        Criterion("chi2", "<=", 3.0, 2.0, "the project's calibration target: chi-square of the estimate <= 2 "
                  "(quick: <= 3)"),
        Criterion("chi2", ">=", 0.3, 0.5, "the project's calibration target: chi-square >= 0.5, no overfitting of "
                  "the noise (quick: >= 0.3)"),
        Criterion("coverage_90", ">=", None, 0.8, "the project's target: the 90 % interval of the samples covers "
                  ">= 80 % of the pixels (full settings: 8 samples)"),
        Criterion("coverage_90", "<=", None, 0.97, "the project's target: and <= 97 %"),
    )
    if method == "dds":
        both += (Criterion("run_time_per_sample_s", "<=", None, 3.0, "the project's target: <= 3 s per slice and "
                           "sample on 2 CPU cores"),
                 Criterion("psnr", ">=", None, 1.0, "the project's target for DDS: TV-MAP + 1 dB", ref="psnr_tv"))
    if _FULL_SAMPLES[method] < 8:
        both = tuple(c for c in both if c.metric != "coverage_90")
    return both


_FULL_SAMPLES = {"dds": 8, "diffpir": 8, "daps": 8, "pnpdm": 8, "stsl": 2}
_QUICK_STEPS = {"dds": 20, "diffpir": 30, "daps": 15, "pnpdm": 12, "stsl": 40}
for _method, _kw in TUNED.items():
    _quick = {**_kw, **_QUICK, "n_steps": _QUICK_STEPS[_method]}
    register(Experiment(
        f"ct-{_method}", f"sparse-view CT (64^2, 30 views, 1% noise) of held-out MNI152 slices: {_method} with the "
                         "shipped score prior vs FBP and TV-MAP (NFE, forward evaluations, chi-square, coverage)",
        run_ct, quick=CTConfig(method=_method, **_quick),
        full=CTConfig(method=_method, **_kw, n_samples=_FULL_SAMPLES[_method], test_stride=4),
        x64=False,
        criteria=_criteria(_method)))


@dataclasses.dataclass(frozen=True)
class MBIRConfig:
    """A stack of ``n_slices`` consecutive MNI152 axial slices from voxel ``z_start`` (84:
    the test slab with its guards, unseen in training), 64^2, parallel beam with
    ``n_angles`` views per slice and relative noise ``noise``. DiffusionMBIR with ``tv_z``
    and ``rho`` against the same sampler with ``tv_z = 0`` (independent slices)."""

    z_start: int = 84
    n_slices: int = 32
    n_angles: int = 8
    noise: float = 0.01
    n_steps: int = 300
    tv_z: float = 1.0
    rho: float = 10.0
    cg_steps: int = 2


def _stack(cfg, seed):
    """The shipped prior, the slice stack and its sparse-view problem (`MBIRConfig`, `DDS3DConfig`)."""
    vol = phantoms.axial_stack(cfg.z_start, cfg.n_slices, 64)
    prob = tomography.sparse_view(vol, n_angles=cfg.n_angles, noise=cfg.noise, key=jax.random.key(seed))
    return ScorePrior.pretrained("mni-64"), vol, prob


def _zcut(v):
    """A sagittal cut through a stack ``(n_slices, 64, 64)``: rows from the top slice down,
    columns from posterior to anterior."""
    return np.asarray(v[::-1, ::-1, v.shape[2] // 2])


def _z_error(v, vol):
    """RMS error of the differences between neighbouring slices (how consistent along z)."""
    return float(jnp.sqrt(jnp.mean((jnp.diff(v, axis=0) - jnp.diff(vol, axis=0)) ** 2)))


def _stack_fields(vol, estimates: dict):
    """The figure panels of a 3D run: the middle axial slice, then a z cut, of the truth and
    of each named estimate."""
    mid = vol.shape[0] // 2
    stacks = {"truth": vol, **estimates}
    return {**{f"{k} (axial)": np.asarray(v[mid]) for k, v in stacks.items()},
            **{f"{k} (z cut)": _zcut(v) for k, v in stacks.items()}}


def _stack_figure(cfg, fields: dict, psnr: dict, z_error: dict) -> dict:
    """Figure fields of a 3D run: axial slices and sagittal cuts in mm (1 mm slices), one
    colour scale; each estimate's volume PSNR on its axial panel, its z-gradient error on its cut."""
    z0, z1 = float(cfg.z_start), float(cfg.z_start + cfg.n_slices)
    axial, cut = ((0.0, MNI_FOV_MM), (0.0, MNI_FOV_MM)), ((0.0, MNI_FOV_MM), (z0, z1))
    extent = {k: axial if k.endswith("(axial)") else cut for k in fields}
    axes = {k: ("x [mm]", "y [mm]") if k.endswith("(axial)") else ("y (posterior → anterior) [mm]", "z [mm]")
            for k in fields}
    labels = {k: k.replace("(axial)", f"(axial slice z = {cfg.z_start + cfg.n_slices // 2})")
              .replace("(z cut)", "(sagittal cut, z stretched)") for k in fields}
    pm = {**{f"{k} (axial)": (("PSNR (volume)", v),) for k, v in psnr.items()},
          **{f"{k} (z cut)": (("z-gradient RMSE", v),) for k, v in z_error.items()}}
    return dict(layout="image", extent=extent, axes=axes, labels=labels, panel_metrics=pm, ncols=len(fields) // 2)


def run_mbir(cfg: MBIRConfig, seed: int) -> Outcome:
    prior, vol, prob = _stack(cfg, seed)
    out, sols = {}, {}
    for name, tv in (("mbir", cfg.tv_z), ("independent", 0.0)):
        t0 = time.perf_counter()
        sols[name] = solve(prob, solvers.DiffusionMBIR(prior, tv_z=tv, rho=cfg.rho, n_steps=cfg.n_steps,
                                                        cg_steps=cfg.cg_steps, clip=(0.0, 1.0)),
                           key=jax.random.fold_in(jax.random.key(seed), 1))
        v = sols[name].value
        out[name] = {"psnr": float(metrics.psnr(v, vol)),
                     "z_error": _z_error(v, vol),
                     "time_s": time.perf_counter() - t0}
    extra = {"psnr": out["mbir"]["psnr"], "psnr_independent_slices": out["independent"]["psnr"],
             "z_error": out["mbir"]["z_error"], "z_error_independent_slices": out["independent"]["z_error"],
             "time_s": out["mbir"]["time_s"], "time_independent_s": out["independent"]["time_s"]}
    fields = _stack_fields(vol, {"MBIR": sols["mbir"].value, "independent": sols["independent"].value})
    fig = _stack_figure(cfg, fields, {"MBIR": out["mbir"]["psnr"], "independent": out["independent"]["psnr"]},
                        {"MBIR": out["mbir"]["z_error"], "independent": out["independent"]["z_error"]})
    return Outcome(sols["mbir"], fields, paper=PAPER["mbir"], extra_metrics=extra, **fig)


register(Experiment(
    "ct3d-mbir", "3D sparse-view CT of a 32-slice MNI152 stack with the 2D score prior: DiffusionMBIR (TV along z) "
                 "vs independent per-slice sampling",
    run_mbir, quick=MBIRConfig(n_slices=8, n_steps=30), full=MBIRConfig(), x64=False,
    criteria=(
        Criterion("psnr", ">=", 2.0, 2.0, "the paper's claim (TV along z makes a 2D prior work in 3D), ours as a "
                  "number: >= 2 dB over independent slices (quick measured +4.6 dB)", ref="psnr_independent_slices"),
        Criterion("z_error", "<=", 0.5, 0.5, "ours: the z-gradient error at most half that of independent slices "
                  "(quick measured 0.25x)", ref="z_error_independent_slices", rel="*"),
    )))


@dataclasses.dataclass(frozen=True)
class DDS3DConfig:
    """The `ct3d-mbir` setting (``n_slices`` test-slab slices from ``z_start``, 8 views, 1 %
    noise): DDS-3D (``n_steps`` DDIM steps, ``admm_steps`` ADMM iterations of ``cg_steps``
    CG steps with TV weight ``tv_z`` along the slices, in whitened data units) against
    DiffusionMBIR with its `MBIRConfig` settings (``mbir_steps``). Times exclude compilation."""

    z_start: int = 84
    n_slices: int = 32
    n_angles: int = 8
    noise: float = 0.01
    n_steps: int = 50
    eta: float = 1.0
    cg_steps: int = 5
    admm_steps: int = 2
    tv_z: float = 30.0
    rho: float = 30.0
    mbir_steps: int = 300


def run_dds3d(cfg: DDS3DConfig, seed: int) -> Outcome:
    prior, vol, prob = _stack(cfg, seed)
    key = jax.random.fold_in(jax.random.key(seed), 1)
    mb = MBIRConfig()
    runs = {"dds": solvers.DDS(prior, n_steps=cfg.n_steps, eta=cfg.eta, cg_steps=cfg.cg_steps, tv_z=cfg.tv_z,
                               rho=cfg.rho, admm_steps=cfg.admm_steps, clip=(0.0, 1.0)),
            "mbir": solvers.DiffusionMBIR(prior, tv_z=mb.tv_z, rho=mb.rho, n_steps=cfg.mbir_steps,
                                          cg_steps=mb.cg_steps, clip=(0.0, 1.0))}
    sols, out = {}, {}
    for name, solver in runs.items():
        sols[name] = sol = solve(prob, solver, key=key)
        out[f"psnr_{name}"] = float(metrics.psnr(sol.value, vol))
        out[f"time_{name}_s"] = sol.stats["wall_time_s"] - sol.stats["compile_time_s"]
        out[f"nfe_{name}"] = int(sol.stats["nfe"])
    extra = {"psnr": out["psnr_dds"], **out, "speedup_over_mbir": out["time_mbir_s"] / out["time_dds_s"],
             "chi2": float(prob.normalized_chi2(sols["dds"].value)),
             "z_error": _z_error(sols["dds"].value, vol)}
    fields = _stack_fields(vol, {"DDS-3D": sols["dds"].value, "MBIR": sols["mbir"].value})
    fig = _stack_figure(cfg, fields, {"DDS-3D": out["psnr_dds"], "MBIR": out["psnr_mbir"]},
                        {"DDS-3D": extra["z_error"], "MBIR": _z_error(sols["mbir"].value, vol)})
    return Outcome(sols["dds"], fields, paper=PAPER["dds"], extra_metrics=extra, **fig)


register(Experiment(
    "ct3d-dds", "3D sparse-view CT of a 32-slice MNI152 stack: DDS-3D (TV along z inside the CG data step) vs "
                "DiffusionMBIR",
    run_dds3d, quick=DDS3DConfig(n_slices=8, n_steps=20, mbir_steps=30), full=DDS3DConfig(), x64=False,
    criteria=(
        Criterion("psnr", ">=", 0.0, 0.0, "the paper's claim: DDS at least as accurate as DiffusionMBIR",
                  ref="psnr_mbir"),
        Criterion("speedup_over_mbir", ">=", 1.4, 10.0, "the project's target at full settings, compile excluded "
                  "(the paper reports > 80x); quick (20 vs 30 steps, 8 slices): measured 2.2x, a timing ratio, so "
                  "the floor has a 1.5x margin"),
        Criterion("chi2", ">=", 0.5, 0.5, "ours: the stack does not fit the noise (normalised chi-square >= 0.5)"),
    )))
