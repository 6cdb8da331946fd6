"""1D Poisson PINN training speed: plain JAX + optax vs. DeepXDE (PyTorch) and jinns.

Run:  python benchmarks/pinn_peers.py                 # 300 steps per timed block (smoke size)
      python benchmarks/pinn_peers.py --steps 2000    # longer blocks for a real measurement
      python benchmarks/pinn_peers.py --only plain_jax,plain_jax_fused

Problem (identical for every method): -u''(x) = pi^2 sin(pi x) on [-1, 1], u(-1) = u(1) = 0
(exact u = sin(pi x)). Network 1 -> 64 -> 64 -> 64 -> 1, tanh, Glorot-normal weights and zero
biases, float32. 1001 fixed collocation points ``linspace(-1, 1, 1001)`` (endpoints included)
plus the two boundary points; loss = mean squared PDE residual + mean squared boundary value
(weights 1); Adam, learning rate 1e-3, full batch, no schedule.

Timing: every method first runs one block of ``n_steps`` steps (warm-up: tracing, XLA compile,
first-call allocations), then 3 timed blocks of ``n_steps`` steps each, continuing from the
trained state. ``steps_per_s`` = n_steps / median(block time); ``compile_s`` = first block time
minus the median block time (0 if negative). jinns re-traces and re-compiles its training loop
on every ``jinns.solve`` call, so for jinns the block time is jinns' own "Training took" timing
of the compiled loop and ``compile_s`` is its "Compilation took" timing of the first call; the
extra key ``per_call_overhead_s`` is the median setup + compile cost paid by every later call.

``deepxde_flame`` (used by ``benchmarks/pinn.py``) runs the FlamePINN-1D forward problem in
DeepXDE for a time-to-accuracy comparison.

Requires the peers: ``pip install deepxde jinns`` (deepxde 1.15.0 and jinns 1.10.2 install without
changing jax/jaxlib/equinox/optax/numpy/scipy/torch here). DeepXDE runs in a
subprocess with ``DDE_BACKEND=pytorch`` (its backend is chosen at import time), float32 and
``torch.set_num_threads(threads)`` (2 by default; see `deepxde_torch` for why 1 can be faster).
"""

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

LAYERS = (1, 64, 64, 64, 1)
N_COLLOCATION = 1001
LR = 1e-3
REPEATS = 3
SEED = 0


def collocation_points():
    """The 1001 fixed interior/collocation points (float32, shape (1001, 1)) and the 2 boundary points."""
    x = np.linspace(-1.0, 1.0, N_COLLOCATION, dtype=np.float32)[:, None]
    xb = np.array([[-1.0], [1.0]], dtype=np.float32)
    return x, xb


def _time_blocks(run_block, n_steps, repeats=REPEATS):
    """One warm-up block, then ``repeats`` timed blocks; ``run_block`` must block until done."""
    t0 = time.perf_counter()
    run_block()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_block()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"steps_per_s": n_steps / med, "compile_s": max(0.0, first - med)}


# --------------------------------------------------------------------------------------------
# DeepXDE (PyTorch backend), run in a subprocess: this part must not import jax.
# --------------------------------------------------------------------------------------------

def _import_deepxde(threads=2):
    """DeepXDE with the PyTorch backend, float32, seed SEED, ``threads`` torch threads: (dde, torch)."""
    os.environ["DDE_BACKEND"] = "pytorch"
    import torch

    torch.set_num_threads(threads)
    with contextlib.redirect_stdout(io.StringIO()):  # DeepXDE prints its backend banner
        import deepxde as dde
    if dde.backend.backend_name != "pytorch":
        raise RuntimeError(f"DeepXDE picked backend {dde.backend.backend_name!r}, not pytorch")
    dde.config.set_default_float("float32")
    dde.config.set_random_seed(SEED)
    return dde, torch


