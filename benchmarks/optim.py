"""Optimizer update cost: optax Adam vs. invsolve's SOAP and M-FAC (and PyTorch's where it has them).

Run from the repository root: ``python benchmarks/optim.py`` (about 2 minutes on 2 CPU cores),
``--quick`` (a smoke run: 2 repeats), ``--torch-threads 1``. The PyTorch columns need
``pytorch-optimizer`` (``pip install --no-deps pytorch-optimizer``: its only requirements,
torch and numpy, are already there with the CPU torch of benchmarks/README.md); without it (or
without torch) they are "-" and the reason is printed. Prints one markdown table.

Parameter sets, float32:

- PINN net: the network of the PINN benchmark experiments,
  ``invsolve.nn.FieldNet(2, 1, (128,)*4, "tanh", factorized=(1.0, 0.1), periodic=(0,),
  fourier=(1.0, 128))``; its ``nnx.state`` is the parameter pytree (66,882 entries in 16 leaves:
  the Fourier matrix, four 128x128 and one 128x1 factorized weights, scales and biases).
- image: one 128x128 array (a GradientMAP-sized unknown, a single rank-2 leaf of 16,384).
- vector: 16,384 entries in one rank-1 leaf. SOAP preconditions rank-2 leaves only and runs
  plain Adam on every other leaf (in invsolve and in pytorch-optimizer alike), so this row is
  SOAP's Adam fallback.

Optimizers: ``optax.adam(1e-3)``, ``invsolve.optim.soap(1e-3)`` (b1 0.9, b2 0.999, eps 1e-8, a
new eigenbasis every 10 steps), ``invsolve.optim.mfac(1e-3, window=32)`` (damping 1e-4).

Update rows: one update is ``opt.update`` + ``optax.apply_updates`` in one ``jax.jit`` call
(parameters and optimizer state donated, as a training loop would; torch updates in place). SOAP
refreshes its eigenbasis on one step in 10, so every timed sample is a block of 10 consecutive
updates (10 random gradients, drawn once, used in turn; the state carried from update to
update; ``jax.block_until_ready`` at the end of the block) and the table gives block time / 10:
the refresh is amortised as in training. The per-call dispatch of the jitted function is in
the JAX numbers, as the Python overhead of ``step()`` is in torch's.

Threads: XLA runs on every core the process may use (2 here); the LAPACK behind JAX's CPU
``eigh`` (scipy's OpenBLAS) is pinned to one thread (``OPENBLAS_NUM_THREADS=1`` unless set):
with its default threads a 128x128 ``eigh`` took 112 ms instead of 0.7 ms on the loaded 2-core
machine. torch gets the same cores as XLA (``torch.set_num_threads``; ``--torch-threads``
overrides) with ``OMP_WAIT_POLICY=PASSIVE`` unless set; on the loaded machine a 128x128
``torch.linalg.eigh`` took 290 ms with 2 threads and 0.5 ms with 1, so under load compare
``--torch-threads 1`` before reading much into the torch column.

PyTorch (CPU):
``torch.optim.Adam`` (defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8) and
``pytorch_optimizer.SOAP`` with invsolve's settings (betas (0.9, 0.999), weight_decay 0 -- its
default is 0.01 --, precondition_frequency 10, eps 1e-8, bias correction) on tensors of the
same shapes, ``p.grad`` set to the same gradients, ``opt.step()`` timed in the same blocks of
10. pytorch-optimizer's SOAP refreshes the basis with one power iteration + QR (the paper's
cheap option) where invsolve's runs ``eigh``, and skips the parameter update on its first
step (done in the warm-up). M-FAC has no maintained PyPI package (the authors' code is the
GitHub repository IST-DASLab/M-FAC), so its torch cells are "-".

Training rows: a full PINN training step (loss, gradient, balancing check, update, best-params
bookkeeping) of ``invsolve.solvers.PINN(optimizer=..., hidden=(128,)*4, n_collocation=4096,
features="fourier", factorized=True, periodic=True, causal=True, weighting="grad_norm",
warmup_steps=0)`` on ``invsolve.problems.pde.allen_cahn_1d()``. Rather than differencing two
``invsolve.solve`` calls of N1 and N2 steps (whose difference would also carry the run's
set-up and the two compiles' noise), the script calls the solver's own protocol the way the
driver does (``solver = PINN(...).prepare(problem)``, ``state = solver.init(problem, key)``,
then ``solver.step``), with BLOCK steps fused in one ``lax.fori_loop`` under
``eqx.filter_jit`` (the driver fuses its chunks in one ``lax.while_loop``; its per-step
bookkeeping -- finite and divergence checks, the history rows -- is left out). ms/step = block
time / BLOCK. The gradient-norm balancing runs on physics step 0 and then every 1000 steps: it
falls in the first (compiling) block and in no timed block, so the timed steps are the ones
999 out of 1000 training steps are.

Times are medians of REPEATS samples after a first call, the optimizers of a row group timed
in turn (round robin, `_timing.interleaved_medians`, so that load from elsewhere falls on all
alike; one whose samples have taken BUDGET_S seconds is not repeated further). compile s =
first call - median (of the block; for the update rows it includes the first block's nine
already-compiled calls, a few ms at most). "/ Adam" = the row's time / Adam's in the same
framework on the same parameters; "JAX / torch" = the JAX time / torch's for the same
optimizer (< 1: JAX faster).
"""

