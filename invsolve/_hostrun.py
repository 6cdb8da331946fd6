"""`HostRun`: what every long host-side loop here needs, written once: a live progress bar,
atomic checkpoints every so many seconds, and resumption that refuses another run's file.

Used by the solve driver (`HostLoop`), the training loop of the learned components
(`invsolve._train.fit`) and the database build (`DatabaseQuery.build`); and `checkpoint_scope`,
which gives every such loop inside it a checkpoint file of its own (``invsolve run`` uses it).
"""

from __future__ import annotations

import contextvars
import os
import sys
import time

from .io import CheckpointError, atomic_savez, read_npz


class HostRun:
    """A resumable host loop.

    Args:
        name: shown on the progress bar.
        path: the checkpoint file (``.npz``), or None for no checkpoints.
        fingerprint: a hash of everything that determines the run (`invsolve.io.fingerprint`);
            a file with another fingerprint is refused with a `CheckpointError` naming it.
        every_s: seconds between checkpoints (0: at every `save` call).
        progress: show a tqdm bar (None: when stderr is a terminal, or ``INVSOLVE_PROGRESS=1``).
        what: the kind of file, for messages ("checkpoint", "bank").
    """

    def __init__(self, name: str, *, path=None, fingerprint: str = "", every_s: float = 0.0,
                 progress: bool | None = None, what: str = "checkpoint"):
        self.name, self.path, self.fingerprint, self.every_s, self.what = name, path, fingerprint, every_s, what
        forced = os.environ.get("INVSOLVE_PROGRESS", "")  # "1": bars also when stderr is not a terminal (logs)
        self.show = progress if progress is not None else (forced not in ("", "0") or sys.stderr.isatty())
        self.bar = None
        self._last_save = self._last_refresh = time.perf_counter()

    def load(self) -> tuple[dict, dict] | None:
        """``(meta, arrays)`` of the checkpoint if there is one (None otherwise); its
        fingerprint must be this run's."""
        if self.path is None or not os.path.exists(self.path):
            return None
        meta, arrays = read_npz(self.path, self.what)
        if meta.get("fingerprint") != self.fingerprint:
            raise CheckpointError(
                f"{self.what} {self.path} was written by another run (different data, settings or random "
                f"key), so resuming from it would return that run's answer; delete it or choose another "
                f"path to start over."
            )
        return meta, arrays

    def due(self) -> bool:
        """Whether a checkpoint is due (a path is set and ``every_s`` seconds have passed)."""
        return self.path is not None and time.perf_counter() - self._last_save >= self.every_s

    def save(self, meta: dict, arrays: dict) -> None:
        """Write the checkpoint atomically, with this run's fingerprint (no-op without a path)."""
        if self.path is not None:
            atomic_savez(self.path, {**meta, "fingerprint": self.fingerprint}, **arrays)
            self._last_save = time.perf_counter()

    def refresh_due(self, every_s: float = 1.0) -> bool:
        """Whether the progress bar is shown and was last refreshed ``every_s`` seconds ago
        (for loops that must fetch their figures from the device to show them)."""
        if self.bar is None or time.perf_counter() - self._last_refresh < every_s:
            return False
        self._last_refresh = time.perf_counter()
        return True

    def start(self, total: int, initial: int = 0, unit: str = "step"):
        if self.show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=self.name, unit=unit, dynamic_ncols=True)
        return self

    def advance(self, n: int, info: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if info:
                self.bar.set_postfix({k: f"{v:.3e}" for k, v in info.items()}, refresh=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


_SCOPE: contextvars.ContextVar = contextvars.ContextVar("invsolve_checkpoint_scope", default=None)


class checkpoint_scope:
    """``with checkpoint_scope(folder):`` every host-driven solve that has no driver of its
    own, and every training, checkpoints to ``folder/solve-000.npz``, ``solve-001.npz``, ...
    (``train-000.npz``, ...) in the order they run, at most every ``every_s`` seconds and
    at their end. Rerunning the same deterministic script resumes each where it stopped;
    finished ones return at once from their final checkpoint. A file written by another
    solve (the script changed) is replaced, with a message, rather than refused. The folder
    is created with the first checkpoint; `clear` deletes the files."""

    def __init__(self, folder, every_s: float = 5.0):
        self.folder, self.every_s, self.counts = os.fspath(folder), float(every_s), {}

    def next_path(self, kind: str) -> str:
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        return os.path.join(self.folder, f"{kind}-{n:03d}.npz")

    def clear(self) -> None:
        if os.path.isdir(self.folder):
            for name in os.listdir(self.folder):
                if name.endswith(".npz"):
                    os.remove(os.path.join(self.folder, name))
            if not os.listdir(self.folder):
                os.rmdir(self.folder)

    def __enter__(self):
        self._token = _SCOPE.set(self)
        return self

    def __exit__(self, *exc):
        _SCOPE.reset(self._token)


def scoped_checkpoint(kind: str) -> tuple[str | None, float]:
    """``(path, every_s)`` for the next loop of ``kind`` in the active `checkpoint_scope`
    (``(None, 0)`` outside one)."""
    scope = _SCOPE.get()
    return (None, 0.0) if scope is None else (scope.next_path(kind), scope.every_s)


def load_or_restart(run: "HostRun", scoped: bool):
    """``run.load()``; inside a `checkpoint_scope` a file of another run is deleted, not refused."""
    try:
        return run.load()
    except CheckpointError:
        if not scoped:
            raise
        print(f"invsolve: {run.path} belongs to another {run.name} run; starting this one afresh", file=sys.stderr)
        os.remove(run.path)
        return None
