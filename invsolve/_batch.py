"""`solve_batch`: many instances of one problem structure in one compiled, sharded call.

The instances are stacked along a leading batch axis, padded to a multiple of the device
count and split over a 1-D mesh of devices (``NamedSharding``; the solver and any field
shared by all instances are replicated). ``jax.shard_map`` gives each device its own share,
which it solves under ``vmap`` with the device driver (one ``lax.while_loop`` that runs until
every instance *on that device* is done): devices never wait for each other while solving.
The same call runs on one CPU, on simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), on GPUs, and across processes after
`invsolve.distributed.initialize`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._driver import DeviceLoop, compile_timer
from ._problem import AbstractProblem
from ._solution import RESULTS, Solution, SolveError
from ._solver import AbstractSolver

AXIS = "batch"


def mesh(devices: int | Sequence | None = None) -> Mesh:
    """A 1-D mesh (axis ``"batch"``) over ``devices``: None for all of ``jax.devices()`` (every
    process's, in a multi-process run), an int for the first that many, or a list."""
    have = jax.devices()
    if devices is None:
        chosen = have
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(have):
            hint = ("" if have[0].platform != "cpu" else
                    "; on a CPU, simulate more with XLA_FLAGS=--xla_force_host_platform_device_count=N "
                    "set before jax is imported")
            raise ValueError(f"asked for {devices} devices but this run has {len(have)} "
                             f"({have[0].platform}){hint}.")
        chosen = have[:devices]
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("devices: the list is empty.")
    return Mesh(np.asarray(chosen), (AXIS,))


def _difference(a, b, path="problem"):
    """Where two same-type problems differ in structure (a static value, a pytree shape, an
    array shape or dtype), as a sentence; None if they stack."""
    if type(a) is not type(b):
        return f"{path} is a {type(b).__name__} here but a {type(a).__name__} in instance 0"
    if isinstance(a, eqx.Module):
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if f.metadata.get("static", False):
                if not _equal(x, y):
                    return f"{path}.{f.name} (static) is {y!r} here but {x!r} in instance 0"
                continue
            sub = _difference(x, y, f"{path}.{f.name}")
            if sub:
                return sub
        return None
    if isinstance(a, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            sub = _difference(x, y, f"{path}[{i}]")
            if sub:
                return sub
        return None
    if isinstance(a, dict) and a.keys() == b.keys():
        for k in a:
            sub = _difference(a[k], b[k], f"{path}[{k!r}]")
            if sub:
                return sub
        return None
    if eqx.is_array(a) or eqx.is_array(b):
        sa, sb = jnp.shape(a), jnp.shape(b)
        if sa != sb:
            return f"{path} has shape {sb} here but {sa} in instance 0"
        if jnp.result_type(a) != jnp.result_type(b):
            return f"{path} has dtype {jnp.result_type(b)} here but {jnp.result_type(a)} in instance 0"
        return None
    if jax.tree.structure(a) != jax.tree.structure(b):
        return f"{path} has structure {jax.tree.structure(b)} here but {jax.tree.structure(a)} in instance 0"
    return None if _equal(a, b) else f"{path} (static) is {b!r} here but {a!r} in instance 0"


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - objects without a boolean ==
        return a is b


def stack(problems: Sequence[AbstractProblem]) -> tuple[AbstractProblem, tuple[bool, ...]]:
    """Stack same-structure problems leaf by leaf. A leaf that is the same object in every
    instance (a shared operator, grid, anatomy) is kept once; the others gain a leading axis.
    Returns the stacked problem and, per leaf (``jax.tree.leaves`` order), whether it is
    batched."""
    problems = list(problems)
    if not problems:
        raise ValueError("solve_batch: the list of problems is empty.")
    first = problems[0]
    if not isinstance(first, AbstractProblem):
        raise TypeError(f"solve_batch: problems must be invsolve problems, got {type(first).__name__}.")
    leaves0, tdef = jax.tree.flatten(first)
    columns = [[x] for x in leaves0]
    for i, p in enumerate(problems[1:], 1):
        leaves, t = jax.tree.flatten(p)
        why = _difference(first, p)
        if why is not None or t != tdef:
            raise ValueError(f"solve_batch: instance {i} does not stack with instance 0: {why or 'its structure differs'}; "
                             "a batch needs problems of one structure (group them by shape, or pad).")
        for c, x in zip(columns, leaves):
            c.append(x)
    batched = []
    for c in columns:
        same = all(x is c[0] for x in c)
        if not eqx.is_array_like(c[0]):
            if not same:
                raise ValueError(f"solve_batch: a non-array field ({type(c[0]).__name__}) differs between instances; "
                                 "only array fields can vary across a batch.")
            batched.append(False)
        else:
            batched.append(not same or len(problems) == 1)
    batched = tuple(batched)
    leaves = [jnp.stack([jnp.asarray(x) for x in c]) if b else c[0] for c, b in zip(columns, batched)]
    return jax.tree.unflatten(tdef, leaves), batched


def _batch_size(problem, batched):
    sizes = {int(jnp.shape(x)[0]) for x, b in zip(jax.tree.leaves(problem), batched) if b and jnp.ndim(x) > 0}
    if len(sizes) != 1:
        raise ValueError("solve_batch: a stacked problem needs one leading batch axis of the same length on every "
                         f"array field; found lengths {sorted(sizes) or 'none'}.")
    return sizes.pop()


if hasattr(jax, "shard_map"):
    _shard_map = jax.shard_map
else:  # pragma: no cover - older JAX
    from jax.experimental.shard_map import shard_map as _old_shard_map

    def _shard_map(f, *, mesh, in_specs, out_specs, check_vma):
        return _old_shard_map(f, mesh, in_specs, out_specs, check_rep=check_vma)


@eqx.filter_jit
def _run(solver, problem, keys, batched: tuple, max_steps: int, m: Mesh):
    """Each device solves its own share of the batch: ``shard_map`` over the batch axis of
    ``vmap`` of ``solve(..., driver=DeviceLoop())``, so every device runs its own while loop
    and no device waits for another. The result is sharded like the batch."""
    from ._solve import solve

    leaves, tdef = jax.tree.flatten(problem)
    is_arr = [eqx.is_array(x) for x in leaves]
    arrays = [x for x, a in zip(leaves, is_arr) if a]  # only arrays go through shard_map
    specs = [PartitionSpec(AXIS) if b else PartitionSpec() for b, a in zip(batched, is_arr) if a]
    axes = [0 if b else None for b, a in zip(batched, is_arr) if a]
    solver_arrays, solver_rest = eqx.partition(solver, eqx.is_array)
    rest = []  # the non-array part of the result, recorded while tracing

    def one(arrays, key, solver):
        it = iter(arrays)
        p = jax.tree.unflatten(tdef, [next(it) if a else x for x, a in zip(leaves, is_arr)])
        return solve(p, solver, key=key, max_steps=max_steps, driver=DeviceLoop(), throw=False)

    def shard(solver_arrays, arrays, keys):
        solver = eqx.combine(solver_arrays, solver_rest)
        sol = eqx.filter_vmap(one, in_axes=(axes, None if keys is None else 0, None))(arrays, keys, solver)
        out, static = eqx.partition(sol, eqx.is_array)
        rest.append(static)
        return out

    # check_vma=False: the solvers' loops mix per-device and replicated values, which the
    # check would ask to annotate; nothing in here communicates across devices anyway
    in_specs = (PartitionSpec(), specs, None if keys is None else PartitionSpec(AXIS))
    out = _shard_map(shard, mesh=m, in_specs=in_specs, out_specs=PartitionSpec(AXIS), check_vma=False)(
        solver_arrays, arrays, keys)
    return eqx.combine(out, rest[0])


def solve_batch(
    problems: Sequence[AbstractProblem] | AbstractProblem,
    solver: AbstractSolver,
    keys: jax.Array | None = None,
    *,
    max_steps: int | None = None,
    devices: int | Sequence | None = None,
    throw: bool = True,
) -> Solution:
    """Solve many instances of one problem structure at once: ``vmap`` + sharding.

    Args:
        problems: a list of same-structure problems (e.g. one operator, several data sets),
            or one problem whose array fields all carry a leading batch axis.
        solver: any solver; it is replicated on every device.
        keys: one ``jax.random.key`` (split into one per instance), an array of ``n`` keys,
            or None for deterministic solvers.
        max_steps: step budget per instance (default: the solver's).
        devices: None (all of ``jax.devices()``), a number of devices, or a list of them.
        throw: raise `SolveError` naming the instances that did not succeed.

    Returns:
        A `Solution` whose ``value``, ``result``, ``history``, ``metrics`` and
        ``stats["num_steps"]`` carry a leading batch axis of length ``n``; ``stats`` adds
        ``wall_time_s``, ``compile_time_s``, ``batch_size`` and ``devices``. Each instance
        equals its own ``solve(..., driver=DeviceLoop())`` to round-off (bitwise where the
        compiled arithmetic is the same).
    """
    from ._solve import check_compatible

    t0 = time.perf_counter()
    if isinstance(problems, AbstractProblem):
        problem = problems
        batched = tuple(eqx.is_array(x) and jnp.ndim(x) > 0 for x in jax.tree.leaves(problem))
        n = _batch_size(problem, batched)
        leaves, tdef = jax.tree.flatten(problem)
        example = jax.tree.unflatten(tdef, [x[0] if b else x for x, b in zip(leaves, batched)])
    else:
        problem, batched = stack(problems)
        n = len(problems)
        example = problems[0]
    if not any(batched) and keys is None:
        raise ValueError("solve_batch: every instance is the same problem and there are no keys, so every "
                         "solve would be the same; pass different problems, or keys (e.g. MCMC chains).")
    max_steps = check_compatible(example, solver, key=keys, max_steps=max_steps, batch=True)
    solver.prepare(example)  # host-side checks once, with clear messages
    if keys is not None:
        keys = jnp.asarray(keys)
        if keys.ndim == 0:
            keys = jax.random.split(keys, n)
        elif keys.shape[0] != n:
            raise ValueError(f"solve_batch: got {keys.shape[0]} keys for {n} problems; pass one key or {n}.")
    m = mesh(devices)
    n_dev = m.devices.size
    pad = -n % n_dev  # repeat instance 0 so every device gets the same number

    def place(x, b):
        if not eqx.is_array(x):
            return x
        if b:
            x = jnp.concatenate([x, jnp.repeat(x[:1], pad, 0)]) if pad else x
            return jax.device_put(x, NamedSharding(m, PartitionSpec(AXIS)))
        return jax.device_put(x, NamedSharding(m, PartitionSpec()))

    leaves, tdef = jax.tree.flatten(problem)
    problem = jax.tree.unflatten(tdef, [place(x, b) for x, b in zip(leaves, batched)])
    if keys is not None:
        keys = place(keys, True)
    solver = jax.tree.map(lambda x: place(x, False), solver)
    with compile_timer() as ct:
        sol = _run(solver, problem, keys, batched, int(max_steps), m)
        if jax.process_count() > 1:  # every process gets the whole result
            from jax.experimental import multihost_utils

            arrays, rest = eqx.partition(sol, eqx.is_array)
            sol = eqx.combine(multihost_utils.process_allgather(arrays, tiled=True), rest)
        sol = jax.tree.map(lambda x: x[:n] if eqx.is_array(x) else x, sol)
        jax.block_until_ready(sol.value)
    if throw:
        codes = np.asarray(sol.result)
        bad = np.flatnonzero(codes != RESULTS.successful)
        if bad.size:
            first = RESULTS(int(codes[bad[0]]))
            raise SolveError(f"solve_batch: {bad.size} of {n} instances did not succeed (instances "
                             f"{bad[:10].tolist()}{'...' if bad.size > 10 else ''}); instance {bad[0]}: {first.message}.")
    stats = {**sol.stats, "wall_time_s": time.perf_counter() - t0, "compile_time_s": ct.seconds,
             "batch_size": n, "devices": n_dev}
    return dataclasses.replace(sol, stats=stats)


def data_parallel(devices=None):
    """``(replicate, shard)`` for data-parallel training over `mesh` ``(devices)``:
    ``replicate(tree)`` puts every array of a pytree (parameters, optimizer state) on every
    device; ``shard(x)``, inside ``jit``, splits a batch's leading axis over the devices, so
    each computes its share of the loss and XLA sums the gradients. ``devices=None``: both
    are the identity (one device, no sharding)."""
    if devices is None:
        return (lambda tree: tree), (lambda x: x)
    m = mesh(devices)
    rep, split = NamedSharding(m, PartitionSpec()), NamedSharding(m, PartitionSpec(AXIS))

    def replicate(tree):
        return jax.tree.map(lambda x: jax.device_put(x, rep) if eqx.is_array(x) else x, tree)

    def shard(x):
        if x.shape[0] % m.devices.size:
            raise ValueError(f"data-parallel training: the batch of {x.shape[0]} does not split evenly over "
                             f"{m.devices.size} devices; use a batch size that is a multiple of {m.devices.size}.")
        return jax.lax.with_sharding_constraint(x, split)

    return replicate, shard
