"""Drivers run any solver's ``init / step / terminate / postprocess``.

* `HostLoop`: steps in compiled chunks (``lax.while_loop``), returns to Python between chunks for
  the progress bar, checkpoints and resumption. The default for interactive solves.
* `DeviceLoop`: one ``lax.while_loop``; works under ``jit`` and ``vmap`` (and, through
  `invsolve.linalg.linear_solve`, under ``grad`` by implicit differentiation).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._hostrun import HostRun, load_or_restart, scoped_checkpoint
from ._solution import RESULTS, Solution, SolveError
from .io import fingerprint, pack_checkpoint, unpack_checkpoint

try:  # keeps weak types, which the public convert_element_type cannot
    from jax._src.lax.lax import _convert_element_type
except ImportError:  # pragma: no cover
    def _convert_element_type(x, dtype, weak_type):
        return jax.lax.convert_element_type(x, dtype)


class Carry(eqx.Module):
    state: Any
    done: jax.Array
    result: jax.Array
    num_steps: jax.Array
    best_loss: jax.Array  # lowest "loss" seen (inf before the first; float32)
    first_loss: jax.Array  # the first step's "loss" (NaN before it)


# A step whose "loss" exceeds the best seen by this many times the loss scale (the larger of
# the first and the best loss in magnitude) ends the solve as diverged. Stochastic losses
# (PINN collocation batches, Adam's noise) move by far less; a step size that explodes moves
# by many orders of magnitude within a few steps.
DIVERGENCE_FACTOR = 1e4


def _match_step_types(solver, problem, state):
    """Cast the initial state to the types ``step`` returns (weak types included), so a
    chunked solve compiles once; third-party states (optax's) are not always consistent."""
    spec = jax.eval_shape(lambda s: solver.step(problem, s)[0], state)
    return jax.tree.map(lambda x, s: _convert_element_type(x, s.dtype, s.weak_type), state, spec)


def _init_carry(solver, problem, key, max_steps, state=None, num_steps=0):
    if state is None:
        state = solver.init(problem, key)
    state = _match_step_types(solver, problem, state)
    done, result = solver.terminate(problem, state)
    num_steps = jnp.asarray(num_steps, jnp.int32)
    done = jnp.asarray(done) | (num_steps >= max_steps)
    return Carry(state, done, jnp.asarray(result, jnp.int32), num_steps, jnp.full((), jnp.inf, jnp.float32),
                 jnp.full((), jnp.nan, jnp.float32))


def _do_step(solver, problem, carry, max_steps):
    state, info = solver.step(problem, carry.state)
    n = carry.num_steps + 1
    done, result = solver.terminate(problem, state)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(info)]))
    # a failure the solver diagnosed itself (e.g. breakdown) is more informative than NaN
    solver_failed = result > RESULTS.max_steps_reached
    result = jnp.where(finite | solver_failed, result, RESULTS.nonfinite).astype(jnp.int32)
    done = jnp.asarray(done) | ~finite | (n >= max_steps)
    best, first = carry.best_loss, carry.first_loss
    if "loss" in info:
        loss = jnp.asarray(info["loss"], jnp.float32)
        first = jnp.where(carry.num_steps == 0, loss, first)
        scale = jnp.maximum(jnp.maximum(jnp.abs(first), jnp.abs(best)), jnp.finfo(jnp.float32).tiny)
        diverged = finite & (loss > best + DIVERGENCE_FACTOR * jnp.where(jnp.isfinite(best), scale, jnp.inf))
        result = jnp.where(diverged, RESULTS.diverged, result).astype(jnp.int32)
        done = done | diverged
        best = jnp.minimum(best, loss)
    return Carry(state, done, result, n, best, first), info


def _info_spec(solver, problem, carry, max_steps):
    return jax.eval_shape(lambda c: _do_step(solver, problem, c, max_steps)[1], carry)


@eqx.filter_jit
def _jit_init(solver, problem, key, max_steps, state, num_steps=0):
    return _init_carry(solver, problem, key, max_steps, state, num_steps)


