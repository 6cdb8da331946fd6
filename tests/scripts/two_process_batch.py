import json, sys
import jax
import invsolve as inv
inv.distributed.initialize(sys.argv[1], num_processes=2, process_id=int(sys.argv[2]), timeout_s=60)
jax.config.update("jax_enable_x64", True)
import numpy as np
from invsolve.problems import poisson
A = poisson.operator((12, 12))
probs = [poisson.linear_system(A, jax.random.normal(jax.random.key(i), (12, 12))) for i in range(7)]
cg = inv.solvers.CG(rtol=1e-10)
sol = inv.solve_batch(probs, cg)
ref = np.stack([np.asarray(inv.solve(p, cg).value) for p in probs])
print(json.dumps({"process": jax.process_index(), "devices": len(jax.devices()), "local": len(jax.local_devices()),
                  "err": float(np.max(np.abs(np.asarray(sol.value) - ref))), "steps": np.asarray(sol.stats["num_steps"]).tolist()}))
