"""The DCDM recipes: Dirichlet Poisson operators with random obstacles, `invsolve.solvers.dcdm.train`."""

from __future__ import annotations

import dataclasses

import jax
import optax

from ..problems import poisson
from ..solvers.dcdm import DCDMModel
from ..solvers.dcdm import train as train_dcdm


@dataclasses.dataclass(frozen=True, kw_only=True)
class DCDMRecipe:
    """A shipped DCDM model: Dirichlet Poisson operators on ``shape``, one without obstacles
    and ``n_layouts`` with `poisson.smoke_obstacles` (`operators`), then
    `invsolve.solvers.dcdm.train` with ``n_vectors`` right-hand sides from ``n_lanczos``
    Lanczos steps, ``steps`` updates of ``batch_size``, a `ConvUNet` of ``features``,
    ``levels``, ``blocks``, and Adam (``lr``, cosine decay to ``lr / 100``); PRNG ``seed``."""

    shape: tuple[int, ...]
    n_layouts: int
    n_vectors: int
    n_lanczos: int
    steps: int
    batch_size: int
    features: int
    levels: int
    blocks: int
    lr: float = 1e-3
    seed: int = 0

    def operators(self) -> list:
        """The training operators (obstacle layouts from keys never used for tests)."""
        key = jax.random.fold_in(jax.random.key(self.seed), 1000)
        return [poisson.operator(self.shape)] + [
            poisson.operator(self.shape, obstacles=poisson.smoke_obstacles(self.shape, jax.random.fold_in(key, i)))
            for i in range(self.n_layouts)
        ]

    def train(self, checkpoint=None, progress: bool | None = None) -> DCDMModel:
        """Train the model (or resume from ``checkpoint``) and return it."""
        opt = optax.adam(optax.cosine_decay_schedule(self.lr, max(self.steps, 1), alpha=1e-2))
        return train_dcdm(self.operators(), opt, self.n_vectors, jax.random.key(self.seed), n_lanczos=self.n_lanczos,
                          steps=self.steps, batch_size=self.batch_size, features=self.features, levels=self.levels,
                          blocks=self.blocks, checkpoint=checkpoint, progress=progress)
