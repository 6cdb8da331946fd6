"""JAX's persistent compilation cache for scripts and the command line."""

from __future__ import annotations

import os


def cache_dir() -> str:
    """The default folder: ``$XDG_CACHE_HOME/invsolve/jax`` (else ``~/.cache/invsolve/jax``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "invsolve", "jax")


def use_compilation_cache(directory: str | os.PathLike | None = None, *, min_compile_time_s: float = 0.1) -> str:
    """Compile each program once per machine: turn on JAX's persistent compilation cache, so a
    later process loads what an earlier one compiled (a multigrid solve, a projector, a
    solver's loop) instead of compiling it again.

    Programs that took at least ``min_compile_time_s`` seconds to compile are stored in
    ``directory`` (default `cache_dir()`). The command line does this unless ``--no-cache``.
    Measured on two CPU cores (``benchmarks/compile_cache.py --work``): the first MG-PCG solve at
    256² takes 4.0 s in a new process and 0.7 s once the cache holds its programs. Returns the
    folder used.
    """
    import jax

    if not isinstance(min_compile_time_s, (int, float)) or not min_compile_time_s >= 0:
        raise ValueError(f"use_compilation_cache: min_compile_time_s must be a number >= 0 (seconds); "
                         f"got {min_compile_time_s!r}")
    path = os.fspath(directory) if directory is not None else cache_dir()
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"use_compilation_cache: {path!r} exists and is not a folder; give a folder for the cache")
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