def _deepxde_worker(n_steps, repeats=REPEATS, threads=2):
    """Body of the DeepXDE subprocess; prints one JSON line with the result."""
    dde, torch = _import_deepxde(threads)

    def pde(x, u):
        return -dde.grad.hessian(u, x) - np.pi**2 * torch.sin(np.pi * x)

    geom = dde.geometry.Interval(-1.0, 1.0)
    bc = dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1), dtype=np.float32),
                              lambda x, on_boundary: on_boundary)
    x, _ = collocation_points()
    # Only the anchors: PDE residual on the 1001 points, the BC picks the two endpoints among them.
    data = dde.data.PDE(geom, pde, bc, num_domain=0, num_boundary=0, anchors=x)
    assert data.train_x.shape == (N_COLLOCATION + 2, 1), data.train_x.shape
    net = dde.nn.FNN(list(LAYERS), "tanh", "Glorot normal")
    model = dde.Model(data, net)
    model.compile("adam", lr=LR, loss="MSE")

    def run_block():
        # display_every=n_steps: DeepXDE evaluates the (train and test) losses only at the start
        # and end of each train() call; verbose=0: no printing.
        model.train(iterations=n_steps, display_every=n_steps, verbose=0)

    res = _time_blocks(run_block, n_steps, repeats)
    res["final_loss"] = float(np.sum(model.train_state.loss_train))
    res["steps_done"] = int(model.train_state.step)
    print(json.dumps(res), flush=True)


def _deepxde_flame_worker(cfg):
    """FlamePINN-1D forward problem in DeepXDE (the equations of invsolve.problems.flame).

    ``cfg`` (JSON from stdin): the flame constants (SI), ``x`` (1001 collocation points [m]),
    ``xw``/``Tw`` (warm-up Z profile), ``s_ref``, ``s_L_init``, ``warmup``, ``check``,
    ``max_steps``, ``tol``, ``threads`` (torch threads). Input ``10 x / L``; output
    ``T = T_in + (T_max - T_in) sigmoid(z)``; residual ``T' - (lam T'' + qF omega) / (rho_in s_L cp)``
    times ``(5 / T_max) (L / 10)``; soft BCs ``T(0) = T_in`` (times 5 / T_max) and ``T'(0) = G``
    (times the residual scale); trainable ``s_L`` (``dde.Variable``). Warm-up: ``warmup`` Adam steps (fresh optimizer) on
    ``mean((5 / T_max)^2 (T - Tw)^2)``; then Adam 1e-3, x0.95 every 1000 steps, on the physics,
    checking ``s_L`` every ``check`` steps until ``|s_L / s_ref - 1| <= tol`` or ``max_steps``.
    Prints one JSON line: wall time (warm-up included), physics steps, s_L, error, check log.
    """
    c = cfg
    dde, torch = _import_deepxde(c["threads"])
    net, data, s_L, warm_data, fs = _deepxde_flame_setup(dde, torch, c)
    decay = ("step", 1000, 0.95)

    t0 = time.perf_counter()
    if c["warmup"]:
        warm = dde.Model(warm_data, net)
        warm.compile("adam", lr=LR, decay=decay, loss="MSE", loss_weights=[fs**2])
        warm.train(iterations=c["warmup"], display_every=c["warmup"], verbose=0)
    model = dde.Model(data, net)
    model.compile("adam", lr=LR, decay=decay, loss="MSE", external_trainable_variables=s_L)
    steps, log = 0, []
    while steps < c["max_steps"]:
        model.train(iterations=c["check"], display_every=c["check"], verbose=0)
        steps += c["check"]
        err = float(s_L.item()) / c["s_ref"] - 1.0
        log.append((steps, err))
        if abs(err) <= c["tol"]:
            break
    wall = time.perf_counter() - t0
    print(json.dumps({"time_s": wall, "steps": steps, "s_L": float(s_L.item()), "err": err,
                      "reached": abs(err) <= c["tol"], "log": log}), flush=True)