from __future__ import annotations

import argparse
import os
import time

# JAX's CPU eigh (SOAP's refresh) calls the LAPACK of scipy's OpenBLAS: with its default threads
# (spinning) a 128x128 eigh took 112 ms on the loaded 2-core machine, 0.7 ms with one thread
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# torch's OpenMP threads sleep rather than spin while waiting (see benchmarks/wave.py: with the
# default spinning, 2 threads on a loaded 2-core machine were many times slower)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import _timing  # benchmarks/_timing.py (scripts run from the repository root)

import invsolve
from invsolve.problems import pde

try:
    import torch
    import pytorch_optimizer
    TORCH_ERROR = None
except Exception as err:  # noqa: BLE001 -- optional peer; any import failure is reported
    torch = pytorch_optimizer = None
    TORCH_ERROR = f"{type(err).__name__}: {err}"

REPEATS = 7
BUDGET_S = 6.0  # per optimizer and row group: a slow one gets fewer repeats
BLOCK = 10  # updates per timed sample (= SOAP's precondition_frequency)
TRAIN_BLOCK = 10  # PINN training steps per timed sample
LR = 1e-3
N_FLAT = 128 * 128


def optimizers():
    return {"Adam": optax.adam(LR), "SOAP": invsolve.optim.soap(LR, precondition_frequency=BLOCK),
            "M-FAC": invsolve.optim.mfac(LR, window=32)}


def torch_optimizers():
    return {"Adam": lambda ps: torch.optim.Adam(ps, lr=LR),
            "SOAP": lambda ps: pytorch_optimizer.SOAP(ps, lr=LR, betas=(0.9, 0.999), weight_decay=0.0,
                                                      precondition_frequency=BLOCK, eps=1e-8)}


# --------------------------------------------------------------------------------------
# parameter sets
# --------------------------------------------------------------------------------------
def pinn_params():
    net = invsolve.nn.FieldNet(2, 1, (128,) * 4, "tanh", rngs=nnx.Rngs(0), factorized=(1.0, 0.1), periodic=(0,),
                               fourier=(1.0, 128))
    return nnx.state(net)


def param_sets():
    return {"PINN net": pinn_params(),
            "image 128x128": jnp.zeros((128, 128), jnp.float32),
            "vector": jnp.zeros((N_FLAT,), jnp.float32)}


def random_grads(params, n, seed=0):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), n * len(leaves)).reshape(n, len(leaves))
    return [jax.tree.unflatten(treedef, [1e-2 * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(ks, leaves)])
            for ks in keys]


# --------------------------------------------------------------------------------------
# one update: JAX and torch
# --------------------------------------------------------------------------------------
def jax_block(opt, params, grads):
    """A callable running len(grads) jitted updates (carrying params and state), blocking."""

    def update(p, s, g):
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    fn = jax.jit(update, donate_argnums=(0, 1))
    # copies: every donated buffer must be distinct (SOAP's init shares its zeros between mu and nu)
    box = jax.tree.map(jnp.array, [params, opt.init(params)])

    def run():
        p, s = box
        for g in grads:
            p, s = fn(p, s, g)
        box[:] = jax.block_until_ready((p, s))

    return run


def torch_block(make_opt, params, grads):
    """The same in torch: ``p.grad`` set to each gradient in turn, ``opt.step()``."""
    ps = [torch.nn.Parameter(torch.tensor(np.asarray(x))) for x in jax.tree.leaves(params)]
    tg = [[torch.tensor(np.asarray(x)) for x in jax.tree.leaves(g)] for g in grads]
    opt = make_opt(ps)

    def run():
        with torch.no_grad():
            for gs in tg:
                for p, g in zip(ps, gs):
                    p.grad = g
                opt.step()

    return run


