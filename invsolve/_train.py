"""The training loop shared by the learned components (DCDM, LPN): progress, checkpoints, resume."""

from __future__ import annotations

import os
import sys
import time

import jax
import numpy as np


def fit(update, carry, steps: int, *, name: str, checkpoint=None, save_every_s: float = 60.0,
        progress: bool | None = None, time_limit_s: float | None = None, place=None):
    """Run ``carry, loss = update(carry, k)`` for ``k`` up to ``steps``.

    ``update`` must be a pure function of the step index ``k`` (draw its batch from
    ``fold_in(key, k)``), so that a resumed run repeats an uninterrupted one bit for bit.
    With ``checkpoint`` (an ``.npz`` path) the carry, the losses so far and the elapsed time
    are written every ``save_every_s`` seconds and at the end, and a run that finds the file
    starts where it stopped. Progress goes to stderr (default: when stderr is a terminal),
    one line every 10 s. ``time_limit_s`` stops the run (checkpoint written) after the first
    step that ends past that many seconds: run again to continue, e.g. on a preemptible
    machine. ``carry[-1]`` must be the step counter (an int32 array) so the start is read
    from a checkpoint. ``place(carry)`` puts the (possibly reloaded) carry where training
    runs, e.g. replicated over devices (`invsolve._batch.data_parallel`). Returns
    ``(carry, losses so far, wall seconds)``.
    """
    from .io import load_checkpoint, save_checkpoint

    history, elapsed = [], 0.0
    if checkpoint is not None and os.path.exists(checkpoint):
        carry, hist = load_checkpoint(checkpoint, carry)
        history = hist["loss"]
        elapsed = float(hist["elapsed"][0][0]) if "elapsed" in hist and hist["elapsed"][0].size else 0.0
    if place is not None:
        carry = place(carry)
    show = progress if progress is not None else os.isatty(2)
    start = int(carry[-1])
    losses = []  # device scalars: no host round-trip per step
    t_run = last_save = last_print = time.perf_counter()

    def all_losses():
        new = np.asarray(jax.device_get(losses), np.float32).reshape(-1)
        return np.concatenate([np.asarray(h, np.float32).reshape(-1) for h in history] + [new])

    def save():
        save_checkpoint(checkpoint, carry, {"loss": [all_losses()],
                                            "elapsed": [np.array([elapsed + time.perf_counter() - t_run])]})

    for k in range(start, steps):
        carry, loss = update(carry, k)
        losses.append(loss)
        now = time.perf_counter()
        if show and (now - last_print > 10 or k == steps - 1):
            recent = float(np.mean(jax.device_get(losses[-100:])))
            rate = (k + 1 - start) / (now - t_run)
            print(f"{name}: step {k + 1}/{steps}  loss {recent:.4g}  {now - t_run + elapsed:.0f} s  "
                  f"eta {(steps - k - 1) / rate:.0f} s", file=sys.stderr, flush=True)
            last_print = now
        if checkpoint is not None and now - last_save > save_every_s:
            save()
            last_save = now
        if time_limit_s is not None and now - t_run >= time_limit_s:
            break
    if checkpoint is not None:
        save()
    return carry, all_losses(), elapsed + time.perf_counter() - t_run
