"""Every solver x every problem: the solver takes exactly the problems listed for it in
`TAKES` (any other is refused with `ProblemSolverIncompatible` before tracing), and on those
its state does not change type between init and step (else every solve compiles twice)."""

import functools

import jax
import jax.numpy as jnp
import optax
import pytest

import invsolve as inv
from invsolve._linop import MatrixOperator
from invsolve.priors import LPN, GaussianMixture
from invsolve.problems import flame, navier_stokes, pde, poisson, scattering, tomography, tumor, wave
from helpers import cached_per_clear, count_compilations


def _matrix_problem(in_shape, m):
    """A linear inverse problem with a dense random (non-symmetric) matrix, unknown of ``in_shape``."""
    n = int(jnp.prod(jnp.array(in_shape)))
    M = jax.random.normal(jax.random.key(4), (m, n)) / n**0.5
    x = jnp.sin(jnp.arange(n, dtype=M.dtype)).reshape(in_shape)
    A = MatrixOperator.from_array(M, in_shape=in_shape)
    return inv.LinearInverse(A, A.mv(x), inv.GaussianNoise(0.01), x)


PROBLEMS = {
    "linear-system": lambda: poisson.linear_system(poisson.operator((8, 8), kappa=2.0), jnp.ones((8, 8))),
    "source": lambda: poisson.source_identification((8, 8), 10, 0.01, key=jax.random.key(0)),
    "kappa": lambda: poisson.coefficient_identification((8, 8), None, 0.01, key=jax.random.key(1)),
    "ct": lambda: tomography.sparse_view(jnp.ones((8, 8)), 6, 0.01, key=jax.random.key(2)),
    "poisson-pinn": lambda: poisson.PoissonPINN(hard_bc=True, n_eval=5),
    "fisher-kpp": lambda: tumor.FisherKPP1D(n_eval=5),
    "tumor": lambda: _tumor_problem(),
    "flame-inverse": lambda: flame.inverse(flame.FreelyPropagating(phi=0.46), 4, 0.0, key=jax.random.key(3),
                                           reference=_flame_reference(), n_eval=11),
    "vector": lambda: _matrix_problem((8,), 6),
    "stack": lambda: _matrix_problem((2, 8), 12),
    "fwi": lambda: wave.fwi(wave.layered((8, 8), 25.0, (1500.0, 2000.0)), 1, 10.0, 0.01, key=jax.random.key(7),
                            spacing_m=25.0, sponge=2, t_max=0.05),
    "born": lambda: scattering.born(0.1 * jnp.ones((8, 8)), 4, 8, 0.01, key=jax.random.key(8)),
    "lippmann-schwinger": lambda: scattering.lippmann_schwinger(0.1 * jnp.ones((8, 8)), 4, 8, 0.01,
                                                                key=jax.random.key(9), maxiter=5),
    "ns-initial": lambda: navier_stokes.initial_condition((16, 16), t_obs=0.02, key=jax.random.key(10)),
    "ns-parameters": lambda: navier_stokes.parameters((16, 16), t_obs=0.02, key=jax.random.key(11)),
    "allen-cahn": lambda: pde.allen_cahn_1d(nx_eval=8, nt_eval=3, n_ic=8, n_bc=4),
    "kdv": lambda: pde.kdv_1d(nx_eval=8, nt_eval=3, n_ic=8, n_bc=4),
}
# problems and solvers are immutable: build each once per test process (a build compiles), and
# again after the tests drop the compilation caches (conftest.py), so that the programs the
# build compiled are not recompiled inside test_contract's count
PROBLEMS = {name: cached_per_clear(make) for name, make in PROBLEMS.items()}
SOLVERS = {
    "cg": lambda: inv.solvers.CG(),
    "pcg-jacobi": lambda: inv.solvers.PCG(),
    "pcg-multigrid": lambda: inv.solvers.PCG(inv.solvers.Multigrid(coarsest=16)),
    "pcg-amg": lambda: inv.solvers.PCG(inv.solvers.AMG(max_coarse=16)),
    "map-adam": lambda: inv.solvers.GradientMAP(optax.adam(1e-2), prior=inv.priors.TV(1e-3)),
    "map-lbfgs": lambda: inv.solvers.GradientMAP(optax.lbfgs(), prior=inv.priors.Tikhonov(1e-2, order=1)),
    "cgls": lambda: inv.solvers.CGLS(),
    "landweber": lambda: inv.solvers.Landweber(),
    "chambolle-pock": lambda: inv.solvers.ChambollePock(lam=0.1),
    "pinn": lambda: inv.solvers.PINN(optax.adam(1e-3), hidden=(8,), n_collocation=16, steps=3),
    "pinn-soap-recipe": lambda: inv.solvers.PINN(inv.optim.soap(1e-3), hidden=(8,), n_collocation=16, steps=3,
                                                 factorized=True, features="fourier", fourier_dim=8,
                                                 weighting="grad_norm"),
    "map-soap": lambda: inv.solvers.GradientMAP(inv.optim.soap(1e-2), prior=inv.priors.Tikhonov(1e-2)),
    "map-mfac": lambda: inv.solvers.GradientMAP(inv.optim.mfac(1e-2, window=4), prior=inv.priors.Tikhonov(1e-2)),
    "dcdm": lambda: inv.solvers.DCDM(inv.solvers.dcdm.DCDMModel.init(2, jax.random.key(0), features=4, levels=1, blocks=1)),
    "pnp-pgd-tv": lambda: inv.solvers.PnPPGD(inv.priors.TV(0.1, prox_steps=5)),
    "pnp-admm-l1": lambda: inv.solvers.PnPADMM(inv.priors.L1(0.01), rho=1.0, cg_steps=3),
    "nuts": lambda: inv.solvers.NUTS(n_samples=3, n_warmup=2, prior=inv.priors.Tikhonov(1.0), max_tree_depth=3),
    "eki": lambda: inv.solvers.EKI(n_ensemble=4, max_steps=2),
    "database": lambda: _tumor_bank(),
    "database-refined": lambda: _tumor_bank().refine(inv.solvers.GradientMAP(optax.adam(1e-2))),
    "pnp-pgd-lpn": lambda: inv.solvers.PnPPGD(_lpn()),
    "dps": lambda: inv.solvers.DPS(_mixture(), n_steps=3, n_samples=2),
    "score-sde": lambda: inv.solvers.ScoreSDE(_mixture(), n_steps=3, n_samples=2),
    "red-diff": lambda: inv.solvers.REDDiff(_mixture(), n_steps=3, optimizer=optax.adam(1e-2), n_samples=2),
    "mbir": lambda: inv.solvers.DiffusionMBIR(_mixture(), n_steps=3),
    "dds": lambda: inv.solvers.DDS(_mixture(), n_steps=3, cg_steps=2),
    "diffpir": lambda: inv.solvers.DiffPIR(_mixture(), n_steps=3, cg_steps=2),
    "daps": lambda: inv.solvers.DAPS(_mixture(), n_anneal=3, n_ode=2, n_langevin=2),
    "pnpdm": lambda: inv.solvers.PnPDM(_mixture(), n_steps=3, n_prior=2, cg_steps=2),
    "stsl": lambda: inv.solvers.STSL(_mixture(), n_steps=3),
}
SOLVERS = {name: cached_per_clear(make) for name, make in SOLVERS.items()}
HAS_FORWARD = {"linear-system", "source", "kappa", "ct", "tumor", "vector", "stack", "fwi", "born",
               "lippmann-schwinger", "ns-initial", "ns-parameters"}
