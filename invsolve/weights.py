"""The shipped weights and the file format of every trained model.

invsolve ships trained models in the folder ``invsolve/weights/`` as ``KIND-NAME.npz``
(``KIND`` is ``dcdm``, ``lpn`` or ``score``; ``MANIFEST.md`` there says how each was made,
and `invsolve.recipes` trains each under the same name). A trained model (`DCDMModel`,
`LPN`, `ScorePrior`) is stored as its parameter leaves, in `jax.tree.leaves` order, as
arrays ``w0, w1, ...``, plus a JSON ``meta`` dict: the configuration that rebuilds the
network and ``info``, how it was trained. The classes' ``save``, ``load`` and
``pretrained`` are thin wrappers of `save`, `load` and `pretrained` here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .io import CheckpointError, atomic_savez, read_npz

FOLDER = Path(__file__).resolve().parent / "weights"


def shipped(kind: str) -> list[str]:
    """The names of the shipped models of ``kind``: ``NAME`` of each ``FOLDER/KIND-NAME.npz``."""
    return sorted(p.name[len(kind) + 1:-len(".npz")] for p in FOLDER.glob(f"{kind}-*.npz"))


def pretrained(cls, kind: str, name: str):
    """``cls.load`` of the shipped file ``FOLDER/{kind}-{name}.npz``; a name not shipped
    raises ``ValueError`` listing the available ones."""
    names = shipped(kind)
    if name not in names:
        raise ValueError(f"no pretrained {cls.__name__} {name!r}; available: {', '.join(names)}.")
    return cls.load(FOLDER / f"{kind}-{name}.npz")


def save(path, model, **config) -> None:
    """Write ``model.params`` (leaves ``w0, w1, ...``) with the metadata ``config`` (JSON-able
    values) and ``info = dict(model.info)`` to the ``.npz`` file ``path``, through a temporary
    file (`invsolve.io.atomic_savez`)."""
    leaves = jax.tree.leaves(model.params)
    atomic_savez(path, {**config, "info": dict(model.info)}, **{f"w{i}": np.asarray(x) for i, x in enumerate(leaves)})


def load(path, build: Callable[[dict], Any], what: str):
    """Read a model written by `save`: ``build(meta)`` makes a model of the stored
    configuration, whose ``params`` leaves are replaced by the stored arrays and whose
    ``info`` by the stored one (lists as tuples, sorted by key). ``what`` names the model
    class in errors. A file that cannot be read (truncated, empty, not an ``.npz``), that
    lacks a metadata field or an array, or whose arrays do not have the shapes of the
    network it names raises `invsolve.io.CheckpointError` (a ``ValueError``) naming it; a
    missing file raises ``FileNotFoundError``."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what}.load: no file {path}.")
    meta, arrays = read_npz(path, "model file")
    try:
        # the network's structure and shapes only: running its initialisers op by op would
        # compile hundreds of small programs (7 s for a score U-Net); every array of a model
        # lives in ``params``, which the stored arrays replace
        like = eqx.filter_eval_shape(build, meta)
        leaves, treedef = jax.tree.flatten(like.params)
        new = [jnp.asarray(arrays[f"w{i}"]) for i in range(len(leaves))]
        info = meta["info"]
    except KeyError as e:
        raise CheckpointError(f"{what}.load: {path} has no {e}; it is not a {what} written by {what}.save.") from None
    if [x.shape for x in new] != [x.shape for x in leaves]:
        raise CheckpointError(f"{what}.load: {path} does not match the network configuration it names.")
    info = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in info.items()))
    return dataclasses.replace(like, params=jax.tree.unflatten(treedef, new), info=info)