def _loop(solver, problem, carry, max_steps, length: int, record: bool = True, limit=None):
    """Step while not done, at most ``length`` times (or ``limit`` <= ``length``, a traced
    count, so a host loop sizes its chunks without recompiling), in one ``lax.while_loop``; the
    diagnostics of step ``i`` go to row ``i`` of the history (NaN after the last step).
    A while loop (not a scan with a ``cond`` per step) keeps the state in place: the
    cond version copied it every step and ran CG 1.6-3x slower than a plain loop."""
    spec = _info_spec(solver, problem, carry, max_steps)
    hist = jax.tree.map(lambda s: jnp.full((length, *s.shape), jnp.nan, s.dtype), spec) if record else {}

    limit = length if limit is None else jnp.minimum(limit, length)

    def cond(c):
        return ~c[0].done & (c[2] < limit)

    def body(c):
        carry, hist, i = c
        new, info = _do_step(solver, problem, carry, max_steps)
        if record:
            hist = jax.tree.map(lambda h, v: h.at[i].set(v), hist, info)
        return new, hist, i + 1

    carry, hist, _ = jax.lax.while_loop(cond, body, (carry, hist, jnp.zeros((), jnp.int32)))
    return carry, hist


@eqx.filter_jit
def _jit_chunk(solver, problem, carry, max_steps, chunk: int, limit):
    return _loop(solver, problem, carry, max_steps, chunk, limit=limit)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a host-driven solve or training: ``step`` is the last finished step,
    ``checkpoint`` the file it was saved to (None: not saved)."""

    def __init__(self, name: str, step: int, checkpoint=None):
        super().__init__(f"{name} interrupted at step {step}")
        self.name, self.step, self.checkpoint = name, step, checkpoint


class _ChunkClock:
    """Chunk lengths for a host loop: the progress bar and Ctrl-C hear from the device at
    least every ``every_s`` seconds (and, with a bar, every 2 % of the budget), never more
    than ``cap`` steps at once. The first chunk (it compiles) is one step; lengths then
    grow 8x per chunk until the measured step rate sets them."""

    def __init__(self, cap: int, budget: int, bar: bool, every_s: float = 1.0):
        self.cap = max(1, min(cap, max(1, -(-budget * 2 // 100)) if bar else cap))
        self.every_s, self.n, self.calls = every_s, 1, 0

    def next(self) -> int:
        return self.n

    def record(self, steps: int, seconds: float) -> None:
        self.calls += 1
        if self.calls == 1 or steps == 0:
            self.n = min(self.cap, 8)
        elif seconds < 0.1 * self.every_s:  # too short to time well: grow
            self.n = min(self.cap, self.n * 8)
        else:
            self.n = int(min(self.cap, max(1, steps * self.every_s / seconds)))


# --------------------------------------------------------------------------------------
# compile-time accounting (jax.monitoring events, summed while a solve runs)
# --------------------------------------------------------------------------------------
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_clock = threading.local()
_listener_installed = False


def _on_event(name, duration, **_):
    if name in _COMPILE_EVENTS and getattr(_compile_clock, "active", False):
        _compile_clock.seconds += duration


class compile_timer:
    """Context manager: ``.seconds`` spent tracing and compiling inside the block."""

    def __enter__(self):
        global _listener_installed
        if not _listener_installed:
            jax.monitoring.register_event_duration_secs_listener(_on_event)
            _listener_installed = True
        self._outer = (getattr(_compile_clock, "active", False), getattr(_compile_clock, "seconds", 0.0))
        _compile_clock.active, _compile_clock.seconds = True, 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = _compile_clock.seconds
        active, outer = self._outer
        _compile_clock.active, _compile_clock.seconds = active, outer + (self.seconds if active else 0.0)


def _verdict(solver, problem, carry, est):
    """The final result code: the solver's own check (e.g. a sampler's data fit), and an
    estimate that is not finite is never a success."""
    result = solver.check_result(problem, carry.state, carry.result)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(est.value)]))
    return jnp.where((result == RESULTS.successful) & ~finite, RESULTS.nonfinite, result).astype(jnp.int32)


@eqx.filter_jit
def _jit_postprocess(solver, problem, carry):
    est = solver.postprocess(problem, carry.state)
    return est, problem.metrics(est.value), _verdict(solver, problem, carry, est)


def _finish(problem, solver, carry, history, stats, throw, host: bool):
    stats.update({k: v * stats["num_steps"] for k, v in solver.step_cost(problem).items()})
    if host:
        est, metrics, result = _jit_postprocess(solver, problem, carry)
    else:
        est = solver.postprocess(problem, carry.state)
        metrics = problem.metrics(est.value)
        result = _verdict(solver, problem, carry, est)
    if host:
        result = RESULTS(int(result))
        if throw and result != RESULTS.successful:
            raise SolveError(
                f"{type(solver).__name__} on {type(problem).__name__} stopped after "
                f"{int(carry.num_steps)} steps: {result.message}."
            )
    elif throw:
        msg = "solve did not succeed (result code != RESULTS.successful); pass throw=False to inspect it"
        est = eqx.tree_at(lambda e: e.value, est, eqx.error_if(est.value, result != 0, msg))
    return Solution(
        value=est.value, result=result, history=history, stats=stats, metrics=metrics,
        std=est.std, samples=est.samples, state=carry.state,
    )


class HostLoop(eqx.Module):
    """Run a solver in compiled chunks of ``chunk_size`` steps with Python in between.

    Args:
        chunk_size: at most this many steps per compiled call (one ``lax.while_loop``, compiled
            once); within it, chunk lengths follow the measured step rate so that the progress
            bar and Ctrl-C hear from the device about every second (with a bar, also every 2 %
            of the budget).
        progress: show a tqdm bar with the latest loss/residual (None: only on a terminal).
        checkpoint: path of an ``.npz`` file. Written every ``checkpoint_every`` chunks; if it
            exists when the solve starts, the solve resumes from it. A file written by another
            run (other data, solver settings, key or starting state: a fingerprint of all of
            them is stored) or one that cannot be read raises `invsolve.io.CheckpointError`.
        checkpoint_every: chunks between checkpoints.
        checkpoint_every_s: and at least this many seconds between them (0: no time limit).
            The last step is always saved, and so is the last finished chunk on Ctrl-C, which
            raises `Interrupted` (a ``KeyboardInterrupt``) with the step reached.
        callback: ``callback(num_steps, info)`` after each chunk, ``info`` the last step's
            diagnostics (floats); for logging, or to stop a run by raising.
    """

    chunk_size: int = 1000
    progress: bool | None = None
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 1
    callback: Callable | None = None
    checkpoint_every_s: float = 0.0
    scoped: bool = False  # made by `checkpoint_scope`: a file of another run is replaced, not refused

    def __check_init__(self):
        for name in ("chunk_size", "checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"HostLoop: {name} must be a positive integer, got {v!r}.")
        cs = self.checkpoint_every_s
        if isinstance(cs, (bool, np.bool_)) or not isinstance(cs, (int, float, np.number)) or not cs >= 0:
            raise ValueError(f"HostLoop: checkpoint_every_s must be a number of seconds >= 0, got {cs!r}.")
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, os.PathLike)):
            raise TypeError(f"HostLoop: checkpoint must be a file path (str or os.PathLike) or None, got "
                            f"{type(self.checkpoint).__name__} {self.checkpoint!r}.")
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"HostLoop: callback must be a function callback(num_steps, info) or None, got "
                            f"{type(self.callback).__name__} {self.callback!r}.")

    def run(self, solver, problem, key, max_steps: int, state, throw: bool) -> Solution:
        t0 = time.perf_counter()
        max_steps_arr = np.asarray(max_steps, np.int32)  # no device op, no tiny compile
        history: dict[str, list] = {}
        fp = "" if self.checkpoint is None else run_fingerprint(solver, problem, key, state)
        run = HostRun(type(solver).__name__, path=self.checkpoint, fingerprint=fp, progress=self.progress,
                      every_s=float(self.checkpoint_every_s))
        with compile_timer() as ct, run:
            carry = _jit_init(solver, problem, key, max_steps_arr, state)
            saved = load_or_restart(run, self.scoped)
            if saved is not None:
                saved, history = unpack_checkpoint(self.checkpoint, *saved, carry)
                carry = _jit_init(solver, problem, key, max_steps_arr, saved.state, saved.num_steps)
                carry = eqx.tree_at(lambda c: (c.best_loss, c.first_loss), carry, (saved.best_loss, saved.first_loss))
            if saved is not None:
                print(f"invsolve: resuming {run.name} from step {int(carry.num_steps)} ({run.path})", file=sys.stderr)
            run.start(max_steps, int(carry.num_steps))
            chunks = 0
            clock = _ChunkClock(int(self.chunk_size), max_steps, run.bar is not None)
            try:
                while not bool(carry.done):
                    before, t_chunk = int(carry.num_steps), time.perf_counter()
                    carry, infos = _jit_chunk(solver, problem, carry, max_steps_arr, int(self.chunk_size),
                                              np.asarray(clock.next(), np.int32))
                    k = int(carry.num_steps) - before
                    clock.record(k, time.perf_counter() - t_chunk)
                    infos = jax.device_get(infos)
                    for name, v in infos.items():
                        history.setdefault(name, []).append(np.asarray(v[:k]))
                    last = {name: float(np.asarray(v[k - 1])) for name, v in infos.items()} if k else {}
                    chunks += 1
                    run.advance(k, last)
                    if (chunks % int(self.checkpoint_every) == 0 and run.due()) or bool(carry.done):
                        run.save(*pack_checkpoint(carry, history))
                    if self.callback is not None:
                        self.callback(int(carry.num_steps), last)
            except KeyboardInterrupt:
                if run.path is not None:  # everything up to the last finished chunk
                    run.save(*pack_checkpoint(carry, history))
                raise Interrupted(run.name, int(carry.num_steps), run.path) from None
            hist = {n: np.concatenate(v) if v else np.zeros((0,)) for n, v in history.items()}
            stats = {"num_steps": int(carry.num_steps)}
            sol = _finish(problem, solver, carry, hist, stats, throw, host=True)
        jax.block_until_ready(sol.value)
        sol.stats["wall_time_s"] = time.perf_counter() - t0
        sol.stats["compile_time_s"] = ct.seconds
        return sol


def default_host_loop() -> HostLoop:
    """The driver of a `solve` without one: a plain `HostLoop`, checkpointing inside a
    `invsolve._hostrun.checkpoint_scope`."""
    path, every_s = scoped_checkpoint("solve")
    return HostLoop() if path is None else HostLoop(checkpoint=path, checkpoint_every_s=every_s, scoped=True)


def run_fingerprint(solver, problem, key, state) -> str:
    """What determines a solve: the problem (data and settings), the solver's configuration
    (its step budget excluded, so a run can be continued with more steps), the key and the
    starting state."""
    if "max_steps" in {f.name for f in dataclasses.fields(solver)}:  # a field (not a property) to blank
        solver = eqx.tree_at(lambda s: s.max_steps, solver, None, is_leaf=lambda x: x is None)
    return fingerprint(problem, solver, key, state)


class DeviceLoop(eqx.Module):
    """Run a solver in one ``lax.while_loop``: usable inside ``jit`` and ``vmap``.

    History arrays have length ``max_steps`` and are NaN after ``stats["num_steps"]``;
    ``history=False`` drops them (inner solves inside forward models).
    """

    history: bool = True

    def run(self, solver, problem, key, max_steps: int, state, throw: bool) -> Solution:
        carry = _init_carry(solver, problem, key, max_steps, state)
        carry, hist = _loop(solver, problem, carry, max_steps, max_steps, record=self.history)
        return _finish(problem, solver, carry, hist, {"num_steps": carry.num_steps}, throw, host=False)