LINEAR = {"linear-system", "ct", "vector", "stack", "born"}
ONE_ARRAY = HAS_FORWARD - {"tumor"}  # the tumour's unknowns are named constants
IMAGES = {"linear-system", "source", "kappa", "ct", "fwi", "born", "lippmann-schwinger", "ns-initial"}  # 2D grids
PHYSICS_INFORMED = {"poisson-pinn", "fisher-kpp", "flame-inverse", "allen-cahn", "kdv"}
# what each solver takes, written out (not derived from the solvers' declarations)
TAKES = {
    "cg": {"linear-system"},  # symmetric (the other linear problems are not)
    "pcg-jacobi": {"linear-system"},
    "pcg-multigrid": {"linear-system"},  # and a grid operator
    "pcg-amg": {"linear-system"},  # and a sparse matrix form
    "map-adam": HAS_FORWARD,
    "map-lbfgs": HAS_FORWARD,
    "cgls": LINEAR,
    "landweber": LINEAR,
    "chambolle-pock": LINEAR,
    "pinn": PHYSICS_INFORMED,
    "pinn-soap-recipe": PHYSICS_INFORMED,
    "map-soap": HAS_FORWARD,
    "map-mfac": HAS_FORWARD,
    "dcdm": {"linear-system"},  # symmetric, and 2D like its model
    "pnp-pgd-tv": ONE_ARRAY,
    "pnp-admm-l1": ONE_ARRAY,
    "pnp-pgd-lpn": IMAGES,  # images with sides a multiple of 4
    "nuts": HAS_FORWARD,  # with a prior object
    "eki": HAS_FORWARD - {"tumor"},  # Gaussian noise (the segmentation likelihood is not)
    "database": {"tumor"},
    "database-refined": {"tumor"},
    "dps": {"vector"},  # the prior's sample shape (8,)
    "score-sde": {"vector"},
    "red-diff": {"vector"},
    "mbir": ONE_ARRAY - {"vector", "ns-initial", "ns-parameters"},  # slices of the prior's shape (8,): (2, 8), 8 x 8
    "dds": {"vector"},  # linear, of the prior's shape (a stack only with tv_z > 0)
    "diffpir": {"vector"},
    "daps": {"vector"},
    "pnpdm": {"vector"},
    "stsl": {"vector"},
}


