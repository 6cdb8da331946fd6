"""Diffusion priors: network evaluations per second, time per posterior sample, and PSNR
against wall time across solvers.

Run:  python benchmarks/diffusion.py            # 2 test slices, full step counts
      python benchmarks/diffusion.py --quick    # 1 slice, fewer steps
      python benchmarks/diffusion.py --tables reconstruction   # without PyTorch

Table 1, the score network (`ScoreUNet`, channels 16-32-64-64, attention at 8^2, float32,
64^2): evaluations per second at batch 1 and 16, invsolve (a jitted flax NNX call) against
the same architecture written in PyTorch (the papers' framework; `torch.no_grad`, eval mode),
medians of 5 timed runs of 10 calls after a warm-up (compile separate). Weights differ
(random init on both sides): only the work is compared.
Table 2, a budget-matched leaderboard: sparse-view CT (30 views, 1% noise) of held-out MNI152
slices with the shipped `mni-64` priors: FBP, TV-MAP, PnP-ADMM with the LPN and every
diffusion sampler at its experiment's settings (`ct-*`): network evaluations (NFE) and
forward/adjoint applications per sample, median seconds per slice and per sample (compile
excluded, in its own column), mean PSNR, SSIM, normalised chi-square of the estimate and the
coverage of the per-pixel 90 % interval of the samples.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import invsolve as inv  # noqa: E402
from invsolve.nn.score import ScoreUNet  # noqa: E402
from invsolve.problems import phantoms, tomography  # noqa: E402

CHANNELS = (16, 32, 64, 64)


def _median(fn, repeats=5, calls=10):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = fn()
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / calls)
    return statistics.median(times)


def jax_evals(batch):
    net = ScoreUNet(CHANNELS, True, rngs=nnx.Rngs(0))
    g, p = nnx.split(net)
    f = jax.jit(lambda p, x, c: nnx.merge(g, p)(x, c))
    x, c = jnp.ones((batch, 64, 64, 1), jnp.float32), jnp.zeros(batch, jnp.float32)
    t0 = time.perf_counter()
    jax.block_until_ready(f(p, x, c))
    compile_s = time.perf_counter() - t0
    return batch / _median(lambda: f(p, x, c)), compile_s


def torch_evals(batch):
    import torch
    from torch import nn

    torch.set_num_threads(2)

    def gn(ch):
        return nn.GroupNorm(next(g for g in (8, 4, 2, 1) if ch % g == 0), ch)

    class Block(nn.Module):
        def __init__(self, cin, cout, temb):
            super().__init__()
            self.n1, self.c1, self.t = gn(cin), nn.Conv2d(cin, cout, 3, padding=1), nn.Linear(temb, cout)
            self.n2, self.c2 = gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
            self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

        def forward(self, h, emb):
            r = self.c1(nn.functional.silu(self.n1(h))) + self.t(emb)[:, :, None, None]
            return self.c2(nn.functional.silu(self.n2(r))) + self.skip(h)

    class Attention(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.norm, self.qkv, self.out = gn(ch), nn.Linear(ch, 3 * ch), nn.Linear(ch, ch)

        def forward(self, h):
            b, ch, hh, ww = h.shape
            q, k, v = self.qkv(self.norm(h).flatten(2).transpose(1, 2)).chunk(3, dim=-1)
            w = torch.softmax(q @ k.transpose(1, 2) / ch**0.5, dim=-1)
            return h + self.out(w @ v).transpose(1, 2).reshape(h.shape)

    class UNet(nn.Module):
        def __init__(self, ch=CHANNELS):
            super().__init__()
            c0, temb = ch[0], 4 * ch[0]
            self.c0, self.t1, self.t2 = c0, nn.Linear(c0, temb), nn.Linear(temb, temb)
            self.lift = nn.Conv2d(1, c0, 3, padding=1)
            self.down = nn.ModuleList([Block(ci, co, temb) for ci, co in zip((c0, *ch[:-1]), ch)])
            self.mid, self.attn = Block(ch[-1], ch[-1], temb), Attention(ch[-1])
            self.up = nn.ModuleList([Block(ch[i + 1] + ch[i], ch[i], temb) for i in range(len(ch) - 1)])
            self.norm, self.project = gn(c0), nn.Conv2d(c0, 1, 3, padding=1)

        def forward(self, x, c):
            freqs = torch.exp(torch.linspace(np.log(0.05), np.log(20.0), self.c0 // 2))
            arg = c[:, None] * freqs
            emb = self.t2(nn.functional.silu(self.t1(torch.cat([torch.sin(arg), torch.cos(arg)], -1))))
            h, skips = self.lift(x), []
            for i, block in enumerate(self.down):
                if i:
                    h = nn.functional.avg_pool2d(h, 2)
                h = block(h, emb)
                skips.append(h)
            h = self.attn(self.mid(h, emb))
            for i in reversed(range(len(self.up))):
                h = self.up[i](torch.cat([nn.functional.interpolate(h, scale_factor=2), skips[i]], 1), emb)
            return self.project(nn.functional.silu(self.norm(h)))

    net = UNet().eval()
    x, c = torch.ones(batch, 1, 64, 64), torch.zeros(batch)
    with torch.no_grad():
        net(x, c)
        return batch / _median(lambda: net(x, c)), 0.0


def table_network(batches):
    print("\nScore network (ScoreUNet 16-32-64-64 + attention, 64^2, float32): evaluations per second")
    print(f"{'batch':>6} {'invsolve (JAX)':>15} {'PyTorch':>9} {'ratio':>6} {'compile s':>10}")
    for b in batches:
        j, comp = jax_evals(b)
        t, _ = torch_evals(b)
        print(f"{b:>6} {j:>15.1f} {t:>9.1f} {j / t:>6.2f} {comp:>10.1f}")


def table_reconstruction(n_slices, quick):
    """Every method on the same slices (the ``ct-*`` experiments' full settings; ``quick``:
    their quick settings)."""

    from invsolve import experiments
    from invsolve.experiments.diffusion import make_solver

    xs = phantoms.axial_slices("test", 64)[0][::12][:n_slices]
    probs = [tomography.sparse_view(x, n_angles=30, noise=0.01, key=jax.random.key(10 + i)) for i, x in enumerate(xs)]
    prior = inv.priors.ScorePrior.pretrained("mni-64")
    lpn = inv.priors.LPN.pretrained("mni-64")
    methods = {"FBP": (None, 1),
               "TV-MAP (500 it)": (lambda: inv.solvers.ChambollePock(lam=10.0, max_steps=500), 1),
               "PnP-ADMM LPN (20 it)": (lambda: inv.solvers.PnPADMM(lpn, max_steps=20), 1)}
    for name in ("ct-score-sde", "ct-dps", "ct-reddiff", "ct-dds", "ct-diffpir", "ct-daps", "ct-pnpdm", "ct-stsl"):
        exp = experiments.get(name)
        cfg = exp.quick if quick else exp.full
        label = f"{cfg.method} ({cfg.n_steps} steps, {cfg.n_samples} sample{'s' * (cfg.n_samples > 1)})"
        methods[label] = ((lambda c: lambda: make_solver(c, prior))(cfg), cfg.n_samples)
    print(f"\nSparse-view CT 64^2, 30 views, 1% noise, {n_slices} held-out MNI152 slice(s); NFE and forward "
          "evaluations per sample; coverage of the per-pixel 90 % interval of the samples")
    print("| method | NFE | forward + adjoint | s / slice | s / sample | compile s | PSNR dB | SSIM | chi2 | coverage |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, (make, n_samples) in methods.items():
        rows, times, comp, stats = [], [], 0.0, {}
        for i, (p, x) in enumerate(zip(probs, xs)):
            cov = float("nan")
            if make is None:
                t0 = time.perf_counter()
                v = jax.block_until_ready(tomography.fbp(p))
                times.append(time.perf_counter() - t0)
            else:
                sol = inv.solve(p, make(), key=jax.random.key(1))
                v = jax.block_until_ready(sol.value)
                times.append(sol.stats["wall_time_s"] - sol.stats["compile_time_s"])
                comp = max(comp, sol.stats["compile_time_s"])
                stats = sol.stats
                if sol.samples is not None and sol.samples.shape[0] > 1:
                    lo, hi = sol.credible_interval(0.9)
                    cov = float(inv.metrics.coverage(lo, hi, x))
            rows.append((float(inv.metrics.psnr(v, x)), float(inv.metrics.ssim(v, x)),
                         float(p.normalized_chi2(v)), cov))
        ps, ss, chi, cv = np.mean(rows, axis=0)
        t = float(np.median(times))
        nfe, nf = stats.get("nfe", ""), stats.get("n_forward", "")
        cvs = "" if np.isnan(cv) else f"{cv:.2f}"
        print(f"| {name} | {nfe} | {nf} | {t:.2f} | {t / n_samples:.2f} | {comp:.1f} | {ps:.2f} | {ss:.3f} | "
              f"{chi:.2f} | {cvs} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tables", default="network,reconstruction", help="which tables (the first needs torch)")
    args = ap.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, 2 CPU cores")
    if "network" in args.tables:
        table_network((1, 16))
    if "reconstruction" in args.tables:
        table_reconstruction(1 if args.quick else 2, args.quick)


if __name__ == "__main__":
    main()
