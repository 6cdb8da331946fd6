"""Saving results (JSON + NPZ) and checkpoints of solver state."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _to_numpy_leaves(tree):
    leaves, treedef = jax.tree.flatten(tree)
    out = []
    for x in leaves:
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            out.append(("key", np.asarray(jax.random.key_data(x))))
        else:
            out.append(("arr", np.asarray(x)))
    return out, treedef


def _signature(tree) -> str:
    leaves, treedef = jax.tree.flatten(tree)
    return str(treedef) + "|" + ";".join(f"{jnp.shape(x)}{jnp.result_type(x)}" for x in leaves)


def save_checkpoint(path, carry, history: dict[str, list]) -> None:
    """Atomically write the driver's carry and the history so far to ``path`` (npz)."""
    leaves, _ = _to_numpy_leaves(carry)
    arrays = {f"leaf_{i}": a for i, (_, a) in enumerate(leaves)}
    for name, chunks in history.items():
        arrays[f"hist_{name}"] = np.concatenate(chunks) if chunks else np.zeros((0,))
    meta = {"signature": _signature(carry), "kinds": [k for k, _ in leaves], "history": list(history)}
    atomic_savez(path, meta, **arrays)


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


def load_checkpoint(path, like):
    """Read a checkpoint written by `save_checkpoint`; ``like`` gives the structure."""
    with np.load(path) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        if meta["signature"] != _signature(like):
            raise ValueError(
                f"checkpoint {path} was written by a different problem or solver structure; "
                "delete it or point HostLoop(checkpoint=...) at a new file."
            )
        leaves, treedef = jax.tree.flatten(like)
        new = []
        for i, (kind, ref) in enumerate(zip(meta["kinds"], leaves)):
            a = z[f"leaf_{i}"]
            if kind == "key":
                new.append(jax.random.wrap_key_data(jnp.asarray(a), impl=jax.random.key_impl(ref)))
            else:
                new.append(jnp.asarray(a, dtype=jnp.result_type(ref)))
        history = {n: [np.asarray(z[f"hist_{n}"])] for n in meta["history"]}
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
        "result": getattr(solution.result, "name", _jsonable(solution.result)),
        "stats": _jsonable(solution.stats),
        "metrics": _jsonable(solution.metrics),
    }


def write_json(path, obj) -> None:
    with open(path, "w") as f:
        json.dump(_jsonable(obj), f, indent=2)
        f.write("\n")
