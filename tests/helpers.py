"""Test helpers: tree comparison, dot-product adjoint test, finite differences, compile counts."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np


def sliced_wasserstein(x, y, key, n_dirs=200):
    """The sliced 2-Wasserstein distance between two equal-size samples ``(n, d)``."""
    th = jax.random.normal(key, (n_dirs, x.shape[1]), x.dtype)
    th = th / jnp.linalg.norm(th, axis=1, keepdims=True)
    px, py = jnp.sort(x @ th.T, axis=0), jnp.sort(y @ th.T, axis=0)
    return float(jnp.sqrt(jnp.mean((px - py) ** 2)))


def mixture_testbed(n_draws=1000, dim=8, m=4, sigma=0.1):
    """The samplers' test bed: a 5-component mixture in ``dim`` dimensions, ``y = A x + sigma e``
    with a random ``m x dim`` A, its exact posterior and ``n_draws`` exact posterior draws:
    ``(prior, problem, posterior, draws)``."""
    import invsolve as inv
    from invsolve.priors import GaussianMixture

    gm = GaussianMixture.random(jax.random.key(0), dim, 5, spread=2.0, scale=0.5)
    A = jax.random.normal(jax.random.key(4), (m, dim)) / np.sqrt(dim)
    x_true = gm.draw(jax.random.key(6), 1)[0]
    y = A @ x_true + sigma * jax.random.normal(jax.random.key(7), (m,))
    post = gm.posterior(A, y, sigma)
    prob = inv.LinearInverse(inv.MatrixOperator.from_array(A), y, inv.GaussianNoise(sigma), x_true)
    return gm, prob, post, post.draw(jax.random.key(8), n_draws)


def tree_allclose(a, b, rtol=1e-7, atol=0.0) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(np.allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol) for x, y in zip(la, lb))


def dot_product_test(op, key, dtype=jnp.float64):
    """Return |<A x, y> - <x, A^T y>| / (|<A x, y>| + tiny) for random x, y."""
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, op.in_shape, dtype)
    y = jax.random.normal(ky, op.out_shape, dtype)
    lhs = jnp.vdot(op.mv(x), y)
    rhs = jnp.vdot(x, op.transpose().mv(y))
    return float(jnp.abs(lhs - rhs) / (jnp.abs(lhs) + 1e-300))


def fd_directional(f, x, v, eps=1e-6):
    """Central difference of scalar f at x along v."""
    return (f(x + eps * v) - f(x - eps * v)) / (2 * eps)


def check_grad(f, x, key, n_dirs=3, eps=1e-6, rtol=1e-5):
    """Compare <grad f(x), v> with central differences along random directions v."""
    g = jax.grad(f)(x)
    for k in jax.random.split(key, n_dirs):
        v = jax.random.normal(k, jnp.shape(x), jnp.result_type(x))
        ad = float(jnp.vdot(g, v))
        fd = float(fd_directional(f, x, v, eps))
        assert abs(ad - fd) <= rtol * max(abs(fd), 1e-12), (ad, fd)


_COMPILE = "/jax/core/compile/backend_compile_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
# how many times the tests dropped JAX's in-memory compilation caches (conftest.py): objects
# cached across tests whose building compiles programs are rebuilt after a drop
CLEARS = [0]


def clear_compiled():
    jax.clear_caches()
    CLEARS[0] += 1


def cached_per_clear(make):
    """``make()`` once, again after each `clear_compiled` (so the programs its building
    compiled are warm again, not recompiled inside a test's counted region)."""
    cache = {}

    def get():
        if cache.get("clears") != CLEARS[0]:
            cache.update(clears=CLEARS[0], value=make())
        return cache["value"]

    return get


_counts = {"on": False, "compile": 0, "lower": 0}
_installed = False


def _listener(name, _duration, **_):
    if _counts["on"]:
        if name == _COMPILE:
            _counts["compile"] += 1
        elif name == _LOWER:
            _counts["lower"] += 1


@contextlib.contextmanager
def count_compilations():
    """Yields a dict: ``lower`` counts jit cache misses (each lowers a new program, even when
    the persistent cache then spares the XLA compile), ``compile`` counts XLA compiles."""
    global _installed
    if not _installed:
        jax.monitoring.register_event_duration_secs_listener(_listener)
        _installed = True
    _counts.update(on=True, compile=0, lower=0)
    try:
        yield _counts
    finally:
        _counts["on"] = False


def assemble_poisson(shape, kappa, bc_sides, solid=None, lengths=1.0):
    """Independent reference: the finite-volume matrix assembled cell by cell with loops
    (harmonic-mean faces, Dirichlet wall at half a cell, zero-flux Neumann walls and
    obstacle faces, identity rows in solid cells)."""
    import itertools

    import scipy.sparse as sp

    shape = tuple(shape)
    nd = len(shape)
    kappa = np.broadcast_to(np.asarray(kappa, float), shape)
    L = np.broadcast_to(np.asarray(lengths, float), (nd,))
    h = L / np.asarray(shape)
    solid = np.zeros(shape, bool) if solid is None else np.asarray(solid, bool)
    n = int(np.prod(shape))
    A = sp.lil_matrix((n, n))
    for cell in itertools.product(*[range(s) for s in shape]):
        i = np.ravel_multi_index(cell, shape)
        if solid[cell]:
            A[i, i] = 1.0
            continue
        for a in range(nd):
            for side, step in ((0, -1), (1, +1)):
                nb = list(cell)
                nb[a] += step
                if 0 <= nb[a] < shape[a]:
                    nb = tuple(nb)
                    if solid[nb]:
                        continue
                    k1, k2 = kappa[cell], kappa[nb]
                    c = 2 * k1 * k2 / (k1 + k2) / h[a] ** 2
                    A[i, i] += c
                    A[i, np.ravel_multi_index(nb, shape)] -= c
                elif bc_sides[2 * a + side] == "dirichlet":
                    A[i, i] += 2 * kappa[cell] / h[a] ** 2
    return A.tocsr()
