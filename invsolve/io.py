"""Saving results (JSON + NPZ) and checkpoints of solver state."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._solution import RESULTS


def _to_numpy_leaves(tree):
    leaves, treedef = jax.tree.flatten(tree)
    out = []
    for x in leaves:
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            out.append(("key", np.asarray(jax.random.key_data(x))))
        else:
            out.append(("arr", np.asarray(x)))
    return out, treedef


class CheckpointError(ValueError):
    """A checkpoint (or stored bank) that cannot be used: unreadable, or written by another run."""


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def fingerprint(*trees) -> str:
    """A hash of everything in ``trees`` that determines a run: the pytree structures with
    their static fields, every array's dtype, shape and bytes (PRNG keys by their key data),
    and the names of functions (memory addresses dropped, so the hash is the same in another
    process). Two runs with the same fingerprint compute the same thing."""
    h = hashlib.sha256()
    for tree in trees:
        leaves, treedef = jax.tree.flatten(tree)
        h.update(_ADDRESS.sub("", str(treedef)).encode())
        for x in leaves:
            if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
                x = jax.random.key_data(x)
            if isinstance(x, (jax.Array, np.ndarray, np.generic)):
                a = np.asarray(x)
                h.update(f"{a.dtype}{a.shape}".encode())
                h.update(np.ascontiguousarray(a).tobytes())
            elif callable(x) and hasattr(x, "__qualname__"):
                h.update(f"{getattr(x, '__module__', '')}.{x.__qualname__}".encode())
            else:
                h.update(_ADDRESS.sub("", repr(x)).encode())
    return h.hexdigest()


def _signature(tree) -> str:
    leaves, treedef = jax.tree.flatten(tree)
    return str(treedef) + "|" + ";".join(f"{jnp.shape(x)}{jnp.result_type(x)}" for x in leaves)


def read_npz(path, what: str = "checkpoint") -> tuple[dict, dict]:
    """Read an ``.npz`` written by `atomic_savez`: ``(meta, arrays)``. A truncated, empty or
    foreign file raises `CheckpointError` naming the file, not a zip or pickle error."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(bytes(arrays.pop("meta")).decode())
        if not isinstance(meta, dict):
            raise ValueError("no metadata")
    except Exception as e:  # BadZipFile, EOFError, OSError, KeyError, ValueError, JSON errors
        raise CheckpointError(
            f"{what} {path} cannot be read ({type(e).__name__}): it is truncated, empty or not "
            f"a {what} written by invsolve. Delete it (or choose another path) to start over."
        ) from None
    return meta, arrays


def pack_checkpoint(carry, history: dict[str, list]) -> tuple[dict, dict]:
    """``(meta, arrays)`` for a checkpoint of the pytree ``carry`` and the ``history`` so far
    (lists of array chunks by name); written by `invsolve._hostrun.HostRun.save`."""
    leaves, _ = _to_numpy_leaves(carry)
    arrays = {f"leaf_{i}": a for i, (_, a) in enumerate(leaves)}
    for name, chunks in history.items():
        arrays[f"hist_{name}"] = np.concatenate(chunks) if chunks else np.zeros((0,))
    meta = {"signature": _signature(carry), "kinds": [k for k, _ in leaves], "history": list(history)}
    return meta, arrays


def atomic_savez(path, meta: dict, **arrays) -> None:
    """Write ``arrays`` and the JSON-able ``meta`` (as key ``"meta"``) to the ``.npz`` file
    ``path`` through a temporary file, so a kill never leaves a half-written file."""
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp.npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a saved result is an ordinary file
    os.replace(tmp, path)


def unpack_checkpoint(path, meta: dict, arrays: dict, like):
    """The ``(carry, history)`` of `pack_checkpoint`, with ``like`` giving the structure; a
    file of another structure, or an incomplete one, raises `CheckpointError` naming ``path``."""
    start_over = "delete it or point checkpoint= at a new file to start over."
    if meta.get("signature") != _signature(like):
        raise CheckpointError(f"checkpoint {path} was written by a different problem or solver structure; {start_over}")
    leaves, treedef = jax.tree.flatten(like)
    new = []
    try:
        for i, (kind, ref) in enumerate(zip(meta["kinds"], leaves)):
            a = arrays[f"leaf_{i}"]
            if kind == "key":
                new.append(jax.random.wrap_key_data(jnp.asarray(a), impl=jax.random.key_impl(ref)))
            else:
                new.append(jnp.asarray(a, dtype=jnp.result_type(ref)))
        history = {n: [np.asarray(arrays[f"hist_{n}"])] for n in meta["history"]}
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path} is incomplete (no {e}); {start_over}") from None
    return jax.tree.unflatten(treedef, new), history


def _jsonable(x: Any):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and np.ndim(x) == 0:
        return x.item()
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    if isinstance(x, (int, float, str, bool)) or x is None:
        return x
    return str(x)


def result_names(result):
    """A result code's name (``"successful"``, ...), or a list of names for a batch."""
    if hasattr(result, "name"):
        return result.name
    return [RESULTS(int(r)).name for r in np.ravel(np.asarray(result))]


def save_solution(solution, out_dir, *, name: str = "solution", extra: dict | None = None) -> dict:
    """Write ``out_dir/{name}.npz`` (value, std, history, truth in ``extra``) and return a
    JSON-able summary (result, stats, metrics)."""
    os.makedirs(out_dir, exist_ok=True)
    arrays = {}
    for prefix, tree in (("value", solution.value), ("std", solution.std)):
        if tree is None:
            continue
        flat = jax.tree_util.tree_flatten_with_path(tree)[0]
        for path, leaf in flat:
            key = prefix + "".join(jax.tree_util.keystr((p,)) for p in path)
            arrays[key] = np.asarray(leaf)
    for k, v in solution.history.items():
        arrays[f"history/{k}"] = np.asarray(v)
    for k, v in (extra or {}).items():
        arrays[k] = np.asarray(v)
    np.savez(os.path.join(out_dir, f"{name}.npz"), **arrays)
    return {
        "result": result_names(solution.result),
        "stats": _jsonable(solution.stats),
        "metrics": _jsonable(solution.metrics),
    }


def write_json(path, obj) -> None:
    with open(path, "w") as f:
        json.dump(_jsonable(obj), f, indent=2)
        f.write("\n")