def _deepxde_flame_setup(dde, torch, c):
    """The flame's network, PDE data, ``s_L`` variable, warm-up data set and temperature scale."""
    L, T_in, cp, qF, R = c["L"], c["T_in"], c["cp"], c["qF"], c["R"]
    Rg = R / c["W"]
    rho_in = c["p"] / (Rg * T_in)
    Y_in = c["phi"] / (c["phi"] + 4.0)
    T_max = T_in + qF * Y_in / cp
    fs, rs = 5.0 / T_max, 5.0 / T_max * L / 10.0  # temperature and residual scales
    s_L = dde.Variable(c["s_L_init"])

    def omega(T, s):
        b = s + Rg * T_in / s
        rho_y = rho_in * s / (0.5 * (b - torch.sqrt(b * b - 4.0 * Rg * T))) \
            * torch.clamp(Y_in + cp * (T_in - T) / qF, min=0.0)
        safe = torch.where(rho_y > 0, rho_y, torch.ones_like(rho_y))
        rate = c["A"] * torch.exp(-c["Ea"] / (R * T)) * safe ** c["nu"]
        return torch.where(rho_y > 0, rate, torch.zeros_like(rate))

    def pde(x, T):
        dT, d2T = dde.grad.jacobian(T, x), dde.grad.hessian(T, x)
        return (dT - (c["lam"] * d2T + qF * omega(T, s_L)) / (rho_in * s_L * cp)) * rs

    x0, zero = np.zeros((1, 1)), np.zeros((1, 1))
    bc_T = dde.icbc.PointSetOperatorBC(x0, zero, lambda x, T, X: (T - T_in) * fs)
    bc_dT = dde.icbc.PointSetOperatorBC(x0, zero, lambda x, T, X: (dde.grad.jacobian(T, x) - c["grad_T_in"]) * rs)
    anchors = np.asarray(c["x"], np.float32)[:, None]  # residual on exactly these points
    data = dde.data.PDE(dde.geometry.Interval(0.0, L), pde, [bc_T, bc_dT], num_domain=0, num_boundary=0,
                        anchors=anchors)
    net = dde.nn.FNN(list(LAYERS), "tanh", "Glorot normal")
    net.apply_feature_transform(lambda x: x * (10.0 / L))
    net.apply_output_transform(lambda x, z: T_in + (T_max - T_in) * torch.sigmoid(z))
    xw, Tw = (np.asarray(c[k], np.float32)[:, None] for k in ("xw", "Tw"))
    return net, data, s_L, dde.data.DataSet(X_train=xw, y_train=Tw, X_test=xw, y_test=Tw), fs


