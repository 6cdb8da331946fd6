"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=4: data-parallel training over 4 devices
equals one-device training (relative parameter / loss differences printed as JSON)."""
import json, jax, jax.numpy as jnp, numpy as np, optax
import invsolve as inv
from invsolve.priors import ScorePrior, LPN
from invsolve.problems import poisson
out = {"devices": len(jax.devices())}
data = np.asarray(jax.random.normal(jax.random.key(0), (64, 6)))
def params(m): return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(m.params)])
for name, train in {"score": lambda d: ScorePrior.train(data, "vp", optax.adam(1e-3), jax.random.key(1), steps=5, batch_size=8, devices=d, hidden=16),
                    "lpn": lambda d: LPN.train(data, 0.1, optax.adam(1e-3), "l2", jax.random.key(1), steps=5, batch_size=8, devices=d, hidden=16)}.items():
    a, b = params(train(None)), params(train(4))
    out[name] = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
prob = poisson.PoissonPINN(hard_bc=True, n_eval=5)
pinn = lambda d: inv.solvers.PINN(optax.adam(1e-3), hidden=(8,), n_collocation=16, steps=5, warmup_steps=0, devices=d)
a = inv.solve(prob, pinn(None), key=jax.random.key(0)).history["loss"]
b = inv.solve(prob, pinn(4), key=jax.random.key(0)).history["loss"]
out["pinn"] = float(np.max(np.abs(a - b) / np.abs(a)))
try:
    ScorePrior.train(data, steps=1, batch_size=6, devices=4, hidden=16)
except ValueError as err:
    out["uneven"] = str(err)
print(json.dumps(out))
