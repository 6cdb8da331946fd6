"""Generate ``09_own_problem.ipynb`` (without outputs) from the cells below.

Edit this script, not the notebook, then run ``python notebooks/make_09_own_problem.py``.
"""

from nbgen import Cells, write

cells = Cells()
md, code = cells.md, cells.code


# --------------------------------------------------------------------------------------
md(r"""
# Bring your own problem: the initial temperature of a rod

invsolve ships a few physics, but your problem is probably not one of them. This notebook solves one the
library does not ship, written from scratch in a few lines of JAX, with three different methods:

1. **MAP** (maximum a posteriori) by L-BFGS through any JAX forward function: `inv.ForwardProblem`;
2. **CGLS**, a Krylov least-squares method, on the same model written as a matrix-free linear operator:
   `inv.FunctionOperator` inside `inv.LinearInverse`;
3. **NUTS**, a Markov chain Monte Carlo sampler, for a posterior mean *and* an uncertainty per point.

No subclassing: a forward function (or an operator), the data, and a noise level are all a problem needs.
The notebook checks its own numbers: the `assert` lines hold each result to a bound near its measured value
(in the comment). It runs in under a minute on a laptop CPU.
""")

code(r"""
import jax

jax.config.update("jax_enable_x64", True)  # float64: the adjoint test below is exact to rounding

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import invsolve as inv
""")

# --------------------------------------------------------------------------------------
md(r"""
## 1. The physics

A metal rod of length $L = 1$ m is held at ambient temperature at both ends. Its temperature $u(x, t)$
(kelvin above ambient) obeys the heat equation

$$u_t = \kappa\, u_{xx}, \qquad u(0, t) = u(L, t) = 0,$$

with diffusivity $\kappa = 10^{-4}\ \mathrm{m^2/s}$ (about that of copper). The **initial** profile $u_0(x)$ is
unknown; at a later time $T$, 32 thermocouples read the temperature with noise of $\sigma = 0.01$ K. We want
$u_0$ back.

We discretise on 64 interior points ($\Delta x = L/65$) and take 40 explicit Euler steps,

$$u^{k+1}_i = u^k_i + r\,(u^k_{i-1} - 2u^k_i + u^k_{i+1}), \qquad r = \kappa\,\Delta t/\Delta x^2 = 0.25,$$

(stable for $r \le 1/2$), so $\Delta t \approx 0.59$ s and $T \approx 24$ s. This is an ordinary JAX function:
`jnp.pad` supplies the zero end values and `jnp.diff(..., 2)` the second difference.
""")

code(r"""
n, r, n_steps, sigma = 64, 0.25, 40, 0.01
kappa, L = 1e-4, 1.0
dx = L / (n + 1)
T = n_steps * r * dx**2 / kappa
x = jnp.linspace(0.0, L, n + 2)[1:-1]  # interior grid points (m)


def heat(u0):
    # temperature after n_steps explicit steps, from the initial temperature u0 (K)
    step = lambda u, _: (u + r * jnp.diff(jnp.pad(u, 1), 2), None)
    return jax.lax.scan(step, u0, None, length=n_steps)[0]


def sensors(u0):
    return heat(u0)[::2]  # a thermocouple at every other grid point


print(f"dt = {r * dx**2 / kappa:.2f} s, T = {T:.1f} s")
""")

md(r"""
**Why this is hard.** Each Fourier mode $\sin(k\pi x/L)$ of the initial profile decays by
$\exp(-\kappa k^2\pi^2 T/L^2)$. The slow modes survive, the fast ones vanish below the noise, and no method can
bring back what the data do not contain: some prior knowledge (here: the profile is smooth) has to fill in.
""")

code(r"""
for k in (1, 5, 10, 20, 30):
    print(f"mode k = {k:2d}: amplitude x {np.exp(-kappa * (k * np.pi / L) ** 2 * T):.1e}")
""")

