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


def test_cone_beam_views_and_slabs_shard_over_devices():
    """`ConeBeam.shard_views`: each device projects its own views; the back-projection sums the
    devices' partial volumes. `ConeBeam.shard_slabs`: each device projects its slab of the
    volume, the projections summed, and back-projects into its slab. Both equal the unsharded
    operator, with an exact adjoint (float64)."""
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np, pytest
        jax.config.update("jax_enable_x64", True)
        import invsolve as inv
        from invsolve.problems import phantoms, tomography
        assert jax.device_count() == 2
        geo = dict(shape=(16, 16, 16), detector=(32, 32), source_distance=80.0, detector_distance=40.0)
        cb = tomography.ConeBeam(angles=jnp.linspace(0, 2 * jnp.pi, 12, endpoint=False), **geo)
        sh = cb.shard_views()
        vol = phantoms.shepp_logan_3d(16)
        p = sh.mv(vol)
        assert p.sharding.spec[0] == "views", p.sharding
        np.testing.assert_allclose(p, cb.mv(vol), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(sh.rmv(p), cb.rmv(cb.mv(vol)), rtol=1e-12, atol=1e-10)
        x = jax.random.normal(jax.random.key(0), cb.in_shape)
        y = jax.random.normal(jax.random.key(1), cb.out_shape)
        lhs, rhs = jnp.vdot(sh.mv(x), y), jnp.vdot(x, sh.T.mv(y))
        assert abs(lhs - rhs) <= 1e-10 * abs(rhs)
        batch = sh.mv(jnp.stack([vol, 2 * vol]))
        np.testing.assert_allclose(batch[1], 2 * cb.mv(vol), rtol=1e-12, atol=1e-12)
        sol = inv.solve(inv.LinearInverse(sh, p, noise=0.01), inv.solvers.CGLS(max_steps=5), throw=False)
        ref = inv.solve(inv.LinearInverse(cb, cb.mv(vol), noise=0.01), inv.solvers.CGLS(max_steps=5), throw=False)
        np.testing.assert_allclose(sol.value, ref.value, rtol=1e-9, atol=1e-9)
        odd = tomography.ConeBeam(angles=jnp.linspace(0, 2 * jnp.pi, 13, endpoint=False), **geo)
        with pytest.raises(ValueError, match="13 views do not split evenly over 2 devices"):
            odd.shard_views()
        # slabs along z: each device holds half the volume
        sl = cb.shard_slabs()
        p2 = sl.mv(vol)
        np.testing.assert_allclose(p2, cb.mv(vol), rtol=1e-12, atol=1e-12)
        back = sl.rmv(p2)
        assert back.sharding.spec[0] == "slabs", back.sharding
        np.testing.assert_allclose(back, cb.rmv(cb.mv(vol)), rtol=1e-12, atol=1e-10)
        lhs, rhs = jnp.vdot(sl.mv(x), y), jnp.vdot(x, sl.T.mv(y))
        assert abs(lhs - rhs) <= 1e-10 * abs(rhs)
        np.testing.assert_allclose(sl.mv(jnp.stack([vol, 2 * vol]))[1], 2 * cb.mv(vol), rtol=1e-12, atol=1e-12)
        thick = tomography.ConeBeam(angles=cb.angles, **{**geo, "shape": (15, 16, 16)})
        with pytest.raises(ValueError, match=r"15 slices \(nz\) do not split evenly over 2 devices"):
            thick.shard_slabs()
        print("ok")
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "ok"
