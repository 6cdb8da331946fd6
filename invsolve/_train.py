"""The training loop shared by the learned components (DCDM, LPN): progress, checkpoints, resume."""

from __future__ import annotations

import sys
import time

import jax
import numpy as np

from ._hostrun import HostRun, load_or_restart, scoped_checkpoint
from ._driver import Interrupted
from .io import fingerprint, pack_checkpoint, unpack_checkpoint


def fit(update, carry, steps: int, *, name: str, checkpoint=None, save_every_s: float = 60.0,
        progress: bool | None = None, time_limit_s: float | None = None, place=None, identity=None):
    """Run ``carry, loss = update(carry, k)`` for ``k`` up to ``steps``.

    ``update`` must be a pure function of the step index ``k`` (draw its batch from
    ``fold_in(key, k)``), so that a resumed run repeats an uninterrupted one bit for bit.
    With ``checkpoint`` (an ``.npz`` path) the carry, the losses so far and the elapsed time
    are written every ``save_every_s`` seconds and at the end, and a run that finds the file
    starts where it stopped. The file stores a fingerprint of the starting carry and of
    ``identity`` (everything else that determines the run: the training data or a hash of
    it, the key, the settings), and a file written by another run is refused
    (`invsolve.io.CheckpointError`). Progress goes to stderr (default: when stderr is a
    terminal). ``time_limit_s`` stops the run (checkpoint written) after the first
    step that ends past that many seconds: run again to continue, e.g. on a preemptible
    machine. ``carry[-1]`` must be the step counter (an int32 array) so the start is read
    from a checkpoint. ``place(carry)`` puts the (possibly reloaded) carry where training
    runs, e.g. replicated over devices (`invsolve._batch.data_parallel`). Returns
    ``(carry, losses so far, wall seconds)``.
    """
    scoped = checkpoint is None
    if scoped:  # inside a checkpoint_scope (invsolve run): a file of its own
        checkpoint, every_s = scoped_checkpoint("train")
        save_every_s = min(save_every_s, every_s) if checkpoint is not None else save_every_s
    fp = "" if checkpoint is None else fingerprint(identity, carry)
    run = HostRun(name, path=checkpoint, fingerprint=fp, every_s=save_every_s, progress=progress)
    history, elapsed = [], 0.0
    saved = load_or_restart(run, scoped)
    if saved is not None:
        print(f"invsolve: resuming {name} from its checkpoint {checkpoint}", file=sys.stderr)
    if saved is not None:
        carry, hist = unpack_checkpoint(checkpoint, *saved, carry)
        history = hist["loss"]
        elapsed = float(hist["elapsed"][0][0]) if "elapsed" in hist and hist["elapsed"][0].size else 0.0
    if place is not None:
        carry = place(carry)
    start = int(carry[-1])
    losses = []  # device scalars: no host round-trip per step
    t_run = time.perf_counter()

    def all_losses():
        new = np.asarray(jax.device_get(losses), np.float32).reshape(-1)
        return np.concatenate([np.asarray(h, np.float32).reshape(-1) for h in history] + [new])

    def save(force):
        if force or run.due():
            elapsed_now = np.array([elapsed + time.perf_counter() - t_run])
            run.save(*pack_checkpoint(carry, {"loss": [all_losses()], "elapsed": [elapsed_now]}))

    with run.start(steps, start):
        shown, every = start, max(1, -(-steps * 2 // 100))
        try:
            for k in range(start, steps):
                carry, loss = update(carry, k)
                losses.append(loss)
                if run.refresh_due() or (run.bar is not None and k + 1 - shown >= every):  # 1 s or 2 %
                    run.advance(k + 1 - shown, {"loss": float(np.mean(jax.device_get(losses[-100:])))})
                    shown = k + 1
                save(False)
                if time_limit_s is not None and time.perf_counter() - t_run >= time_limit_s:
                    break
        except KeyboardInterrupt:
            losses = losses[: int(carry[-1]) - start]  # the step under way when Ctrl-C came is not kept
            if checkpoint is not None:
                save(True)
            raise Interrupted(name, int(carry[-1]), checkpoint) from None
        run.advance(int(carry[-1]) - shown)
    if checkpoint is not None:
        save(True)
    return carry, all_losses(), elapsed + time.perf_counter() - t_run