# --------------------------------------------------------------------------------------
md(r"""
## 2. Synthetic data

A known truth lets us measure the errors: a broad bump at 0.3 m and a narrow, lower one at 0.7 m.
""")

code(r"""
u_true = jnp.exp(-((x - 0.3) / 0.08) ** 2) + 0.5 * jnp.exp(-((x - 0.7) / 0.04) ** 2)
y = sensors(u_true) + sigma * jax.random.normal(jax.random.key(0), (n // 2,))
rel = lambda u: float(jnp.linalg.norm(u - u_true) / jnp.linalg.norm(u_true))  # relative L2 error
""")

# --------------------------------------------------------------------------------------
md(r"""
## 3. Route 1: any JAX function, MAP by L-BFGS

`inv.ForwardProblem(forward, y, noise, init=...)` takes any function of the unknown; `init` fixes its shape (here
64 values) and is the starting point. A number for `noise` means Gaussian noise of that standard deviation. The
shapes are checked at once (`forward(init)` must have the data's shape).

`GradientMAP` minimises the negative log-posterior

$$\frac{1}{2}\Big\|\frac{\text{sensors}(u_0) - y}{\sigma}\Big\|^2 + \frac{\alpha}{2}\,\|D u_0\|^2,$$

where $D$ takes first differences (`Tikhonov(alpha, order=1)`: a smoothness prior, in K per grid step), with
`optax.lbfgs` and gradients by automatic differentiation through the 40 time steps.
""")

code(r"""
problem = inv.ForwardProblem(sensors, y, sigma, init=jnp.zeros(n), x_true=u_true)
prior = inv.priors.Tikhonov(10.0, order=1)
map_ = inv.solve(problem, inv.solvers.GradientMAP(optax.lbfgs(), prior=prior, max_steps=200))
print(f"MAP: rel. error {rel(map_.value):.3f}, chi2 per datum {float(problem.normalized_chi2(map_.value)):.2f}")
assert rel(map_.value) < 0.36  # measured 0.181
""")

md(r"""
A normalised $\chi^2$ near 1 says the estimate fits the data to the noise level: no more (over-fitting noise)
and no less (over-smoothing).
""")

# --------------------------------------------------------------------------------------
md(r"""
## 4. Route 2: a matrix-free operator, CGLS

The model is *linear* in $u_0$, so it is also a linear operator $A$ (64 unknowns to 32 data). Krylov
least-squares solvers need $A$ and its transpose $A^\mathsf{T}$. The explicit step is symmetric, so $A^\mathsf{T}$
puts the data back on the grid (zeros between sensors) and runs the same 40 steps. `inv.FunctionOperator` wraps
the two functions (pass `None` for the transpose to have JAX derive it).

Always check a hand-written transpose with the **dot-product test**: $\langle A x, r\rangle =
\langle x, A^\mathsf{T} r\rangle$ for random $x, r$, to rounding.
""")

code(r"""
A = inv.FunctionOperator(sensors, lambda d: heat(jnp.zeros(n).at[::2].set(d)), in_shape=n, out_shape=n // 2)
kx, kr = jax.random.split(jax.random.key(2))
xr, rr = jax.random.normal(kx, A.in_shape), jax.random.normal(kr, A.out_shape)
print(f"dot-product test: {float(jnp.vdot(A.mv(xr), rr) - jnp.vdot(xr, A.T.mv(rr))):.1e}")
""")

md(r"""
`CGLS(damp)` solves $\min \|(A u_0 - y)/\sigma\|^2 + \text{damp}^2\|u_0\|^2$: the same as MAP with a
zeroth-order Tikhonov prior of weight $\text{damp}^2$, without ever forming a matrix. (A small dense matrix works
too: `inv.LinearInverse(np.asarray(A.as_matrix()), y, noise=sigma)`.)
""")

