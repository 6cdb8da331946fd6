"""The 80-D exact-posterior test bed: sliced W2 of DDS, DiffPIR, DAPS, PnP-DM and STSL at their
paper budgets (1000 particles) against the sampling floor (two exact posterior samples).

A 5-component mixture in 80 dimensions, y = A x + 0.1 e with a random 40 x 80 A
(`tests/helpers.py: mixture_testbed`), the settings of the 8-D test bed (tests/test_samplers.py).

Run:  python benchmarks/samplers_testbed.py     (about 4 minutes)
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import invsolve as inv  # noqa: E402
from helpers import mixture_testbed, sliced_wasserstein  # noqa: E402

N = 1000
gm, prob, post, ref = mixture_testbed(N, dim=80, m=40, sigma=0.1)
floor = sliced_wasserstein(post.draw(jax.random.key(9), N), ref, jax.random.key(5))
gap = sliced_wasserstein(gm.draw(jax.random.key(2), N), ref, jax.random.key(5))
print(f"80-D, 40 data: floor {floor:.4f}, prior {gap:.4f}")
S = inv.solvers
for name, make in {"dds": lambda: S.DDS(gm, n_steps=50, cg_steps=5, eta=1.0, n_samples=N),
                   "diffpir": lambda: S.DiffPIR(gm, n_steps=100, cg_steps=40, zeta=1.0, n_samples=N),
                   "daps": lambda: S.DAPS(gm, n_anneal=100, sigma_max=20.0, n_samples=N),
                   "pnpdm": lambda: S.PnPDM(gm, n_steps=40, cg_steps=40, n_samples=N),
                   "stsl": lambda: S.STSL(gm, n_steps=50, zeta=0.05, n_samples=N)}.items():
    sol = inv.solve(prob, make(), key=jax.random.key(12))
    sw = sliced_wasserstein(sol.samples, ref, jax.random.key(5))
    print(f"{name}: {sw:.4f} ({sw / floor:.1f}x floor)", flush=True)