def deepxde_flame(cfg, timeout=7200):
    """Run `_deepxde_flame_worker` in a subprocess (DeepXDE-PyTorch, float32)."""
    env = dict(os.environ, DDE_BACKEND="pytorch")
    cmd = [sys.executable, os.path.abspath(__file__), "--_deepxde-flame-worker"]
    proc = subprocess.run(cmd, env=env, input=json.dumps(cfg), capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"DeepXDE flame worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def deepxde_torch(n_steps, repeats=REPEATS, timeout=3600, threads=2):
    """DeepXDE 1.x with the PyTorch backend, float32, ``threads`` torch threads, in a subprocess.

    On a busy 2-core machine 2 threads collapse (OpenMP threads spin-wait for a descheduled
    partner: 1-80 steps/s, against 160 steps/s with 1 thread); compare both on a quiet one.
    """
    env = dict(os.environ, DDE_BACKEND="pytorch")
    cmd = [sys.executable, os.path.abspath(__file__), "--_deepxde-worker", str(n_steps),
           "--repeats", str(repeats), "--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"DeepXDE worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------------------------
# JAX methods (plain JAX + optax, jinns).
# --------------------------------------------------------------------------------------------

if __name__ == "__main__" and "--_deepxde-flame-worker" in sys.argv:
    _deepxde_flame_worker(json.loads(sys.stdin.read()))
    sys.exit(0)

if __name__ == "__main__" and "--_deepxde-worker" in sys.argv:
    _i = sys.argv.index("--_deepxde-worker")
    _r = sys.argv.index("--repeats") if "--repeats" in sys.argv else None
    _t = sys.argv.index("--threads") if "--threads" in sys.argv else None
    _deepxde_worker(int(sys.argv[_i + 1]), int(sys.argv[_r + 1]) if _r else REPEATS,
                    int(sys.argv[_t + 1]) if _t else 2)
    sys.exit(0)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402


def init_params(key=None):
    """Glorot-normal weights (shape (fan_in, fan_out)), zero biases, float32."""
    key = jax.random.PRNGKey(SEED) if key is None else key
    init = jax.nn.initializers.glorot_normal()
    keys = jax.random.split(key, len(LAYERS) - 1)
    return [(init(k, (m, n), jnp.float32), jnp.zeros((n,), jnp.float32))
            for k, m, n in zip(keys, LAYERS[:-1], LAYERS[1:])]


def mlp(params, x):
    """(N, 1) -> (N, 1)."""
    h = x
    for w, b in params[:-1]:
        h = jnp.tanh(h @ w + b)
    w, b = params[-1]
    return h @ w + b


def _u_scalar(params, x):
    return mlp(params, x.reshape(1, 1))[0, 0]


def uxx(params, x, deriv="jvp"):
    """u''(x) at the points x (N, 1), three equivalent formulations.

    "jvp": nested forward-mode ``jax.jvp`` on the whole batch with a tangent of ones (valid
    because each output row depends only on its own input row); "jvp_vmap": the same nested
    jvp on a scalar per-point function, vmapped; "grad_vmap": ``jax.grad(jax.grad(.))`` per
    point, vmapped.
    """
    if deriv == "jvp":
        ones = jnp.ones_like(x)
        ux = lambda y: jax.jvp(lambda z: mlp(params, z), (y,), (ones,))[1]  # noqa: E731
        return jax.jvp(ux, (x,), (ones,))[1]
    if deriv == "jvp_vmap":
        def d2(xi):
            one = jnp.ones_like(xi)
            d1 = lambda y: jax.jvp(lambda z: _u_scalar(params, z), (y,), (one,))[1]  # noqa: E731
            return jax.jvp(d1, (xi,), (one,))[1]
        return jax.vmap(d2)(x[:, 0])[:, None]
    if deriv == "grad_vmap":
        g2 = jax.grad(jax.grad(lambda xi: _u_scalar(params, xi)))
        return jax.vmap(g2)(x[:, 0])[:, None]
    raise ValueError(f"unknown deriv {deriv!r}")


def make_loss(deriv="jvp"):
    x, xb = collocation_points()
    x, xb = jnp.asarray(x), jnp.asarray(xb)
    f = (jnp.pi**2) * jnp.sin(jnp.pi * x)

    def loss(params):
        res = -uxx(params, x, deriv) - f
        return jnp.mean(res**2) + jnp.mean(mlp(params, xb) ** 2)

    return loss


def _make_step(deriv):
    loss = make_loss(deriv)
    opt = optax.adam(LR)

    def step(params, opt_state):
        val, g = jax.value_and_grad(loss)(params)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, val

    return opt, step


# Fastest of the three in uxx() (compare_derivs(), 200 fused steps, 2 busy CPU cores): "jvp" 430-475
# steps/s, "jvp_vmap" 180-290, "grad_vmap" 235-240.
DEFAULT_DERIV = "jvp"


def plain_jax(n_steps, deriv=DEFAULT_DERIV, repeats=REPEATS):
    """Plain JAX + optax: one jitted Adam step per Python iteration (no host sync inside a block)."""
    opt, step = _make_step(deriv)
    step = jax.jit(step, donate_argnums=(0, 1))
    state = {"p": init_params()}
    state["s"] = opt.init(state["p"])

    def run_block():
        p, s = state["p"], state["s"]
        for _ in range(n_steps):
            p, s, val = step(p, s)
        state["p"], state["s"], state["loss"] = jax.block_until_ready((p, s, val))

    res = _time_blocks(run_block, n_steps, repeats)
    res["final_loss"] = float(state["loss"])
    return res


def plain_jax_fused(n_steps, fuse=500, deriv=DEFAULT_DERIV, repeats=REPEATS):
    """Plain JAX + optax with ``fuse`` Adam steps in one jitted ``lax.fori_loop``.

    ``fuse`` is lowered to ``n_steps`` if larger, and ``n_steps`` is rounded up to a multiple of
    ``fuse`` (the returned steps/s uses the rounded count).
    """
    fuse = max(1, min(fuse, n_steps))
    n_calls = -(-n_steps // fuse)
    opt, step = _make_step(deriv)

    @jax.jit
    def multi_step(params, opt_state):
        def body(_, c):
            return step(c[0], c[1])
        return jax.lax.fori_loop(0, fuse, body, (params, opt_state, jnp.float32(0.0)))

    state = {"p": init_params()}
    state["s"] = opt.init(state["p"])

    def run_block():
        p, s = state["p"], state["s"]
        for _ in range(n_calls):
            p, s, val = multi_step(p, s)
        state["p"], state["s"], state["loss"] = jax.block_until_ready((p, s, val))

    res = _time_blocks(run_block, n_calls * fuse, repeats)
    res["final_loss"] = float(state["loss"])
    res["fuse"] = fuse
    return res


def compare_derivs(n_steps=200, fuse=200):
    """steps/s of plain_jax_fused for each u'' formulation (used to pick DEFAULT_DERIV)."""
    return {d: plain_jax_fused(n_steps, fuse=fuse, deriv=d)["steps_per_s"]
            for d in ("jvp", "jvp_vmap", "grad_vmap")}


def jinns_(n_steps, repeats=REPEATS):
    """jinns (``jinns.solve``, its fully jitted ``lax.while_loop`` training loop) on the same problem.

    Network: ``jinns.nn.PINN_MLP`` with the same Glorot-normal initial weights as ``plain_jax``.
    PDE: a ``jinns.loss.PDEStatio`` subclass using ``jinns.loss.laplacian_rev`` (jinns' operator
    for non-separable PINNs); BC: ``jinns.loss.Dirichlet``. Points: ``CubicMeshPDEStatio`` with
    ``method="grid"`` (= linspace(-1, 1, 1001)) and full batch. jinns sums the boundary loss over
    the two facets of [-1, 1], so its weight is 0.5 to give the mean over the two points.
    Each block is one ``jinns.solve`` call continuing from the previous params and optimizer state.
    """
    import equinox as eqx
    import jinns

    eqx_list = ((eqx.nn.Linear, 1, 64), (jax.nn.tanh,), (eqx.nn.Linear, 64, 64), (jax.nn.tanh,),
                (eqx.nn.Linear, 64, 64), (jax.nn.tanh,), (eqx.nn.Linear, 64, 1))
    u, nn_params = jinns.nn.PINN_MLP.create(key=jax.random.PRNGKey(SEED), eqx_list=eqx_list,
                                            eq_type="PDEStatio")
    p0 = init_params()
    linears = lambda m: [l for l in m.layers if isinstance(l, eqx.nn.Linear)]  # noqa: E731, E741
    nn_params = eqx.tree_at(lambda m: [l.weight for l in linears(m)] + [l.bias for l in linears(m)],
                            nn_params, [w.T for w, _ in p0] + [b for _, b in p0])

    class Poisson1D(jinns.loss.PDEStatio):
        def equation(self, x, u, params):
            lap = jinns.loss.laplacian_rev(x, u, params)
            return -lap - jnp.pi**2 * jnp.sin(jnp.pi * x)

    params = jinns.parameters.Params(nn_params=nn_params, eq_params={})
    data = jinns.data.CubicMeshPDEStatio(key=jax.random.PRNGKey(SEED), n=N_COLLOCATION, nb=2,
                                         omega_batch_size=None, omega_border_batch_size=None,
                                         dim=1, min_pts=(-1.0,), max_pts=(1.0,), method="grid")
    loss = jinns.loss.LossPDEStatio(
        u=u, dynamic_loss=Poisson1D(), boundary_condition=jinns.loss.Dirichlet(),
        loss_weights=jinns.loss.LossWeightsPDEStatio(dyn_loss=1.0, boundary_loss=0.5),
        params=params)
    opt = optax.adam(LR)
    state = {"params": params, "opt_state": None, "data": data, "loss": loss, "log": []}

    def run_block():
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            out = jinns.solve(n_iter=n_steps, init_params=state["params"], data=state["data"],
                              loss=state["loss"], optimizer=opt, opt_state=state["opt_state"],
                              print_loss_every=n_steps, verbose=True)
            jax.block_until_ready(out[0])
        wall = time.perf_counter() - t0
        text = buf.getvalue()
        comp = float(re.search(r"Compilation took\s+([0-9.eE+-]+)", text).group(1))
        train = float(re.search(r"Training took\s+([0-9.eE+-]+)", text).group(1))
        state["params"], state["data"], state["loss"], state["opt_state"] = out[0], out[3], out[4], out[5]
        state["final_loss"] = float(out[1][-1])
        state["log"].append((wall, comp, train))

    for _ in range(1 + repeats):
        run_block()
    first, timed = state["log"][0], state["log"][1:]
    train_med = statistics.median(t for _, _, t in timed)
    return {
        "steps_per_s": n_steps / train_med,
        "compile_s": first[1],
        "per_call_overhead_s": statistics.median(w - t for w, _, t in timed),
        "wall_steps_per_s": n_steps / statistics.median(w for w, _, _ in timed),
        "final_loss": state["final_loss"],
    }


METHODS = {
    "plain_jax": plain_jax,
    "plain_jax_fused": plain_jax_fused,
    "deepxde_torch": deepxde_torch,
    "jinns": jinns_,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="Adam steps per timed block")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--compare-derivs", action="store_true",
                        help="also time the three u'' formulations of plain JAX")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(METHODS)

    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs, {args.steps} steps per block, "
          f"{REPEATS} timed blocks after 1 warm-up block, load average {os.getloadavg()[0]:.2f}\n")
    if args.compare_derivs:
        for d, v in compare_derivs(args.steps, args.steps).items():
            print(f"plain_jax_fused u'' via {d}: {v:.0f} steps/s")
        print()

    results = {}
    for name in names:
        try:
            results[name] = METHODS[name](args.steps)
        except Exception as exc:  # a missing peer should not hide the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200]}
    ref = results.get("plain_jax_fused", {}).get("steps_per_s")
    print("| method | steps/s | compile/first-call s | ratio to plain_jax_fused | final loss |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | - | - | - | {r['error']} |")
            continue
        ratio = f"{r['steps_per_s'] / ref:.2f}" if ref else "-"
        print(f"| {name} | {r['steps_per_s']:.0f} | {r['compile_s']:.2f} | {ratio} | "
              f"{r['final_loss']:.3g} |")
    if "jinns" in results and "per_call_overhead_s" in results["jinns"]:
        r = results["jinns"]
        print(f"\njinns re-traces and re-compiles on every jinns.solve call: {r['per_call_overhead_s']:.2f} s "
              f"per later call; wall-clock rate including it {r['wall_steps_per_s']:.0f} steps/s.")
    print(f"ratio: steps/s / plain_jax_fused steps/s. final loss: after {1 + REPEATS} blocks "
          f"(sanity check that all train the same problem).\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
