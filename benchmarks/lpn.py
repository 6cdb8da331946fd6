"""Learned proximal networks: training and plug-and-play speed, and PSNR against wall time.

Run:  python benchmarks/lpn.py            # sizes 64 and 128, 3 test slices
      python benchmarks/lpn.py --quick    # size 64, 1 test slice

Table 1, training: one optimizer step of the shipped image LPN (`ConvICNN`, hidden 32, 3
halvings, float32, batch 16, proximal matching loss: a gradient of the network's gradient)
in invsolve (`LPN.train`, a jitted update per step) and in PyTorch (the same network written with `torch.nn`, the
paper's framework; `torch.autograd.grad(create_graph=True)`), steps per second from
medians of timed runs of 10 steps after a warm-up (compile time in its own column).
Table 2, reconstruction: sparse-view CT (30 views, 1% noise) of held-out MNI152 slices
(upsampled for 128^2): FBP, TV-MAP (Chambolle-Pock, 500 steps, lam 10), PnP-ADMM with the
`mni-64` LPN (rho = 1/sigma^2; 20, 50, 100 steps), PnP-PGD (100 steps); mean PSNR and wall
time per slice (median of 2 runs on one slice after a warm-up; compile separate). The network is fully
convolutional, so the 64^2 prior runs on 128^2 images as is (it was not trained there).
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import optax  # noqa: E402

import invsolve as inv  # noqa: E402
from invsolve.priors import LPN  # noqa: E402
from invsolve.problems import phantoms, tomography  # noqa: E402


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- training ------------------------------------------------------------------------------
def jax_training(size, batch=16, steps=10, repeats=3):
    """``LPN.train`` itself (its jitted update, host loop, clipping), proximal matching only:
    the time of ``2 + steps`` steps minus that of 2 (compile and warm-up), median of ``repeats``."""
    data = np.asarray(phantoms.random_ellipses(jax.random.key(1), 64, size))
    kw = dict(sigma=0.1, optimizer=optax.adam(1e-4), loss="proximal_matching", key=jax.random.key(0),
              batch_size=batch, pretrain_fraction=0.0, gammas=(0.08 * size,), progress=False)
    t0 = time.perf_counter()
    LPN.train(data, steps=2, **kw)
    first = time.perf_counter() - t0
    short = _median_time(lambda: LPN.train(data, steps=2, **kw).params, repeats)
    long = _median_time(lambda: LPN.train(data, steps=2 + steps, **kw).params, repeats)
    return steps / (long - short), first - short


def torch_training(size, batch=16, steps=10, repeats=5):
    import torch
    from torch import nn

    torch.set_num_threads(2)

    class ICNN(nn.Module):  # the same architecture as invsolve.nn.ConvICNN
        def __init__(self, hidden=32, levels=3, beta=10.0):
            super().__init__()
            self.uy = nn.ModuleList([nn.Conv2d(1, hidden, 3, padding=1) for _ in range(2 * levels + 1)])
            self.wz = nn.ModuleList([nn.Conv2d(hidden, hidden, 3, stride=2 - i % 2, padding=1, bias=False)
                                     for i in range(2 * levels)])
            self.out = nn.Conv2d(hidden, 1, 1, bias=False)
            self.act = nn.Softplus(beta=beta)
            with torch.no_grad():
                for m in [*self.wz, self.out]:
                    m.weight.normal_(-10, 0.1).exp_()

        def forward(self, y):
            z = self.act(self.uy[0](y))
            for i, (wz, uy) in enumerate(zip(self.wz, self.uy[1:])):
                z = self.act(wz(z) + uy(nn.functional.avg_pool2d(y, 2 ** (i // 2 + 1))))
            return self.out(z).sum(dim=(1, 2, 3)) + 0.5e-6 * (y * y).sum(dim=(1, 2, 3))

    net = ICNN()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.tensor(np.asarray(phantoms.random_ellipses(jax.random.key(1), batch, size)), dtype=torch.float32)[:, None]
    y = x + 0.1 * torch.randn_like(x)
    gamma = 0.08 * size

    def run():
        for _ in range(steps):
            yy = y.clone().requires_grad_(True)
            f = torch.autograd.grad(net(yy).sum(), yy, create_graph=True)[0]
            loss = (1 - torch.exp(-((f - x) ** 2).sum(dim=(1, 2, 3)) / gamma**2)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for m in [*net.wz, net.out]:
                    m.weight.clamp_(0)
        return 0

    run()
    return steps / _median_time(run, repeats)


# --- reconstruction ------------------------------------------------------------------------
def reconstruction(size, n_slices, repeats=2):
    lpn = LPN.pretrained("mni-64")
    xs = phantoms.axial_slices("test", size)[0][::8][:n_slices]
    probs = [tomography.sparse_view(x, n_angles=30, noise=0.01, key=jax.random.key(i)) for i, x in enumerate(xs)]
    methods = {
        "FBP": lambda p: tomography.fbp(p),
        "TV-MAP, 500 steps": lambda p: inv.solve(p, inv.solvers.ChambollePock(lam=10.0, max_steps=500)).value,
        **{f"PnP-ADMM LPN, {k} steps": (lambda k: lambda p: inv.solve(p, inv.solvers.PnPADMM(prior=lpn, max_steps=k)).value)(k)
           for k in (20, 50, 100)},
        "PnP-PGD LPN, 100 steps": lambda p: inv.solve(p, inv.solvers.PnPPGD(prior=lpn, max_steps=100)).value,
    }
    rows = []
    for name, fn in methods.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn(probs[0]))
        warm = time.perf_counter() - t0
        t = _median_time(lambda: fn(probs[0]), repeats)
        psnr = float(np.mean([inv.metrics.psnr(fn(p), x) for p, x in zip(probs, xs)]))
        rows.append((name, psnr, t, max(warm - t, 0.0)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [64] if args.quick else [64, 128]
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, {os.cpu_count()} cores")
    print("\nTraining (batch 16, proximal matching step incl. weight clipping), steps/s")
    print("| size | invsolve (JAX) | PyTorch | ratio | invsolve compile (s) |")
    print("|---|---|---|---|---|")
    for n in sizes:
        j, compile_s = jax_training(n)
        t = torch_training(n)
        print(f"| {n}² | {j:.2f} | {t:.2f} | {j / t:.2f}x | {compile_s:.1f} |")
    print("\nSparse-view CT (30 views, 1% noise), held-out MNI152 slices: mean PSNR and time per slice")
    print("| size | method | PSNR (dB) | time (s) | iterations/s | compile (s) |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        for name, psnr, t, c in reconstruction(n, 1 if args.quick else 3):
            steps = int(name.split(", ")[1].split()[0]) if "steps" in name else None
            rate = f"{steps / t:.0f}" if steps else "-"
            print(f"| {n}² | {name} | {psnr:.2f} | {t:.3f} | {rate} | {c:.1f} |")


if __name__ == "__main__":
    main()
