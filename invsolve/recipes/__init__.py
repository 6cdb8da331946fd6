"""How the shipped models (``invsolve/weights/``, described in its ``MANIFEST.md``) are trained.

A recipe is the one place that knows both a physics and a method: the training data
(Poisson operators, phantom or brain images from `invsolve.problems`) and the model trained
on them (`invsolve.solvers.dcdm.train`, `invsolve.priors.LPN.train`,
`invsolve.priors.ScorePrior.train`). `RECIPES` maps the name of each shipped file
(``dcdm-poisson2d-64`` for ``invsolve/weights/dcdm-poisson2d-64.npz``) to a frozen dataclass
of its settings, one class per family (`DCDMRecipe`, `LPNRecipe`, `ScoreRecipe`), each with a
``train`` method; `train` runs one by name, as ``invsolve train NAME`` does.
"""

from __future__ import annotations

import dataclasses

from .dcdm import DCDMRecipe
from .images import ImageRecipe, LPNRecipe, ScoreRecipe, augment_deform, augment_slices, image_data

RECIPES = {
    "dcdm-poisson2d-64": DCDMRecipe(shape=(64, 64), n_layouts=7, n_vectors=16_000, n_lanczos=1500, steps=12_000,
                                    batch_size=10, features=16, levels=1, blocks=2),
    "dcdm-poisson3d-32": DCDMRecipe(shape=(32, 32, 32), n_layouts=3, n_vectors=4000, n_lanczos=1000, steps=2000,
                                    batch_size=4, features=8, levels=1, blocks=1),
    "lpn-ellipses-64": LPNRecipe(data="ellipses", steps=1600),
    "lpn-mni-64": LPNRecipe(data="mni", steps=3600),
    "score-ellipses-64": ScoreRecipe(data="ellipses", steps=3000),
    "score-mni-64": ScoreRecipe(data="mni", steps=7000),
    "score-mni-64-edm": ScoreRecipe(data="mni3", steps=9000, precond="edm", noise=(-1.2, 1.2)),
    "score-darcy-32": ScoreRecipe(data="darcy", size=32, channels=(16, 32, 64), steps=4000, batch_size=32,
                                  precond="edm", data_std=1.0, noise=(-0.5, 1.2)),
}


def train(name: str, checkpoint=None, progress: bool | None = None, **overrides):
    """Train the shipped model ``name`` (a key of `RECIPES`) from scratch, or resume from
    ``checkpoint`` (an ``.npz`` written as it trains); ``overrides`` replace recipe fields
    (e.g. ``steps=10`` for a smoke test); ``progress``: a progress line on stderr (default:
    when stderr is a terminal). The model's ``info`` starts with ``("recipe", NAME)``, the name
    its class's ``pretrained`` takes (``poisson2d-64`` for ``dcdm-poisson2d-64``). Returns the
    model; its ``save(path)`` writes it."""
    if name not in RECIPES:
        raise ValueError(f"no recipe {name!r}; available: {', '.join(sorted(RECIPES))}.")
    model = dataclasses.replace(RECIPES[name], **overrides).train(checkpoint, progress)
    return dataclasses.replace(model, info=(("recipe", name.split("-", 1)[1]), *model.info))


__all__ = ["RECIPES", "train", "DCDMRecipe", "ImageRecipe", "LPNRecipe", "ScoreRecipe", "image_data",
           "augment_slices", "augment_deform"]