def first_and_median(fns, repeats, n_per_call):
    """(first-call s, median s) per callable, per unit of work (n_per_call units per call)."""
    firsts = []
    for fn in fns:
        t0 = time.perf_counter()
        fn()
        firsts.append(time.perf_counter() - t0)
    meds = _timing.interleaved_medians(fns, repeats, BUDGET_S)
    return [(f, m / n_per_call) for f, m in zip(firsts, meds)]


def update_rows(name, params, repeats, rows):
    grads = random_grads(params, BLOCK)
    opts = optimizers()
    res = first_and_median([jax_block(o, params, grads) for o in opts.values()], repeats, BLOCK)
    tres = {}
    if torch is not None:
        tops = torch_optimizers()
        tfns = [torch_block(m, params, grads) for m in tops.values()]
        tres = dict(zip(tops, (m for _, m in first_and_median(tfns, repeats, BLOCK))))
    adam, tadam = res[0][1], tres.get("Adam")
    for (opt, _), (first, med) in zip(opts.items(), res):
        t = tres.get(opt)
        rows.append((name, opt, med, med / adam, max(first - med * BLOCK, 0.0), t,
                     None if t is None else t / tadam, None if t is None else med / t))


# --------------------------------------------------------------------------------------
# a PINN training step
# --------------------------------------------------------------------------------------
@eqx.filter_jit
def _train_block(solver, problem, state, n):
    return jax.lax.fori_loop(0, n, lambda _, s: solver.step(problem, s)[0], state)


def train_rows(repeats, rows, block):
    from invsolve._driver import _match_step_types  # the driver's cast of the initial state

    problem = pde.allen_cahn_1d()
    fns = []
    for opt in optimizers().values():
        solver = invsolve.solvers.PINN(optimizer=opt, hidden=(128,) * 4, n_collocation=4096, features="fourier",
                                       factorized=True, periodic=True, causal=True, weighting="grad_norm",
                                       warmup_steps=0, steps=10_000).prepare(problem)
        box = [_match_step_types(solver, problem, solver.init(problem, jax.random.key(0)))]

        def run(solver=solver, box=box):
            box[0] = jax.block_until_ready(_train_block(solver, problem, box[0], block))

        fns.append(run)
    res = first_and_median(fns, repeats, block)
    adam = res[0][1]
    for opt, (first, med) in zip(optimizers(), res):
        rows.append(("PINN training step (Allen-Cahn, 4096 points)", opt, med, med / adam,
                     max(first - med * block, 0.0), None, None, None))


# --------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 repeats")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch threads (default: the cores this process may use, as JAX)")
    args = ap.parse_args()
    repeats = 2 if args.quick else REPEATS
    block = TRAIN_BLOCK
    cores = args.torch_threads or len(os.sched_getaffinity(0))
    if torch is not None:
        torch.set_num_threads(cores)
    rows = []
    for name, params in param_sets().items():
        n = sum(x.size for x in jax.tree.leaves(params))
        update_rows(f"{name} ({n:,})", params, repeats, rows)
    train_rows(repeats, rows, block)

    load = os.getloadavg()[0]
    peer = (f"torch {torch.__version__} ({cores} threads), pytorch-optimizer "
            f"{getattr(pytorch_optimizer, '__version__', None) or _dist_version('pytorch-optimizer')}"
            if torch is not None else f"no torch columns ({TORCH_ERROR})")
    print(f"\njax {jax.__version__} ({jax.devices()[0].platform}), optax {optax.__version__}; {peer}; float32; "
          f"updates: median of {repeats} blocks of {BLOCK}; training: median of {repeats} blocks of {block} steps; "
          f"load average {load:.1f} at the end\n")
    print("| params (entries) | optimizer | JAX ms/update | / Adam (JAX) | compile s | torch ms/update "
          "| / Adam (torch) | JAX / torch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    f = lambda x, spec: "-" if x is None else format(x, spec)
    for name, opt, t, r, c, tt, tr, jt in rows:
        if name.startswith("vector") and opt == "SOAP":
            opt = "SOAP (rank 1: its Adam fallback)"
        print(f"| {name} | {opt} | {t * 1e3:.3f} | {r:.2f} | {c:.2f} | {f(tt and tt * 1e3, '.3f')} | {f(tr, '.2f')} "
              f"| {f(jt, '.2f')} |")
    print("\nThe training rows are ms per PINN training step (loss + gradient + update); torch has no counterpart "
          "here. M-FAC has no maintained PyPI package (the authors' code: GitHub IST-DASLab/M-FAC): no torch cells.")


def _dist_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    main()