@functools.cache
def _lpn():
    return LPN.init((8, 8), jax.random.key(5), hidden=4, depth=2, dtype=jnp.float64)


@functools.cache
def _mixture():
    return GaussianMixture.random(jax.random.key(6), dim=8, n_components=2)


@functools.cache
def _tumor_bank():
    return inv.solvers.DatabaseQuery.build(_tumor_problem(), 8, jax.random.key(0), k=2)


@functools.cache
def _tumor_problem():
    an = tumor.ellipsoid_brain((12, 14), 4.0)
    return tumor.segmentation_inverse(an, tumor.Params(0.5, 0.05, (0.65, 0.4), 150.0), (0.25, 0.675))


@functools.cache
def _flame_reference():
    return flame.solve_reference(flame.FreelyPropagating(phi=0.46), n_grid=201, rtol=1e-2)


def _avals(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x), getattr(jax.typeof(x), "weak_type", None)), tree)


# A solve compiles three programs (1-5 s a pair): the fast tier solves each solver on the
# problems below (one or two of the kinds it takes), the slow tier on every other one it takes.
# Refusals are checked before tracing and run in the fast tier for every pair.
FAST = {"cg": {"linear-system"}, "pcg-jacobi": {"linear-system"}, "pcg-multigrid": {"linear-system"},
        "pcg-amg": {"linear-system"},
        "map-adam": {"source", "tumor"}, "map-lbfgs": {"stack"}, "cgls": {"ct"}, "landweber": {"vector"},
        "chambolle-pock": {"ct"}, "pinn": {"poisson-pinn", "flame-inverse", "kdv"}, "dcdm": {"linear-system"},
        "pinn-soap-recipe": {"allen-cahn"}, "map-soap": {"source"}, "map-mfac": {"vector"},
        "pnp-pgd-tv": {"ct"}, "pnp-admm-l1": {"source"}, "pnp-pgd-lpn": {"ct"}, "nuts": {"vector"}, "eki": {"vector"},
        "database": {"tumor"}, "database-refined": {"tumor"}, "dps": {"vector"}, "score-sde": {"vector"},
        "red-diff": {"vector"}, "mbir": {"stack"}, "dds": {"vector"}, "diffpir": {"vector"}, "daps": {"vector"},
        "pnpdm": {"vector"}, "stsl": {"vector"}}