code(r"""
cgls = inv.solve(inv.LinearInverse(A, y, noise=sigma), inv.solvers.CGLS(damp=3.0))
print(f"CGLS: rel. error {rel(cgls.value):.3f} after {cgls.stats['num_steps']} iterations")
assert rel(cgls.value) < 0.36  # measured 0.181 (17 iterations)
""")

# --------------------------------------------------------------------------------------
md(r"""
## 5. Route 3: the posterior by NUTS

With the Gaussian prior of route 1, the posterior is a distribution over profiles. NUTS (the No-U-Turn
sampler) draws from it through the same `ForwardProblem`; the mean is an estimate and the standard deviation
says, point by point, how well the data pin the profile down.
""")

code(r"""
nuts = inv.solve(problem, inv.solvers.NUTS(n_samples=200, n_warmup=200, prior=prior), key=jax.random.key(1))
inside = float(jnp.mean(jnp.abs(nuts.value - u_true) <= 2 * nuts.std))
print(f"NUTS: rel. error {rel(nuts.value):.3f}, mean std {float(jnp.mean(nuts.std)):.3f} K, "
      f"truth within 2 std at {inside:.0%} of the points")
assert rel(nuts.value) < 0.34 and 0.12 < float(jnp.mean(nuts.std)) < 0.48  # measured 0.169, 0.240 K
""")

# --------------------------------------------------------------------------------------
md(r"""
## 6. Compare

Left: the initial profile, truth and the three estimates on one temperature axis, with the NUTS band of
$\pm 2$ standard deviations. Right: what the sensors saw at time $T$, on the same axis.
""")

code(r"""
xs = np.asarray(x)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
ax0.fill_between(xs, nuts.value - 2 * nuts.std, nuts.value + 2 * nuts.std, color="C2", alpha=0.2,
                 label="NUTS $\\pm 2$ std")
ax0.plot(xs, u_true, "k", lw=2.5, label="truth")
for sol, name, c in [(map_, "MAP (L-BFGS)", "C0"), (cgls, "CGLS", "C1"), (nuts, "NUTS mean", "C2")]:
    ax0.plot(xs, sol.value, color=c, label=f"{name}: rel. error {rel(sol.value):.2f}")
ax0.set(xlabel="position x [m]", ylabel="temperature above ambient [K]", title="initial temperature $u_0(x)$")
ax0.legend(fontsize=8)
ax1.plot(xs, heat(u_true), "k", lw=1, label="truth at T")
ax1.plot(xs[::2], y, "o", ms=4, color="C3", label=f"sensor data ($\\sigma$ = {sigma} K)")
ax1.set(xlabel="position x [m]", title=f"temperature at T = {T:.0f} s")
ax1.legend(fontsize=8)
plt.tight_layout()
""")

md(r"""
All three agree and miss the same thing: the narrow bump at 0.7 m comes back wider and lower, because its fine
detail decayed below the noise before the sensors saw it (section 1). That is a limit of the data, not of the
solvers. A better answer needs better data (an earlier time, more sensors) or a prior that knows more about the
profile.

The NUTS band is wide, about $\pm 0.5$ K everywhere: the prior (first differences of standard deviation
$1/\sqrt{\alpha} \approx 0.3$ K per grid step) allows point-to-point wiggles that diffusion erases before the
sensors see them, so the data cannot rule them out. The estimates are smooth because they are an optimum and an
average; a single posterior draw is not. The band widens towards the ends, where the fixed end temperature hides
the profile from the sensors. Averages over a few centimetres are much better determined than single points: over
5 grid points (8 cm) the posterior standard deviation drops from 0.24 K to about 0.09 K.

**Other noise.** If your sensors count (photons, particles), pass `inv.PoissonNoise()` as `noise`, or
`inv.PoissonGaussianNoise(read_sigma)` for counts with Gaussian read noise; `GradientMAP` and `NUTS` then use
that likelihood (the least-squares solvers, like CGLS, need Gaussian noise and say so).
""")

nb = cells.notebook()

if __name__ == "__main__":
    write(nb, __file__)
