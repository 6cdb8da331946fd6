"""3D CT as a stack of slices: the slice axis shards across devices (two CPU devices here)."""

import os
import subprocess
import sys
import textwrap


def test_slice_stack_shards_over_devices():
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from invsolve.problems import tomography
        assert jax.device_count() == 2
        op = tomography.ParallelBeam(32, jnp.linspace(0, jnp.pi, 20, endpoint=False), slices=4)
        vol = jax.random.uniform(jax.random.key(0), (4, 32, 32))
        mesh = Mesh(np.array(jax.devices()), ("slices",))
        sharded = jax.device_put(vol, NamedSharding(mesh, P("slices")))
        sino = jax.jit(lambda v: op.mv(v))(sharded)
        back = jax.jit(lambda s: op.T.mv(s))(sino)
        assert sino.shape == (4, 20, 32) and sino.sharding.spec[0] == "slices", sino.sharding
        assert back.sharding.spec[0] == "slices", back.sharding
        np.testing.assert_allclose(sino, op.mv(vol), rtol=1e-6)
        np.testing.assert_allclose(back, op.T.mv(op.mv(vol)), rtol=1e-5)
        print("ok", len(sino.addressable_shards))
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok 2"