def _slow(s, p):
    return p in TAKES[s] and p not in FAST[s]


@pytest.mark.parametrize("sname,pname", [
    pytest.param(s, p, marks=[pytest.mark.slow] if _slow(s, p) else [], id=f"{s}-{p}")
    for s in SOLVERS for p in PROBLEMS])
def test_contract(pname, sname):
    problem, solver = PROBLEMS[pname](), SOLVERS[sname]()
    if pname not in TAKES[sname]:
        with pytest.raises(inv.ProblemSolverIncompatible, match=f"^{type(solver).__name__} needs "):
            inv.solve(problem, solver, key=jax.random.key(0))
        return
    key = jax.random.key(0) if solver.needs_key else None
    solver = solver.prepare(problem)
    state = jax.eval_shape(lambda: solver.init(problem, key))
    new_state, info = jax.eval_shape(lambda s: solver.step(problem, s), state)
    assert jax.tree.structure(state) == jax.tree.structure(new_state)
    if not sname.endswith("lbfgs"):  # optax's lbfgs state changes weak types; the driver casts
        assert _avals(state) == _avals(new_state)
    assert all(jnp.shape(v) == () for v in info.values())
    done, result = jax.eval_shape(lambda s: solver.terminate(problem, s), state)
    assert done.shape == () and done.dtype == jnp.bool_ and result.dtype == jnp.int32
    with count_compilations() as c:  # init + one chunk + postprocess; no second chunk compile
        sol = inv.solve(problem, solver, max_steps=3, throw=False, driver=inv.HostLoop(chunk_size=1), key=key)
    assert c["lower"] <= 3, c
    assert sol.stats["num_steps"] <= 3
    if isinstance(problem, inv.HasResidual):  # the unknowns and the fields, by name
        assert isinstance(sol.value, dict) and len(sol.value) >= len(problem.init_params())
        assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(sol.value))
    else:
        assert jax.tree.structure(sol.value) == jax.tree.structure(problem.init_params())


def test_every_solver_is_in_the_table():
    exported = {n for n in inv.solvers.__all__
                if isinstance(getattr(inv.solvers, n), type) and issubclass(getattr(inv.solvers, n), inv.AbstractSolver)}
    covered = {type(make()).__name__ for make in SOLVERS.values()}
    assert exported == covered, exported ^ covered
    assert set(TAKES) == set(SOLVERS) and all(t <= set(PROBLEMS) for t in TAKES.values())
    assert set(FAST) == set(SOLVERS) and all(FAST[s] <= TAKES[s] for s in SOLVERS)


def test_the_beyond_imaging_table_matches_the_contracts():
    """docs/beyond-imaging.md's solver x problem table says what `TAKES` says."""
    from pathlib import Path

    rows = {"`wave.fwi`": "fwi", "`scattering.born`": "born", "`scattering.lippmann_schwinger`": "lippmann-schwinger",
            "`navier_stokes.initial_condition`": "ns-initial", "`navier_stokes.parameters`": "ns-parameters"}
    columns = [("map-adam", "map-lbfgs"), ("cgls", "landweber", "chambolle-pock"), ("pnp-pgd-tv", "pnp-admm-l1"),
               ("nuts",), ("eki",), None, ("mbir",)]  # None: the diffusion samplers (tested on the vector problem)
    text = (Path(__file__).parents[1] / "docs" / "beyond-imaging.md").read_text()
    seen = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] not in rows:
            continue
        seen.add(cells[0])
        problem = rows[cells[0]]
        for solvers, cell in zip(columns, cells[1:], strict=True):
            if solvers is not None:
                assert cell.startswith("✓") == all(problem in TAKES[s] for s in solvers), (cells[0], solvers, cell)
    assert seen == set(rows)
