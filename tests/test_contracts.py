"""Every solver x every problem: capability check, and a state that does not change type
between init and step (else every solve compiles twice)."""

import functools

import jax
import jax.numpy as jnp
import optax
import pytest

import invsolve as inv
from invsolve.problems import flame, poisson, tomography, tumor
from helpers import count_compilations

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
}
SOLVERS = {
    "cg": lambda: inv.solvers.CG(),
    "pcg-jacobi": lambda: inv.solvers.PCG(),
    "pcg-multigrid": lambda: inv.solvers.PCG(inv.solvers.Multigrid(coarsest=16)),
    "map-adam": lambda: inv.solvers.GradientMAP(optax.adam(1e-2), prior=inv.priors.TV(1e-3)),
    "map-lbfgs": lambda: inv.solvers.GradientMAP(optax.lbfgs(), prior=inv.priors.Tikhonov(1e-2, order=1)),
    "cgls": lambda: inv.solvers.CGLS(),
    "landweber": lambda: inv.solvers.Landweber(),
    "chambolle-pock": lambda: inv.solvers.ChambollePock(lam=0.1),
    "pinn": lambda: inv.solvers.PINN(optax.adam(1e-3), hidden=(8,), n_collocation=16, steps=3),
    "dcdm": lambda: inv.solvers.DCDM(inv.solvers.dcdm.DCDMModel.init(2, jax.random.key(0), features=4, levels=1, blocks=1)),
    "pnp-pgd-tv": lambda: inv.solvers.PnPPGD(inv.priors.TV(0.1, prox_steps=5)),
    "pnp-admm-l1": lambda: inv.solvers.PnPADMM(inv.priors.L1(0.01), rho=1.0, cg_steps=3),
    "nuts": lambda: inv.solvers.NUTS(n_samples=3, n_warmup=2, prior=inv.priors.Tikhonov(1.0), max_tree_depth=3),
    "database": lambda: _tumor_bank(),
    "database-refined": lambda: _tumor_bank().refine(inv.solvers.GradientMAP(optax.adam(1e-2))),
}


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


@pytest.mark.parametrize("pname", list(PROBLEMS))
@pytest.mark.parametrize("sname", list(SOLVERS))
def test_contract(pname, sname):
    problem, solver = PROBLEMS[pname](), SOLVERS[sname]()
    compatible = all(isinstance(problem, c) for c in solver.requires)
    if not compatible:
        with pytest.raises(inv.ProblemSolverIncompatible, match=type(solver).__name__):
            inv.solve(problem, solver)
        return
    if isinstance(solver, (inv.solvers.CG, inv.solvers.PCG, inv.solvers.DCDM)) and not problem.operator().symmetric:
        with pytest.raises(ValueError, match="needs a symmetric positive definite operator"):
            inv.solve(problem, solver)
        return
    if isinstance(solver, (inv.solvers.PnPPGD, inv.solvers.PnPADMM)) and not hasattr(problem.init_params(), "shape"):
        with pytest.raises(inv.ProblemSolverIncompatible, match="unknown is one array"):
            inv.solve(problem, solver)
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
