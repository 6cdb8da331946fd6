"""Database query ("a for-loop is all you need", Ezhov et al. 2023): simulate a bank of
parameter sets once, then answer each new case by nearest-neighbour search."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._problem import HasSimulator
from .._solution import RESULTS, Estimate
from .._solver import AbstractSolver, check_nonneg
from .._hostrun import HostRun
from ..io import CheckpointError, atomic_savez, fingerprint, read_npz


class QueryState(eqx.Module):
    unit: jax.Array  # (k, box_dim) the best entries' parameters (as moved by the problem's match)
    score: jax.Array  # (k,)


def _sobol(n, d, key):
    import warnings

    from scipy.stats import qmc

    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    with warnings.catch_warnings():  # n need not be a power of 2 here
        warnings.simplefilter("ignore", UserWarning)
        return qmc.Sobol(d, scramble=True, seed=seed).random(n).astype(np.float32)


def _same(a, b):
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class DatabaseQuery(AbstractSolver):
    """Nearest neighbours in a bank of simulations (Ezhov et al. 2023, "A for-loop is all you
    need").

    Build once with `DatabaseQuery.build` (parameters on a scrambled Sobol sequence over the
    problem's box, simulated in vmapped batches sharded over the local devices), then
    ``inv.solve(problem, db)``: the bank's features are scored against the data with the
    problem's ``match`` (the tumour: mean Dice of the two masks) and the best ``k``
    entries returned. ``Solution.value`` is the best entry (physical units),
    ``Solution.std`` the score-weighted spread of the ``k`` best (weights
    ``1 / (1 - score + 1e-3)``), ``Solution.samples`` the ``k`` best with
    ``"score"``. `refine` starts another solver (e.g. `GradientMAP`) from the best entry.

    Attributes:
        unit: ``(n, box_dim)`` float32, the bank's parameters in unit-cube coordinates.
        features: ``(n, n_features)`` float16, the simulated features.
        signature: the problem description the bank was built for (JSON string).
        k: how many neighbours to return (default 5).
        n_verify: the best ``n_verify`` entries by the bank's score are simulated again where
            the problem's ``match`` moved them and scored again; the ``k`` best of those are
            returned (0: no re-simulation). A moved entry's score is a proxy (the tumour
            sees other anatomy at its new seed), and the best proxy is not always the best
            fit (3D README example, 2000 entries: Dice 0.92 / 0.92 without, 0.94 / 0.94
            with, for 20 more simulations per query).
        build_time_s: wall time of the build (simulations only, this process).
    """

    requires: ClassVar = (HasSimulator,)
    unit: jax.Array
    features: jax.Array
    signature: str = eqx.field(static=True)
    k: int = eqx.field(static=True, default=5)
    n_verify: int = eqx.field(static=True, default=20)
    build_time_s: float = eqx.field(static=True, default=float("nan"))

    def __check_init__(self):
        check_nonneg("DatabaseQuery k", self.k, integer=True)
        check_nonneg("DatabaseQuery n_verify", self.n_verify, integer=True)
        if not 1 <= self.k <= self.unit.shape[0]:
            raise ValueError(f"DatabaseQuery: k must be in [1, {self.unit.shape[0]}] (the bank size), got {self.k}.")

    @property
    def n(self):
        return int(self.unit.shape[0])

    # --- building, saving -------------------------------------------------------------
    @classmethod
    def build(cls, problem: HasSimulator, n: int, key, *, batch_size: int | None = None, path=None,
              progress: bool | None = None, k: int = 5, save_every_s: float = 30.0) -> "DatabaseQuery":
        """Simulate ``n`` parameter sets of ``problem``'s box (scrambled Sobol, seeded by
        ``key``) in batches of ``batch_size`` (``vmap``; the batch axis sharded over
        ``jax.devices()``). With ``path`` (``.npz``) the bank is saved there every
        ``save_every_s`` seconds and at the end; if the file exists for the same problem,
        ``n`` and ``key``, the build resumes from it (a finished file is just loaded)."""
        if not isinstance(problem, HasSimulator):
            raise TypeError(f"DatabaseQuery.build needs a problem with HasSimulator, got {type(problem).__name__}.")
        check_nonneg("DatabaseQuery.build n", n, integer=True)
        if int(n) < 1:
            raise ValueError(f"DatabaseQuery.build: n must be a positive integer, got {n!r}.")
        n = int(n)
        devices = jax.devices()
        if batch_size is None:
            batch_size = 64
        batch_size = max(len(devices), int(batch_size) // len(devices) * len(devices))
        unit = _sobol(n, problem.box_dim, key)
        sig = json.dumps(problem.signature(), sort_keys=True)
        n_feat = int(jax.eval_shape(problem.features, problem.theta_from_unit(jnp.asarray(unit[0]))).shape[0])
        feats = np.zeros((n, n_feat), np.float16)
        done, elapsed = 0, 0.0
        run = HostRun("DatabaseQuery.build", path=path, fingerprint=fingerprint(sig, np.asarray(unit, np.float32)), every_s=save_every_s,
                      progress=progress, what="bank")
        saved = run.load()  # a file for another problem, size or key is refused
        if saved is not None:
            meta, arrays = saved
            done, elapsed = int(meta["done"]), float(meta["build_time_s"])
            feats[:done] = arrays["features"][:done]
        mesh = Mesh(np.array(devices), ("batch",))
        shard = NamedSharding(mesh, PartitionSpec("batch"))
        sim = jax.jit(jax.vmap(lambda z: problem.features(problem.theta_from_unit(z))),
                      in_shardings=shard, out_shardings=shard)

        def save():
            meta = {"signature": sig, "done": done, "build_time_s": elapsed, "k": k}
            run.save(meta, {"unit": unit, "features": feats[:max(done, 1)] if done < n else feats})

        with run.start(n, done, unit="sim"):
            while done < n:
                t0 = time.perf_counter()
                stop = min(n, done + batch_size)
                zb = np.zeros((batch_size, unit.shape[1]), np.float32)
                zb[: stop - done] = unit[done:stop]
                zb[stop - done:] = unit[done]  # pad the last batch
                out = np.asarray(sim(jax.device_put(zb, shard)))
                feats[done:stop] = out[: stop - done]
                elapsed += time.perf_counter() - t0
                run.advance(stop - done)
                done = stop
                if run.due() or done == n:
                    save()
        return cls(jnp.asarray(unit), jnp.asarray(feats), sig, k=int(k), build_time_s=float(elapsed))

    def save(self, path) -> None:
        """Write the bank to ``path`` (``.npz``: unit coordinates, features, signature)."""
        meta = {"signature": self.signature, "done": self.n, "build_time_s": self.build_time_s, "k": self.k,
                "fingerprint": fingerprint(self.signature, np.asarray(self.unit, np.float32))}
        atomic_savez(path, meta, unit=np.asarray(self.unit), features=np.asarray(self.features))

    @classmethod
    def load(cls, path, k: int | None = None) -> "DatabaseQuery":
        """Read a bank written by `save` or `build` (a partial build cannot be queried)."""
        meta, z = read_npz(path, "bank")
        if not {"unit", "features"} <= set(z) or not {"done", "signature", "k", "build_time_s"} <= set(meta):
            raise CheckpointError(f"bank {path} is not a DatabaseQuery bank (no unit/features arrays or metadata); "
                                  "build one with DatabaseQuery.build.")
        if int(meta["done"]) < z["unit"].shape[0]:
            raise ValueError(f"DatabaseQuery.load: {path} holds an unfinished build ({meta['done']} of "
                             f"{z['unit'].shape[0]}); run DatabaseQuery.build with the same arguments to finish it.")
        return cls(jnp.asarray(z["unit"]), jnp.asarray(z["features"]), meta["signature"],
                   k=int(meta["k"] if k is None else k), build_time_s=float(meta["build_time_s"]))

    # --- the solver -----------------------------------------------------------------------
    def prepare(self, problem):
        mine = json.loads(self.signature)
        theirs = problem.signature()
        if not _same(mine, theirs):
            diff = sorted(k for k in set(mine) | set(theirs) if not _same(mine.get(k), theirs.get(k)))
            raise ValueError(f"DatabaseQuery: the bank was built for another problem (differs in "
                             f"{', '.join(diff)}); build one for this problem.")
        return self

    def default_max_steps(self, problem):
        return 0

    def init(self, problem, key=None):
        scores, unit = problem.match(self.features, self.unit)
        m = max(self.k, min(self.n_verify, self.n))
        score, index = jax.lax.top_k(scores, m)
        unit = unit[index]
        if self.n_verify:  # simulate the candidates where match moved them, and score again
            feats = jax.vmap(lambda z: problem.features(problem.theta_from_unit(z)))(unit)
            score, unit = problem.match(feats.astype(self.features.dtype), unit)
        score, index = jax.lax.top_k(score, self.k)
        return QueryState(unit[index], score)

    def step(self, problem, state):
        return state, {}

    def terminate(self, problem, state):
        return jnp.array(True), jnp.array(RESULTS.successful, jnp.int32)

    def neighbours(self, problem, state):
        """The ``k`` best entries in physical units (leading axis k, best first)."""
        return jax.vmap(lambda z: problem.constrain(problem.theta_from_unit(z)))(state.unit)

    def postprocess(self, problem, state):
        best = self.neighbours(problem, state)
        w = 1.0 / (1.0 - state.score + 1e-3)
        w = w / jnp.sum(w)
        mean = jax.tree.map(lambda x: jnp.tensordot(w.astype(x.dtype), x, 1), best)
        std = jax.tree.map(lambda x, m: jnp.sqrt(jnp.tensordot(w.astype(x.dtype), (x - m) ** 2, 1)), best, mean)
        value = jax.tree.map(lambda x: x[0], best)
        return Estimate(value, std=std, samples={**best, "score": state.score})

    def refine(self, solver) -> "Refined":
        """``solver`` (one with a ``theta0`` field, e.g. `GradientMAP`) started from this bank's
        best match for the problem it is solved on."""
        if not hasattr(solver, "theta0"):
            raise TypeError(f"DatabaseQuery.refine: {type(solver).__name__} has no theta0 field to start from.")
        return Refined(self, solver)


@eqx.filter_jit
def _best_theta(db, problem):
    return problem.theta_from_unit(db.init(problem).unit[0])


class Refined(AbstractSolver):
    """`DatabaseQuery.refine`: query the bank, then run ``solver`` from the best entry. Its
    ``requires`` are the union of both; `prepare` does the query (on the host) and returns a
    `Refined` whose inner solver starts from the match, so preparing it again does nothing."""

    database: DatabaseQuery
    solver: Any
    ready: bool = eqx.field(default=False, static=True)

    @property
    def requires(self):
        return tuple(dict.fromkeys(DatabaseQuery.requires + tuple(self.solver.requires)))

    @property
    def needs_key(self):
        return self.solver.needs_key

    @property
    def max_steps(self):
        return getattr(self.solver, "max_steps", None)

    def prepare(self, problem):
        if self.ready:
            return self
        db = self.database.prepare(problem)
        theta = _best_theta(db, problem)
        inner = eqx.tree_at(lambda s: s.theta0, self.solver, theta, is_leaf=lambda x: x is None).prepare(problem)
        return Refined(db, inner, ready=True)

    def default_max_steps(self, problem):
        return self.solver.default_max_steps(problem)

    def init(self, problem, key):
        return self.prepare(problem).solver.init(problem, key)

    def step(self, problem, state):
        return self.solver.step(problem, state)

    def terminate(self, problem, state):
        return self.solver.terminate(problem, state)

    def check_result(self, problem, state, result):
        return self.solver.check_result(problem, state, result)

    def postprocess(self, problem, state):
        return self.solver.postprocess(problem, state)
