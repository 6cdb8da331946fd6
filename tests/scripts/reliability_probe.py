"""Reliability probe of invsolve's public API (issue 18).

Feeds bad and edge inputs through the public API and classifies what happens:

* ``clear-error``: an exception of a builtin-ish type (ValueError, TypeError, MemoryError,
  FileNotFoundError) or one of invsolve's own classes, raised from invsolve's code (or by a
  traced ``eqx.error_if`` check), whose message names the offending argument or says what was
  expected (each case gives that fragment as a regular expression).
* ``handled``: the call ran and, where a truth is known, gave the right answer; or a run that
  must not succeed (divergence, overflow, a budget cut short) reported a result code other
  than ``successful``.
* ``unhelpful-error``: an exception that is not clear (another type, a last frame inside
  jax/jaxlib/equinox/optax/flax/numpy, a message that does not name the argument), a hang,
  a valid input refused, or a non-successful result where the argument should have been
  refused at the boundary.
* ``silent-wrong``: a wrong or non-finite answer reported ``successful``, or a bad input
  accepted without a word.

Each case is a small function with its expectation: ``"error"`` (must raise clearly),
``"ok"`` (must run; the function checks the answer), or ``"fail"`` (must raise clearly or
return a solution whose result is not ``successful``).

Run: ``python tests/scripts/reliability_probe.py [-k SUBSTRING] [-v]``. Prints one line per
case and a summary; exits 1 if any case is silent-wrong or more than 5 are unhelpful.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
if os.environ.get("PROBE_CACHE"):  # a persistent compilation cache speeds up repeated runs
    jax.config.update("jax_compilation_cache_dir", os.environ["PROBE_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import invsolve as inv  # noqa: E402
from invsolve import metrics  # noqa: E402
from invsolve.io import CheckpointError  # noqa: E402
from invsolve.priors import GaussianMixture  # noqa: E402
from invsolve.problems import blur, flame, phantoms, poisson, tomography, tumor  # noqa: E402

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TMP = tempfile.mkdtemp(prefix="invsolve-probe-")
atexit.register(shutil.rmtree, TMP, ignore_errors=True)

# --------------------------------------------------------------------------------------
# the harness
# --------------------------------------------------------------------------------------
CASES = []


class Case:
    def __init__(self, name, expect, match, fn, timeout):
        self.name, self.expect, self.match, self.fn, self.timeout = name, expect, match, fn, timeout


def case(name, expect, match=None, timeout=90):
    """Register ``fn`` as a case. ``expect``: "error", "ok" or "fail"; ``match``: a regular
    expression the error message must contain (case-insensitive)."""
    assert expect in ("error", "ok", "fail")

    def deco(fn):
        CASES.append(Case(name, expect, match, fn, timeout))
        return fn

    return deco


def add(name, expect, fn, match=None, timeout=90):
    CASES.append(Case(name, expect, match, fn, timeout))


class Wrong(Exception):
    """The call returned (successfully), but the answer is wrong."""


class NotWorking(Exception):
    """A valid call did not work (it reported failure where it should have succeeded)."""


class Hang(Exception):
    pass


class CliFailure(Exception):
    """A command exited non-zero; ``stderr`` is what the user saw."""

    def __init__(self, rc, stderr):
        super().__init__(stderr)
        self.rc, self.stderr = rc, stderr


def need(cond, what):
    if not bool(cond):
        raise Wrong(what)


def all_finite(tree):
    return all(bool(jnp.all(jnp.isfinite(jnp.asarray(x)))) for x in jax.tree.leaves(tree))


def works(sol):
    """A valid solve must be successful (else NotWorking) with a finite value (else Wrong)."""
    if int(sol.result) != inv.RESULTS.successful:
        raise NotWorking(f"result {sol.result}")
    need(all_finite(sol.value), "the value is not finite")
    return sol


ALLOWED = (ValueError, TypeError, MemoryError, FileNotFoundError, inv.SolveError, CheckpointError,
           inv.ProblemSolverIncompatible, flame.NewtonFailed)
THIRD_PARTY = re.compile(r"[/\\](jax|jaxlib|equinox|optax|flax|blackjax|numpy|scipy|diffrax)[/\\]")
OPAQUE = re.compile(r"'NoneType' object|has no attribute|object is not (iterable|subscriptable|callable)"
                    r"|unsupported operand"
                    r"|not supported between|invalid literal|could not be broadcast|incompatible shapes|cannot reshape"
                    r"|is not a valid JAX|not a valid value for jnp|unexpected PRNG key|invalid PRNG key")
TRACED = ("EquinoxRuntimeError", "_EquinoxRuntimeError", "XlaRuntimeError", "JaxRuntimeError")


def judge_exception(c, exc):
    """(class, detail) of an exception raised by case ``c``."""
    msg = exc.stderr if isinstance(exc, CliFailure) else str(exc)
    short = " ".join(msg.split())[:160]
    if isinstance(exc, Hang):
        return "unhelpful-error", f"no answer within {c.timeout} s"
    if isinstance(exc, NotWorking):
        return "unhelpful-error", f"a valid call did not work: {short}"
    if isinstance(exc, CliFailure):
        if "Traceback (most recent call last)" in msg:
            last = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
            return "unhelpful-error", f"exit {exc.rc} with a traceback: {last[:140]}"
        why = "" if c.match is None or re.search(c.match, msg, re.I) else f" (message lacks /{c.match}/)"
        return ("unhelpful-error" if why else "clear-error"), f"exit {exc.rc}: {short}{why}"
    name = type(exc).__name__
    if name in TRACED:  # a traced check (eqx.error_if): the message is what counts
        ok = c.match is not None and re.search(c.match, msg, re.I)
        m = re.search(r"(?:EquinoxRuntimeError: )([^\n]+)", msg)
        return ("clear-error" if ok else "unhelpful-error"), f"{name} (traced): {(m.group(1) if m else short)[:150]}"
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1].filename if frames else ""
    shown = os.path.relpath(last, ROOT) if last.startswith(ROOT) else last.split("site-packages/")[-1]
    where = f" @ {shown}:{frames[-1].lineno}" if frames else ""
    if not isinstance(exc, ALLOWED):
        return "unhelpful-error", f"{name}: {short}{where}"
    if THIRD_PARTY.search(last) and "/invsolve/" not in last:
        return "unhelpful-error", f"{name} from inside a dependency: {short}{where}"
    if OPAQUE.search(msg):
        return "unhelpful-error", f"{name}, an opaque message: {short}{where}"
    if c.match is not None and not re.search(c.match, msg, re.I):
        return "unhelpful-error", f"{name}, message lacks /{c.match}/: {short}"
    return "clear-error", f"{name}: {short}"


def judge(c, out):
    """(class, detail) of a case that returned ``out``."""
    result = getattr(out, "result", None)
    code = None if result is None else np.asarray(result)
    if c.expect == "error":
        if code is not None and np.all(code != inv.RESULTS.successful):
            got = inv.RESULTS(int(code.ravel()[0]))
            return "unhelpful-error", f"not refused at the boundary; the solve reported {got}"
        return "silent-wrong", "the bad input was accepted: " + (repr(out)[:100] if out is not None else "no error")
    if c.expect == "fail":
        if code is None:
            return "silent-wrong", f"returned {type(out).__name__} with no result code"
        if np.any(code == inv.RESULTS.successful):
            return "silent-wrong", "reported successful"
        return "handled", f"reported {', '.join(sorted({str(inv.RESULTS(int(v))) for v in code.ravel()}))}"
    if code is not None:  # "ok" and a solution: must have worked
        if np.any(code != inv.RESULTS.successful):
            return "unhelpful-error", f"a valid solve reported {inv.RESULTS(int(code.ravel()[0]))}"
        if not all_finite(out.value):
            return "silent-wrong", "successful with a non-finite value"
    return "handled", "ok"


def _alarm(signum, frame):
    raise Hang()


def run_case(c):
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(c.timeout)
    try:
        out = c.fn()
        cls, detail = judge(c, out)
    except Wrong as e:
        cls, detail = "silent-wrong", f"wrong answer: {e}"
    except Exception as e:  # noqa: BLE001 - classifying every failure is the point
        if c.expect == "ok" and not isinstance(e, (Hang, NotWorking)):
            k, d = judge_exception(c, e)
            cls, detail = "unhelpful-error", f"a valid call raised: {d}"
        else:
            cls, detail = judge_exception(c, e)
    finally:
        signal.alarm(0)
    return cls, detail, time.perf_counter() - t0


# --------------------------------------------------------------------------------------
# shared small inputs (built once)
# --------------------------------------------------------------------------------------
K0, K1 = jax.random.key(0), jax.random.key(1)


@functools.cache
def A8():
    return poisson.operator((8, 8))


@functools.cache
def ls8():
    return inv.LinearSystem(A8(), jnp.ones((8, 8)))


@functools.cache
def cg8():
    return inv.solve(ls8(), inv.solvers.CG(rtol=1e-10))


def cg_ok(sol, A=None, b=None):
    A = A8() if A is None else A
    b = jnp.ones(A.shape) if b is None else b
    works(sol)
    need(jnp.linalg.norm(A.mv(sol.value) - b) <= 1e-5 * jnp.linalg.norm(b), "the residual is not small")
    return sol


@functools.cache
def src7():
    """A Poisson source problem on an odd grid (CG inner solves, quick to compile)."""
    return poisson.source_identification((7, 7), 15, 0.01, key=K0)


@functools.cache
def phantom16():
    return phantoms.shepp_logan(16)


@functools.cache
def ct16():
    return tomography.sparse_view(phantom16(), 8, 0.01, key=K0)


@functools.cache
def lin3():
    M = jax.random.normal(K0, (5, 3))
    return inv.LinearInverse(inv.MatrixOperator.from_array(M), M @ jnp.ones(3), inv.GaussianNoise(0.3), jnp.ones(3))


@functools.cache
def mixture():
    gm = GaussianMixture.random(K0, 4, 2, spread=2.0, scale=0.5)
    M = jax.random.normal(jax.random.key(4), (3, 4)) / 2.0
    x = gm.draw(jax.random.key(6), 1)[0]
    y = M @ x + 0.1 * jax.random.normal(jax.random.key(7), (3,))
    return gm, inv.LinearInverse(inv.MatrixOperator.from_array(M), y, inv.GaussianNoise(0.1), x)


@functools.cache
def box12():
    return tumor.homogeneous_box((12, 12), spacing_mm=3.0)


@functools.cache
def tumor_problem():
    return tumor.segmentation_inverse(box12(), tumor.Params(0.3, 0.05, (0.5, 0.5), 50.0), key=K0)


@functools.cache
def kpp():
    return tumor.FisherKPP1D(n_ic=16, n_bc=8, n_eval=9)


def tmp(name):
    return os.path.join(TMP, name)


def x32():
    """Float32 arithmetic for the cases that test it."""
    return jax.enable_x64(False)


# ======================================================================================
# 1. solve(): types of its arguments
# ======================================================================================
add("solve: problem=None", "error", lambda: inv.solve(None, inv.solvers.CG()), "problem")
add("solve: problem is an array", "error", lambda: inv.solve(jnp.ones((8, 8)), inv.solvers.CG()), "problem")
add("solve: solver=None", "error", lambda: inv.solve(ls8(), None), "solver")
add("solve: solver is a string", "error", lambda: inv.solve(ls8(), "CG"), "solver")
add("solve: solver is a class, not an instance", "error", lambda: inv.solve(ls8(), inv.solvers.CG), "solver")
add("solve: key=3 (an int)", "error", lambda: inv.solve(ls8(), inv.solvers.CG(), key=3), "key")
add("solve: key='a'", "error", lambda: inv.solve(ls8(), inv.solvers.CG(), key="a"), "key")
add("solve: key is an array of keys", "error",
    lambda: inv.solve(ls8(), inv.solvers.CG(), key=jax.random.split(K0, 2)), "key")
add("solve: key is a float array", "error",
    lambda: inv.solve(ls8(), inv.solvers.CG(), key=np.ones(2, np.float32)), "key")
add("solve: stochastic solver without key", "error",
    lambda: inv.solve(mixture()[1], inv.solvers.DPS(mixture()[0], n_steps=5, n_samples=2)), "key")


@case("solve: legacy uint32 PRNGKey", "ok")
def _():
    return cg_ok(inv.solve(ls8(), inv.solvers.CG(rtol=1e-10), key=jax.random.PRNGKey(0)))


add("solve: max_steps=-1", "error", lambda: inv.solve(ls8(), inv.solvers.CG(), max_steps=-1), "max_steps")
add("solve: max_steps=2.5", "error", lambda: inv.solve(ls8(), inv.solvers.CG(), max_steps=2.5), "max_steps")
add("solve: max_steps='10'", "error", lambda: inv.solve(ls8(), inv.solvers.CG(), max_steps="10"), "max_steps")
add("solve: max_steps=True", "error", lambda: inv.solve(ls8(), inv.solvers.CG(), max_steps=True, throw=False),
    "max_steps")
add("solve: max_steps=nan", "error", lambda: inv.solve(ls8(), inv.solvers.CG(), max_steps=float("nan")), "max_steps")
add("solve: max_steps=10**12 (beyond int32)", "error",
    lambda: inv.solve(ls8(), inv.solvers.CG(), max_steps=10**12), "max_steps")


@case("solve: max_steps=np.int64(200)", "ok")
def _():
    return cg_ok(inv.solve(ls8(), inv.solvers.CG(rtol=1e-10), max_steps=np.int64(200)))


@case("solve: max_steps=0 on b != 0", "fail")
def _():
    return inv.solve(ls8(), inv.solvers.CG(), max_steps=0, throw=False)


@case("solve: max_steps=0 on b = 0", "ok")
def _():
    sol = works(inv.solve(inv.LinearSystem(A8(), jnp.zeros((8, 8))), inv.solvers.CG(), max_steps=0))
    need(jnp.all(sol.value == 0), "x != 0")
    return sol


add("solve: driver='host'", "error", lambda: inv.solve(ls8(), inv.solvers.CG(), driver="host"), "driver")
add("solve: HostLoop inside jit", "error",
    lambda: jax.jit(lambda b: inv.solve(inv.LinearSystem(A8(), b), inv.solvers.CG(), driver=inv.HostLoop()).value)(
        jnp.ones((8, 8))), "HostLoop")


@case("solve: state= from a smaller problem", "error", match=r"state=")
def _():
    st = inv.solve(inv.LinearSystem(poisson.operator((4, 4)), jnp.ones((4, 4))), inv.solvers.CG()).state
    return inv.solve(ls8(), inv.solvers.CG(), state=st)


@case("solve: state= of GradientMAP given to CG", "error", match=r"state=")
def _():
    st = inv.solve(src7(), inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=2)).state
    return inv.solve(inv.LinearSystem(poisson.operator((7, 7)), jnp.ones((7, 7))), inv.solvers.CG(), state=st)


add("solve: state= a dict", "error", lambda: inv.solve(ls8(), inv.solvers.CG(), state={"x": jnp.zeros((8, 8))}),
    r"state=")


@case("solve: state= of a batch solve given to one solve", "error", match=r"state=")
def _():
    sols = inv.solve_batch([ls8(), inv.LinearSystem(A8(), 2 * jnp.ones((8, 8)))], inv.solvers.CG())
    return inv.solve(ls8(), inv.solvers.CG(), state=sols.state)


@case("solve: state= of the same solve continues (0 steps)", "ok")
def _():
    sol = cg_ok(inv.solve(ls8(), inv.solvers.CG(rtol=1e-10), state=cg8().state))
    need(sol.stats["num_steps"] == 0, "it took steps again")
    return sol


# ======================================================================================
# 2. incompatible problem / solver pairs
# ======================================================================================
add("pair: CG on a PoissonInverse", "error", lambda: inv.solve(src7(), inv.solvers.CG()), "HasLinearOperator")
add("pair: CG on a CT problem (not symmetric)", "error", lambda: inv.solve(ct16(), inv.solvers.CG()), "symmetric")
add("pair: PINN on a LinearSystem", "error", lambda: inv.solve(ls8(), inv.solvers.PINN(steps=2), key=K0),
    "HasResidual")
add("pair: GradientMAP on FisherKPP1D", "error",
    lambda: inv.solve(kpp(), inv.solvers.GradientMAP(optax.adam(1e-2))), "HasForward")
add("pair: CGLS on a PoissonInverse", "error", lambda: inv.solve(src7(), inv.solvers.CGLS()), "HasLinearOperator")
add("pair: NUTS without prior on a LinearInverse", "error",
    lambda: inv.solve(lin3(), inv.solvers.NUTS(n_samples=10, n_warmup=0), key=K0), "prior")
add("pair: PCG(Multigrid) on a MatrixOperator", "error",
    lambda: inv.solve(inv.LinearSystem(inv.MatrixOperator.from_array(np.eye(4), symmetric=True), jnp.ones(4)),
                      inv.solvers.PCG(inv.solvers.Multigrid())), "Multigrid|GridOperator")
add("pair: PCG(Jacobi) on a MatrixOperator", "error",
    lambda: inv.solve(inv.LinearSystem(inv.MatrixOperator.from_array(np.eye(4), symmetric=True), jnp.ones(4)),
                      inv.solvers.PCG(inv.solvers.Jacobi())), "Jacobi|HasDiagonal")
add("pair: DatabaseQuery on a LinearInverse", "error",
    lambda: inv.solve(lin3(), inv.solvers.DatabaseQuery(jnp.zeros((2, 3)), jnp.zeros((2, 4)), "{}", k=1)),
    "HasSimulator")
add("pair: DPS with an 4-dim mixture on a 16x16 CT problem", "error",
    lambda: inv.solve(ct16(), inv.solvers.DPS(mixture()[0], n_steps=5, n_samples=2), key=K0), "shape")
add("pair: DiffusionMBIR on a 2D problem", "error",
    lambda: inv.solve(ct16(), inv.solvers.DiffusionMBIR(mixture()[0], n_steps=5), key=K0), "stack|slices|shape")
add("pair: PnPADMM(LPN, sides multiples of 8) on a 12x12 CT problem", "error",
    lambda: inv.solve(tomography.sparse_view(phantoms.shepp_logan(12), 6, key=K0),
                      inv.solvers.PnPADMM(inv.priors.LPN.pretrained("ellipses-64"), max_steps=2)), "shape|multiple")
add("pair: DCDM(2D model) on a 3D operator", "error",
    lambda: inv.solve(inv.LinearSystem(poisson.operator((4, 4, 4)), jnp.ones((4, 4, 4))),
                      inv.solvers.DCDM(inv.solvers.dcdm.pretrained("poisson2d-64"))), "2D|3D|dimension")
add("pair: ScoreSDE with a 64x64 score prior on 16x16", "error",
    lambda: inv.solve(ct16(), inv.solvers.ScoreSDE(inv.priors.ScorePrior.pretrained("ellipses-64"), n_steps=3),
                      key=K0), "shape")


@case("pair: DCDM(2D model) on an odd 9x9 grid", "ok", timeout=120)
def _():
    A = poisson.operator((9, 9))
    b = jnp.ones((9, 9))
    sol = inv.solve(inv.LinearSystem(A, b), inv.solvers.DCDM(inv.solvers.dcdm.pretrained("poisson2d-64"), rtol=1e-6))
    works(sol)
    need(jnp.linalg.norm(A.mv(sol.value) - b) <= 1e-5 * jnp.linalg.norm(b), "the residual is not small")
    return sol


@case("pair: Landweber on a LinearSystem (square, fine)", "ok")
def _():
    return works(inv.solve(ls8(), inv.solvers.Landweber(max_steps=5)))


@case("pair: CG on a pure-Neumann system with an inconsistent b", "fail")
def _():
    A = poisson.operator((8, 8), bc="neumann")
    return inv.solve(inv.LinearSystem(A, jnp.ones((8, 8))), inv.solvers.CG(max_steps=200), throw=False)


# ======================================================================================
# 3. solver hyper-parameters
# ======================================================================================
for _name, _make, _m in [
    ("CG(rtol=-1)", lambda: inv.solvers.CG(rtol=-1), "rtol"),
    ("CG(rtol=nan)", lambda: inv.solvers.CG(rtol=float("nan")), "rtol"),
    ("CG(rtol='1e-6')", lambda: inv.solvers.CG(rtol="1e-6"), "rtol"),
    ("CG(rtol=None)", lambda: inv.solvers.CG(rtol=None), "rtol"),
    ("CG(atol=inf)", lambda: inv.solvers.CG(atol=float("inf")), "atol"),
    ("CG(max_steps=-3)", lambda: inv.solvers.CG(max_steps=-3), "max_steps"),
    ("CG(max_steps=1.5)", lambda: inv.solvers.CG(max_steps=1.5), "max_steps"),
    ("PCG(preconditioner='jacobi')", lambda: inv.solvers.PCG("jacobi"), "preconditioner"),
    ("CGLS(damp=-1)", lambda: inv.solvers.CGLS(damp=-1.0), "damp"),
    ("Landweber(step_size=0)", lambda: inv.solvers.Landweber(step_size=0.0), "step_size"),
    ("Landweber(step_size=-1)", lambda: inv.solvers.Landweber(step_size=-1.0), "step_size"),
    ("Landweber(power_iterations=0)", lambda: inv.solvers.Landweber(power_iterations=0), "power_iterations"),
    ("ChambollePock(lam=-1)", lambda: inv.solvers.ChambollePock(lam=-1.0), "lam"),
    ("ChambollePock(lam='1')", lambda: inv.solvers.ChambollePock(lam="1"), "lam"),
    ("ChambollePock(op_norm=0)", lambda: inv.solvers.ChambollePock(lam=1.0, op_norm=0.0), "op_norm"),
    ("GradientMAP(optimizer='adam')", lambda: inv.solvers.GradientMAP("adam"), "optimizer"),
    ("GradientMAP(optax.adam) (the factory)", lambda: inv.solvers.GradientMAP(optax.adam), "optimizer"),
    ("GradientMAP(prior=1.0)", lambda: inv.solvers.GradientMAP(optax.adam(1e-2), prior=1.0), "prior"),
    ("GradientMAP(gtol=-1)", lambda: inv.solvers.GradientMAP(optax.adam(1e-2), gtol=-1.0), "gtol"),
    ("GradientMAP(max_steps=-1)", lambda: inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=-1), "max_steps"),
    ("PnPPGD(prior=Tikhonov) (no prox)", lambda: inv.solvers.PnPPGD(inv.priors.Tikhonov(1.0)), "prox"),
    ("PnPPGD(eta=0)", lambda: inv.solvers.PnPPGD(inv.priors.TV(0.1), eta=0.0), "eta"),
    ("PnPADMM(TV) without rho", lambda: inv.solvers.PnPADMM(inv.priors.TV(0.1)), "rho"),
    ("PnPADMM(rho=-1)", lambda: inv.solvers.PnPADMM(inv.priors.TV(0.1), rho=-1.0), "rho"),
    ("DPS(prior=TV)", lambda: inv.solvers.DPS(inv.priors.TV(0.1)), "prior"),
    ("DPS(n_steps=0)", lambda: inv.solvers.DPS(mixture()[0], n_steps=0), "n_steps"),
    ("DPS(n_steps=2.0)", lambda: inv.solvers.DPS(mixture()[0], n_steps=2.0), "n_steps"),
    ("DPS(n_samples=0)", lambda: inv.solvers.DPS(mixture()[0], n_samples=0), "n_samples"),
    ("DPS(zeta=-1)", lambda: inv.solvers.DPS(mixture()[0], zeta=-1.0), "zeta"),
    ("ScoreSDE(snr=-1)", lambda: inv.solvers.ScoreSDE(mixture()[0], snr=-1.0), "snr"),
    ("REDDiff without optimizer", lambda: inv.solvers.REDDiff(mixture()[0]), "optimizer"),
    ("NUTS(n_samples=1)", lambda: inv.solvers.NUTS(n_samples=1), "n_samples"),
    ("NUTS(target_acceptance=1.5)", lambda: inv.solvers.NUTS(target_acceptance=1.5), "target_acceptance"),
    ("NUTS(prior='gauss')", lambda: inv.solvers.NUTS(prior="gauss"), "prior"),
    ("PINN(hidden=(0,))", lambda: inv.solvers.PINN(hidden=(0,)), "hidden"),
    ("PINN(n_collocation=0)", lambda: inv.solvers.PINN(n_collocation=0), "n_collocation"),
    ("PINN(steps=-1)", lambda: inv.solvers.PINN(steps=-1), "steps"),
    ("PINN(optimizer='adam')", lambda: inv.solvers.PINN(optimizer="adam"), "optimizer"),
    ("PINN(devices=3, n_collocation=16)", lambda: inv.solvers.PINN(n_collocation=16, devices=3), "devices"),
    ("DCDM(model='unet')", lambda: inv.solvers.DCDM("unet"), "model"),
    ("DCDM(rtol=0)", lambda: inv.solvers.DCDM(inv.solvers.dcdm.pretrained("poisson2d-64"), rtol=0.0), "rtol"),
    ("Tikhonov(alpha=-1)", lambda: inv.priors.Tikhonov(-1.0), "alpha"),
    ("Tikhonov(alpha=nan)", lambda: inv.priors.Tikhonov(float("nan")), "alpha"),
    ("Tikhonov(alpha=inf)", lambda: inv.priors.Tikhonov(float("inf")), "alpha"),
    ("Tikhonov(alpha='1')", lambda: inv.priors.Tikhonov("1"), "alpha"),
    ("Tikhonov(alpha=None)", lambda: inv.priors.Tikhonov(None), "alpha"),
    ("Tikhonov(order=3)", lambda: inv.priors.Tikhonov(1.0, order=3), "order"),
    ("TV(alpha=-1)", lambda: inv.priors.TV(-1.0), "alpha"),
    ("TV(eps=-1)", lambda: inv.priors.TV(0.1, eps=-1.0), "eps"),
    ("L1(lam=-1)", lambda: inv.priors.L1(-1.0), "lam"),
    ("HostLoop(chunk_size=0)", lambda: inv.HostLoop(chunk_size=0), "chunk_size"),
    ("HostLoop(chunk_size='a')", lambda: inv.HostLoop(chunk_size="a"), "chunk_size"),
    ("HostLoop(callback=1)", lambda: inv.HostLoop(callback=1), "callback"),
    ("HostLoop(checkpoint=123)", lambda: inv.HostLoop(checkpoint=123), "checkpoint"),
]:
    add(f"param: {_name}", "error", _make, _m)


@case("param: CG(rtol=1e10) (a tolerance x = 0 meets)", "error", match="rtol")
def _():
    return inv.solve(ls8(), inv.solvers.CG(rtol=1e10))


@case("param: CG(rtol=np.float32(1e-6))", "ok")
def _():
    return cg_ok(inv.solve(ls8(), inv.solvers.CG(rtol=np.float32(1e-6))))


@case("param: CG(max_steps=10**12) (beyond int32)", "error", match="max_steps")
def _():
    return inv.solve(ls8(), inv.solvers.CG(max_steps=10**12))


@case("param: GradientMAP(theta0 of the wrong shape)", "error", match="theta0")
def _():
    return inv.solve(src7(), inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=2, theta0=jnp.zeros((4, 4))))


@case("param: GradientMAP(theta0 a dict for an array unknown)", "error", match="theta0")
def _():
    return inv.solve(src7(), inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=2, theta0={"f": jnp.zeros((7, 7))}))


@case("param: GradientMAP(max_steps=0) returns the start", "ok")
def _():
    sol = works(inv.solve(src7(), inv.solvers.GradientMAP(optax.adam(1e-2), max_steps=0)))
    need(jnp.all(sol.value == src7().init_params()), "not the start")
    return sol


@case("param: Tikhonov(np.float32(1.0)) and max_steps=np.int32(3)", "ok")
def _():
    return works(inv.solve(src7(), inv.solvers.GradientMAP(optax.adam(1e-2), prior=inv.priors.Tikhonov(np.float32(1.0)),
                                                        max_steps=np.int32(3))))


@case("param: PINN(weights={'bogus': 10}) (a misspelt loss term)", "error", match="weights|bogus")
def _():
    return inv.solve(kpp(), inv.solvers.PINN(hidden=(8,), n_collocation=16, steps=2, warmup_steps=0,
                                             weights={"bogus": 10.0}), key=K0)


@case("param: PINN on FisherKPP1D, 3 steps", "ok", timeout=120)
def _():
    sol = inv.solve(kpp(), inv.solvers.PINN(hidden=(8,), n_collocation=16, steps=3, warmup_steps=0), key=K0)
    works(sol)
    need(sol.stats["num_steps"] == 3, "not 3 steps")
    return sol


@case("param: PINN cut short by max_steps", "fail", timeout=120)
def _():
    return inv.solve(kpp(), inv.solvers.PINN(hidden=(8,), n_collocation=16, steps=5, warmup_steps=0), key=K0,
                     max_steps=2, throw=False)


# ======================================================================================
# 4. divergence, overflow, non-finite values inside a run
# ======================================================================================
@case("run: GradientMAP(optax.sgd(1e4)) diverges", "fail")
def _():
    return inv.solve(src7(), inv.solvers.GradientMAP(optax.sgd(1e4), max_steps=30), throw=False)


@case("run: GradientMAP(optax.adam(-1e-1)) (a negative learning rate)", "fail")
def _():
    return inv.solve(src7(), inv.solvers.GradientMAP(optax.adam(-1e-1), max_steps=60), throw=False)


@case("run: GradientMAP(optax.adam(nan))", "fail")
def _():
    return inv.solve(src7(), inv.solvers.GradientMAP(optax.adam(float("nan")), max_steps=5), throw=False)


@case("run: GradientMAP(optax.sgd(1e4)) in float32", "fail")
def _():
    with x32():
        p = poisson.source_identification((7, 7), 15, 0.01, key=K0)
        return inv.solve(p, inv.solvers.GradientMAP(optax.sgd(1e4), max_steps=30), throw=False)


@case("run: Landweber(step_size=1e3) (far above 2/||A||^2)", "fail")
def _():
    return inv.solve(ct16(), inv.solvers.Landweber(step_size=1e3, max_steps=20), throw=False)


@case("run: ChambollePock(op_norm=1e-3) (a far too small norm)", "fail")
def _():
    return inv.solve(ct16(), inv.solvers.ChambollePock(lam=0.1, op_norm=1e-3, max_steps=30), throw=False)


@case("run: PnPPGD(TV, eta=1e4) (a far too large step)", "fail")
def _():
    return inv.solve(ct16(), inv.solvers.PnPPGD(inv.priors.TV(0.01, prox_steps=5), eta=1e4, max_steps=30), throw=False)


@case("run: CG in float32 with b = 1e20 (||b|| overflows)", "fail")
def _():
    with x32():
        A = poisson.operator((8, 8))
        return inv.solve(inv.LinearSystem(A, jnp.full((8, 8), 1e20, jnp.float32)), inv.solvers.CG(), throw=False)


@case("run: CGLS in float32 with y = 1e30", "fail")
def _():
    with x32():
        M = inv.MatrixOperator.from_array(jnp.eye(4, dtype=jnp.float32) * 3)
        p = inv.LinearInverse(M, jnp.full((4,), 1e30, jnp.float32), inv.GaussianNoise(jnp.float32(1.0)))
        return inv.solve(p, inv.solvers.CGLS(), throw=False)


@case("run: kappa = 1e300 overflows the face coefficients", "fail")
def _():
    A = poisson.operator((8, 8), kappa=1e300)
    return inv.solve(inv.LinearSystem(A, jnp.ones((8, 8))), inv.solvers.CG(), throw=False)


@case("run: NaN data traced under jit give nonfinite", "fail")
def _():
    f = jax.jit(lambda b: inv.solve(inv.LinearSystem(A8(), b), inv.solvers.CG(), throw=False).result)
    return type("R", (), {"result": f(jnp.full((8, 8), jnp.nan))})()


@case("run: DPS(zeta=1e3) misses the data", "fail", timeout=120)
def _():
    gm, p = mixture()
    return inv.solve(p, inv.solvers.DPS(gm, n_steps=20, zeta=1e3, n_samples=4), key=K1, throw=False)


@case("run: DPS cut short by max_steps", "fail", timeout=120)
def _():
    gm, p = mixture()
    return inv.solve(p, inv.solvers.DPS(gm, n_steps=10, zeta=0.05, n_samples=2), key=K1, max_steps=3, throw=False)


@case("run: NUTS with max_steps=0 (no draws)", "fail", timeout=120)
def _():
    return inv.solve(lin3(), inv.solvers.NUTS(n_samples=10, n_warmup=0, prior=inv.priors.Tikhonov(2.0)), key=K0,
                     max_steps=0, throw=False)


@case("run: DPS on a mixture, a proper run", "ok", timeout=120)
def _():
    gm, p = mixture()
    return works(inv.solve(p, inv.solvers.DPS(gm, n_steps=20, zeta=0.5, n_samples=4), key=K1))


# ======================================================================================
# 5. problems: LinearSystem / LinearInverse / GaussianNoise / MatrixOperator
# ======================================================================================
add("LinearSystem: b a nested list", "ok",
    lambda: cg_ok(inv.solve(inv.LinearSystem(A8(), np.ones((8, 8)).tolist()), inv.solvers.CG(rtol=1e-10))))
add("LinearSystem: A a string", "error", lambda: inv.LinearSystem("A", jnp.ones((8, 8))), "operator|A ")
add("LinearSystem: b of the wrong shape", "error", lambda: inv.LinearSystem(A8(), jnp.ones(64)), "shape")
add("LinearSystem: b with NaN", "error", lambda: inv.LinearSystem(A8(), jnp.ones((8, 8)).at[0, 0].set(jnp.nan)), "NaN")
add("LinearSystem: b with inf", "error", lambda: inv.LinearSystem(A8(), jnp.ones((8, 8)).at[0, 0].set(jnp.inf)),
    "infinite")


@case("LinearSystem: integer b through poisson.linear_system", "ok")
def _():
    return cg_ok(inv.solve(poisson.linear_system(A8(), np.ones((8, 8), int)), inv.solvers.CG(rtol=1e-10)))


add("LinearInverse: noise=0.1 (a float: the Gaussian sigma)", "ok",
    lambda: works(inv.solve(inv.LinearInverse(inv.MatrixOperator.from_array(np.eye(3)), jnp.ones(3), 0.1),
                            inv.solvers.CGLS())))
add("LinearInverse: noise='0.1' (a string)", "error",
    lambda: inv.LinearInverse(inv.MatrixOperator.from_array(np.eye(3)), jnp.ones(3), "0.1"), "noise")
add("LinearInverse: a per-datum sigma of the wrong shape", "error",
    lambda: inv.LinearInverse(inv.MatrixOperator.from_array(np.eye(4)), jnp.ones(4), inv.GaussianNoise(np.ones(3))),
    "sigma|noise")
add("LinearInverse: y_obs of the wrong shape", "error",
    lambda: inv.LinearInverse(inv.MatrixOperator.from_array(np.eye(4)), jnp.ones(5), inv.GaussianNoise(1.0)), "shape")
add("LinearInverse: y_obs with inf", "error",
    lambda: inv.LinearInverse(inv.MatrixOperator.from_array(np.eye(4)), jnp.ones(4).at[1].set(jnp.inf),
                              inv.GaussianNoise(1.0)), "infinite")
add("LinearInverse: x_true of the wrong shape", "error",
    lambda: inv.LinearInverse(inv.MatrixOperator.from_array(np.eye(4)), jnp.ones(4), inv.GaussianNoise(1.0),
                              jnp.ones(3)), "x_true")
add("LinearInverse: y_obs a list", "ok",
    lambda: works(inv.solve(inv.LinearInverse(inv.MatrixOperator.from_array(np.eye(3) * 2), [1.0, 2.0, 3.0],
                                              inv.GaussianNoise(1.0)), inv.solvers.CGLS())))
add("GaussianNoise(0)", "error", lambda: inv.GaussianNoise(0.0), "sigma")
add("GaussianNoise(-1)", "error", lambda: inv.GaussianNoise(-1.0), "sigma")
add("GaussianNoise(nan)", "error", lambda: inv.GaussianNoise(float("nan")), "sigma")
add("GaussianNoise('0.1')", "error", lambda: inv.GaussianNoise("0.1"), "sigma")
add("GaussianNoise(None)", "error", lambda: inv.GaussianNoise(None), "sigma")
add("GaussianNoise(0) traced under jit", "error",
    lambda: jax.jit(lambda s: inv.GaussianNoise(s).sigma)(0.0).block_until_ready(), "sigma")
add("MatrixOperator.from_array(1D)", "error", lambda: inv.MatrixOperator.from_array(np.ones(3)), "2D|matrix")
add("MatrixOperator.from_array(in_shape mismatch)", "error",
    lambda: inv.MatrixOperator.from_array(np.ones((4, 4)), in_shape=(3,)), "shape|map")
add("with_observations: NaN data", "error", lambda: ct16().with_observations(ct16().y_obs.at[0, 0].set(jnp.nan)), "NaN")
add("with_observations: wrong shape", "error", lambda: src7().with_observations(jnp.ones(14)), "shape")


# ======================================================================================
# 6. solve_batch
# ======================================================================================
add("solve_batch: an empty list", "error", lambda: inv.solve_batch([], inv.solvers.CG()), "empty")
add("solve_batch: a list of ints", "error", lambda: inv.solve_batch([1, 2], inv.solvers.CG()), "problem")
add("solve_batch: instances of different shapes", "error",
    lambda: inv.solve_batch([ls8(), inv.LinearSystem(poisson.operator((4, 4)), jnp.ones((4, 4)))], inv.solvers.CG()),
    "shape|stack")
add("solve_batch: the same problem twice, no keys", "error", lambda: inv.solve_batch([ls8(), ls8()], inv.solvers.CG()),
    "same problem|keys")
add("solve_batch: 3 keys for 2 problems", "error",
    lambda: inv.solve_batch([ls8(), inv.LinearSystem(A8(), 2 * jnp.ones((8, 8)))], inv.solvers.CG(),
                            jax.random.split(K0, 3)), "keys")
add("solve_batch: keys=7 (an int)", "error",
    lambda: inv.solve_batch([ls8(), inv.LinearSystem(A8(), 2 * jnp.ones((8, 8)))], inv.solvers.CG(), 7), "key")
add("solve_batch: devices=5 on fewer devices", "error",
    lambda: inv.solve_batch([ls8(), inv.LinearSystem(A8(), 2 * jnp.ones((8, 8)))], inv.solvers.CG(), devices=5),
    "devices")
add("solve_batch: devices=0", "error",
    lambda: inv.solve_batch([ls8(), inv.LinearSystem(A8(), 2 * jnp.ones((8, 8)))], inv.solvers.CG(), devices=0),
    "devices")
add("solve_batch: max_steps=-1", "error",
    lambda: inv.solve_batch([ls8(), inv.LinearSystem(A8(), 2 * jnp.ones((8, 8)))], inv.solvers.CG(), max_steps=-1),
    "max_steps")
add("solve_batch: a stacked problem with two batch lengths", "error",
    lambda: inv.solve_batch(inv.LinearInverse(inv.MatrixOperator(jnp.ones((3, 4, 4)), ((4,), (4,))), jnp.ones((2, 4)),
                                              inv.GaussianNoise(1.0)), inv.solvers.CGLS()), "batch|length|shape")


@case("solve_batch: a 1-element batch equals solve", "ok")
def _():
    sol = inv.solve_batch([ls8()], inv.solvers.CG(rtol=1e-10))
    need(sol.value.shape == (1, 8, 8), f"value shape {sol.value.shape}")
    need(jnp.max(jnp.abs(sol.value[0] - cg8().value)) < 1e-10, "differs from solve")
    return type("R", (), {"result": sol.result, "value": sol.value})()


@case("solve_batch: a tuple of problems", "ok")
def _():
    sol = inv.solve_batch((ls8(), inv.LinearSystem(A8(), 2 * jnp.ones((8, 8)))), inv.solvers.CG(rtol=1e-10))
    need(jnp.max(jnp.abs(sol.value[1] - 2 * cg8().value)) < 1e-8, "wrong second instance")
    return type("R", (), {"result": sol.result, "value": sol.value})()


@case("solve_batch: a bad instance is named", "fail")
def _():
    sol = inv.solve_batch([ls8(), inv.LinearSystem(A8(), jnp.full((8, 8), 1e300))], inv.solvers.CG(), throw=False)
    return type("R", (), {"result": sol.result[1:]})()


# ======================================================================================
# 7. poisson builders
# ======================================================================================
for _name, _fn, _m in [
    ("operator(shape=(8,))", lambda: poisson.operator((8,)), "shape"),
    ("operator(shape=(8.5, 8))", lambda: poisson.operator((8.5, 8)), "shape"),
    ("operator(shape='88')", lambda: poisson.operator("88"), "shape"),
    ("operator(shape=None)", lambda: poisson.operator(None), "shape"),
    ("operator(shape=(0, 8))", lambda: poisson.operator((0, 8)), "shape"),
    ("operator(shape=(10**6, 10**6))", lambda: poisson.operator((10**6, 10**6)), "GiB"),
    ("operator(kappa=-1)", lambda: poisson.operator((8, 8), kappa=-1.0), "kappa"),
    ("operator(kappa=nan)", lambda: poisson.operator((8, 8), kappa=float("nan")), "kappa"),
    ("operator(kappa of the wrong shape)", lambda: poisson.operator((8, 8), kappa=np.ones((4, 4))), "kappa"),
    ("operator(kappa='1')", lambda: poisson.operator((8, 8), kappa="1"), "kappa"),
    ("operator(kappa=None)", lambda: poisson.operator((8, 8), kappa=None), "kappa"),
    ("operator(bc='periodic')", lambda: poisson.operator((8, 8), bc="periodic"), "boundary|bc"),
    ("operator(bc=('dirichlet',))", lambda: poisson.operator((8, 8), bc=("dirichlet",)), "bc"),
    ("operator(bc=None)", lambda: poisson.operator((8, 8), bc=None), "bc"),
    ("operator(obstacles all solid)", lambda: poisson.operator((8, 8), obstacles=np.ones((8, 8), bool)), "obstacles"),
    ("operator(obstacles of the wrong shape)", lambda: poisson.operator((8, 8), obstacles=np.zeros((8, 4), bool)),
     "obstacles"),
    ("operator(lengths=0)", lambda: poisson.operator((8, 8), lengths=0.0), "lengths"),
    ("operator(lengths=-1)", lambda: poisson.operator((8, 8), lengths=-1.0), "lengths"),
    ("operator(lengths=(1, 2, 3) for 2D)", lambda: poisson.operator((8, 8), lengths=(1.0, 2.0, 3.0)), "lengths"),
    ("operator(lengths=nan)", lambda: poisson.operator((8, 8), lengths=float("nan")), "lengths"),
    ("linear_system(A a MatrixOperator)", lambda: poisson.linear_system(inv.MatrixOperator.from_array(np.eye(4)),
                                                                        jnp.ones(4)), "PoissonOperator"),
    ("linear_system(b with NaN)", lambda: poisson.linear_system(A8(), jnp.full((8, 8), jnp.nan)), "NaN"),
    ("source_identification(noise=0)", lambda: poisson.source_identification((7, 7), 10, 0.0, key=K0), "noise"),
    ("source_identification(noise=-0.1)", lambda: poisson.source_identification((7, 7), 10, -0.1, key=K0), "noise"),
    ("source_identification(noise='0.01')", lambda: poisson.source_identification((7, 7), 10, "0.01", key=K0),
     "noise"),
    ("source_identification(noise=None)", lambda: poisson.source_identification((7, 7), 10, None, key=K0), "noise"),
    ("source_identification(n_sensors=0)", lambda: poisson.source_identification((7, 7), 0, key=K0), "n_sensors"),
    ("source_identification(n_sensors=10.5)", lambda: poisson.source_identification((7, 7), 10.5, key=K0),
     "n_sensors"),
    ("source_identification(n_sensors=100 > 49 cells)", lambda: poisson.source_identification((7, 7), 100, key=K0),
     "n_sensors"),
    ("source_identification(key=None)", lambda: poisson.source_identification((7, 7), 10, key=None), "key"),
    ("source_identification(key=0)", lambda: poisson.source_identification((7, 7), 10, key=0), "key"),
    ("source_identification(source with NaN)",
     lambda: poisson.source_identification((7, 7), 10, key=K0, source=np.full((7, 7), np.nan)), "source"),
    ("coefficient_identification(kappa_init=0)",
     lambda: poisson.coefficient_identification((7, 7), key=K0, kappa_init=0.0), "kappa_init"),
    ("coefficient_identification(kappa_init='1')",
     lambda: poisson.coefficient_identification((7, 7), key=K0, kappa_init="1"), "kappa_init"),
    ("coefficient_identification(kappa=-1)",
     lambda: poisson.coefficient_identification((7, 7), key=K0, kappa=-np.ones((7, 7))), "kappa"),
    ("smooth_field(key=None)", lambda: poisson.smooth_field(None, (8, 8)), "key"),
]:
    add(f"poisson: {_name}", "error", _fn, _m)


@case("poisson: operator(shape=(np.int64(4), 4))", "ok")
def _():
    need(poisson.operator((np.int64(4), 4)).shape == (4, 4), "wrong shape")


@case("poisson: source_identification(noise=np.float32(0.01), n_sensors=np.int64(10))", "ok")
def _():
    need(poisson.source_identification((7, 7), np.int64(10), np.float32(0.01), key=K0).y_obs.shape == (10,), "shape")


@case("poisson: 3D source problem, n_sensors=None", "ok")
def _():
    p = poisson.source_identification((3, 3, 3), None, 0.01, key=K0)
    need(p.y_obs.shape == (3, 3, 3), "shape")


@case("poisson: float32 source of 1e30 (the forward solve overflows)", "error", match="overflow|not finite")
def _():
    with x32():
        return poisson.source_identification((7, 7), 10, 0.01, key=K0, source=jnp.full((7, 7), 1e30, jnp.float32))


@case("poisson: GradientMAP + lbfgs recovers a 7x7 source roughly", "ok", timeout=120)
def _():
    p = poisson.source_identification((7, 7), None, 0.01, key=K0)
    sol = works(inv.solve(p, inv.solvers.GradientMAP(optax.lbfgs(), prior=inv.priors.Tikhonov(1e-6), max_steps=50)))
    need(sol.metrics["rel_l2"] < 0.2, f"rel_l2 {float(sol.metrics['rel_l2']):.3g}")
    return sol


# ======================================================================================
# 8. tomography and blur
# ======================================================================================
ANG = np.linspace(0, np.pi, 6, endpoint=False)
for _name, _fn, _m in [
    ("ParallelBeam(angles in degrees)", lambda: tomography.ParallelBeam(16, np.arange(180.0)), "radians"),
    ("FanBeam(angles in degrees)", lambda: tomography.FanBeam(16, np.arange(0.0, 360.0, 10.0)), "radians"),
    ("ParallelBeam(size=16.0)", lambda: tomography.ParallelBeam(16.0, ANG), "size"),
    ("ParallelBeam(size=1)", lambda: tomography.ParallelBeam(1, ANG), "size"),
    ("ParallelBeam(angles=[])", lambda: tomography.ParallelBeam(16, []), "angles"),
    ("ParallelBeam(angles 2D)", lambda: tomography.ParallelBeam(16, np.ones((3, 2))), "angles"),
    ("ParallelBeam(angles with NaN)", lambda: tomography.ParallelBeam(16, [0.0, np.nan]), "angles"),
    ("ParallelBeam(angles=None)", lambda: tomography.ParallelBeam(16, None), "angles"),
    ("ParallelBeam(n_detectors=8 < size)", lambda: tomography.ParallelBeam(16, ANG, n_detectors=8), "n_detectors"),
    ("ParallelBeam(model='fbp')", lambda: tomography.ParallelBeam(16, ANG, model="fbp"), "model"),
    ("ParallelBeam(slices=0)", lambda: tomography.ParallelBeam(16, ANG, slices=0), "slices"),
    ("ParallelBeam(size=10**7)", lambda: tomography.ParallelBeam(10**7, ANG), "GiB"),
    ("FanBeam(source_distance=1)", lambda: tomography.FanBeam(16, ANG, source_distance=1.0), "source_distance"),
    ("FanBeam(detector='curved')", lambda: tomography.FanBeam(16, ANG, detector="curved"), "detector"),
    ("mv(an image of the wrong size)", lambda: tomography.ParallelBeam(16, ANG).mv(jnp.ones((8, 8))), "size|side"),
    ("mv(a 1D array)", lambda: tomography.ParallelBeam(16, ANG).mv(jnp.ones(16)), "image|2D"),
    ("transpose().mv(a sinogram of the wrong shape)",
     lambda: tomography.ParallelBeam(16, ANG).transpose().mv(jnp.ones((5, 16))), "sinogram"),
    ("fbp(a sinogram without op)", lambda: tomography.fbp(jnp.ones((6, 16))), "op"),
    ("fbp(filter='ramp2')", lambda: tomography.fbp(ct16(), filter="ramp2"), "filter"),
    ("fbp(a short fan-beam scan)",
     lambda: tomography.fbp(tomography.limited_angle(phantom16(), 180.0, 12, key=K0, geometry="fan")), "360|full"),
    ("sparse_view(a non-square image)", lambda: tomography.sparse_view(jnp.ones((16, 12)), 4, key=K0), "square"),
    ("sparse_view(n_angles=0)", lambda: tomography.sparse_view(phantom16(), 0, key=K0), "n_angles"),
    ("sparse_view(n_angles=2.5)", lambda: tomography.sparse_view(phantom16(), 2.5, key=K0), "n_angles"),
    ("sparse_view(noise=-1)", lambda: tomography.sparse_view(phantom16(), 4, -1.0, key=K0), "noise"),
    ("sparse_view(noise=inf)", lambda: tomography.sparse_view(phantom16(), 4, np.inf, key=K0), "noise"),
    ("sparse_view(x with NaN)", lambda: tomography.sparse_view(phantom16().at[3, 3].set(jnp.nan), 4, key=K0), "NaN"),
    ("sparse_view(geometry='cone')", lambda: tomography.sparse_view(phantom16(), 4, key=K0, geometry="cone"),
     "geometry"),
    ("sparse_view(key=None)", lambda: tomography.sparse_view(phantom16(), 4, key=None), "key"),
    ("sparse_view(key=42)", lambda: tomography.sparse_view(phantom16(), 4, key=42), "key"),
    ("limited_angle(wedge=0)", lambda: tomography.limited_angle(phantom16(), wedge=0.0, key=K0), "wedge"),
    ("limited_angle(wedge=400)", lambda: tomography.limited_angle(phantom16(), wedge=400.0, key=K0), "wedge"),
    ("limited_angle(wedge=pi/2, radians for degrees)",
     lambda: tomography.limited_angle(phantom16(), wedge=np.pi / 2, key=K0), "degrees"),
    ("low_dose(photons=0)", lambda: tomography.low_dose(phantom16(), 4, photons=0.0, key=K0), "photons"),
    ("low_dose(max_attenuation=-1)", lambda: tomography.low_dose(phantom16(), 4, key=K0, max_attenuation=-1.0),
     "max_attenuation"),
    ("low_dose(an all-zero image)", lambda: tomography.low_dose(jnp.zeros((16, 16)), 4, key=K0), "zero|empty|x"),
    ("deblur(width=0)", lambda: blur.deblur(jnp.ones((8, 8)), 0.0, key=K0), "width"),
    ("deblur(width=-1)", lambda: blur.deblur(jnp.ones((8, 8)), -1.0, key=K0), "width"),
    ("deblur(width='1')", lambda: blur.deblur(jnp.ones((8, 8)), "1", key=K0), "width"),
    ("deblur(width=nan)", lambda: blur.deblur(jnp.ones((8, 8)), float("nan"), key=K0), "width"),
    ("deblur(x 1D)", lambda: blur.deblur(jnp.ones(8), 1.0, key=K0), "shape|H, W"),
    ("deblur(x with inf)", lambda: blur.deblur(jnp.ones((8, 8)).at[0, 0].set(jnp.inf), 1.0, key=K0), "infinite|NaN"),
    ("deblur(noise=-0.1)", lambda: blur.deblur(jnp.ones((8, 8)), 1.0, -0.1, key=K0), "noise"),
    ("GaussianBlur(shape=(8,))", lambda: blur.GaussianBlur((8,), 1.0), "shape"),
    ("deblur(width=1e9)", lambda: blur.deblur(jnp.ones((8, 8)), 1e9, key=K0), "width"),
]:
    add(f"tomo: {_name}", "error", _fn, _m)


@case("tomo: mv of an integer image equals the float image", "ok")
def _():
    op = tomography.ParallelBeam(16, ANG)
    need(jnp.allclose(op.mv(np.ones((16, 16), int)), op.mv(jnp.ones((16, 16)))), "differs")


@case("tomo: mv of a nested list", "ok")
def _():
    op = tomography.ParallelBeam(16, ANG)
    need(jnp.allclose(op.mv(np.ones((16, 16)).tolist()), op.mv(jnp.ones((16, 16)))), "differs")


@case("tomo: sparse_view(noise=0) + CGLS fits the data", "ok")
def _():
    p = tomography.sparse_view(phantom16(), 8, 0.0, key=K0)
    sol = works(inv.solve(p, inv.solvers.CGLS(max_steps=200, rtol=1e-8)))
    need(jnp.linalg.norm(p.A.mv(sol.value) - p.y_obs) <= 1e-4 * jnp.linalg.norm(p.y_obs), "misfit")
    return sol


@case("tomo: sparse_view of an integer image, n_angles=np.int64", "ok")
def _():
    p = tomography.sparse_view(np.asarray(phantom16() > 0.5, int), np.int64(6), np.float32(0.01), key=K0)
    need(p.y_obs.shape == (6, 16), "shape")


@case("tomo: float32 image of 1e30 (the noise level overflows)", "ok")
def _():
    with x32():
        p = tomography.sparse_view(jnp.asarray(phantom16(), jnp.float32) * 1e30, 6, 0.01, key=K0)
        need(bool(jnp.all(jnp.isfinite(p.noise.sigma))) and float(p.noise.sigma) > 0, f"sigma {p.noise.sigma}")


@case("tomo: ChambollePock on 16x16 beats FBP", "ok", timeout=120)
def _():
    sol = works(inv.solve(ct16(), inv.solvers.ChambollePock(lam=0.05, max_steps=100)))
    x = phantom16()
    need(metrics.rel_l2(sol.value, x) < metrics.rel_l2(tomography.fbp(ct16()), x), "worse than FBP")
    return sol


@case("tomo: deblur(width=30) on 8x8 (a blur wider than the image)", "ok", timeout=15)
def _():
    p = blur.deblur(jnp.ones((8, 8)), 30.0, key=K0)
    # the image is 0 outside: each output pixel sums the kernel over the 8 pixels in reach
    k = np.exp(-0.5 * (np.arange(-120, 121) / 30.0) ** 2)
    k /= k.sum()
    i = np.arange(8)
    row = np.array([k[120 + (j - i)].sum() for j in i])
    need(np.allclose(np.asarray(p.A.mv(jnp.ones((8, 8)))), np.outer(row, row), rtol=1e-10), "wrong blur")


@case("tomo: deblur(width=np.float32(1.0), noise=np.float32(0.01))", "ok")
def _():
    need(blur.deblur(jnp.ones((8, 8)), np.float32(1.0), np.float32(0.01), key=K0).y_obs.shape == (8, 8), "shape")


# ======================================================================================
# 9. phantoms
# ======================================================================================
for _name, _fn, _m in [
    ("shepp_logan(0)", lambda: phantoms.shepp_logan(0), "size"),
    ("shepp_logan(16.0)", lambda: phantoms.shepp_logan(16.0), "size"),
    ("shepp_logan('64')", lambda: phantoms.shepp_logan("64"), "size"),
    ("shepp_logan(True)", lambda: phantoms.shepp_logan(True), "size"),
    ("shepp_logan(10**7)", lambda: phantoms.shepp_logan(10**7), "GiB"),
    ("random_ellipses(n=0)", lambda: phantoms.random_ellipses(K0, 0, 16), "n"),
    ("random_ellipses(n=2.0)", lambda: phantoms.random_ellipses(K0, 2.0, 16), "n"),
    ("random_ellipses(axes=(0.5, 0.1))", lambda: phantoms.random_ellipses(K0, 2, 16, axes=(0.5, 0.1)), "axes"),
    ("random_ellipses(p_on=2)", lambda: phantoms.random_ellipses(K0, 2, 16, p_on=2.0), "p_on"),
    ("random_ellipses(key=None)", lambda: phantoms.random_ellipses(None, 2, 16), "key"),
    ("random_ellipses(key=0)", lambda: phantoms.random_ellipses(0, 2, 16), "key"),
    ("brain_slice(kind='ct')", lambda: phantoms.brain_slice(16, kind="ct"), "kind"),
    ("axial_slices(split='holdout')", lambda: phantoms.axial_slices("holdout", 16), "split"),
]:
    add(f"phantoms: {_name}", "error", _fn, _m)


@case("phantoms: shepp_logan(np.int64(16))", "ok")
def _():
    x = phantoms.shepp_logan(np.int64(16))
    need(x.shape == (16, 16) and float(x.max()) <= 1.0, "shape or range")


@case("phantoms: random_ellipses(1 image) in [0, 1]", "ok")
def _():
    x = phantoms.random_ellipses(K0, 1, 16)
    need(x.shape == (1, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1, "shape or range")


# ======================================================================================
# 10. flame
# ======================================================================================
FP = flame.FreelyPropagating
for _name, _fn, _m in [
    ("FreelyPropagating(phi=3)", lambda: FP(phi=3.0), "phi"),
    ("FreelyPropagating(phi=0.2)", lambda: FP(phi=0.2), "phi"),
    ("FreelyPropagating(phi=nan)", lambda: FP(phi=float("nan")), "phi"),
    ("FreelyPropagating(phi=None)", lambda: FP(phi=None), "phi"),
    ("FreelyPropagating(phi=[0.4, 0.5])", lambda: FP(phi=[0.4, 0.5]), "phi"),
    ("FreelyPropagating(p=-1)", lambda: FP(p=-1.0), r"\bp\b"),
    ("FreelyPropagating(T_in=0)", lambda: FP(T_in=0.0), "T_in"),
    ("FreelyPropagating(lam=0)", lambda: FP(lam=0.0), "lam"),
    ("FreelyPropagating().replace(phi=0.9)", lambda: FP().replace(phi=0.9), "phi"),
    ("FreelyPropagating().replace(bogus=1)", lambda: FP().replace(bogus=1.0), "bogus"),
    ("solve_reference(None)", lambda: flame.solve_reference(None), "FreelyPropagating"),
    ("solve_reference(n_grid=3)", lambda: flame.solve_reference(FP(), n_grid=3), "n_grid"),
    ("solve_reference(n_grid='101')", lambda: flame.solve_reference(FP(), n_grid="101"), "n_grid"),
    ("solve_reference(n_grid=51.5)", lambda: flame.solve_reference(FP(), n_grid=51.5), "n_grid"),
    ("solve_reference(rtol=-1)", lambda: flame.solve_reference(FP(), n_grid=11, rtol=-1.0, max_refinements=2), "rtol"),
    ("solve_reference(max_newton=0)", lambda: flame.solve_reference(FP(), n_grid=11, max_newton=0), "max_newton"),
    ("solve_reference(s_L_guess=-1)", lambda: flame.solve_reference(FP(), n_grid=11, s_L_guess=-1.0, rtol=1.0),
     "s_L_guess"),
    ("inverse(n_obs=0)", lambda: flame.inverse(FP(), n_obs=0, key=K0), "n_obs"),
    ("inverse(noise=-1)", lambda: flame.inverse(FP(), noise=-1.0, key=K0), "noise"),
    ("inverse(noise=None)", lambda: flame.inverse(FP(), noise=None, key=K0), "noise"),
    ("inverse(noise='0.02')", lambda: flame.inverse(FP(), noise="0.02", key=K0), "noise"),
    ("inverse(unknown=('bogus',))", lambda: flame.inverse(FP(), unknown=("bogus",), key=K0), "bogus"),
    ("inverse(unknown named twice)", lambda: flame.inverse(FP(), unknown=("s_L", "s_L"), key=K0), "twice"),
    ("inverse(obs_x outside the domain)", lambda: flame.inverse(FP(), obs_x=[0.0, 1.0], key=K0), "obs|domain"),
    ("inverse(1 observation, 3 unknowns)", lambda: flame.inverse(FP(), n_obs=1, observe_u=False, key=K0),
     "observ"),
    ("inverse(init s_L=-1)", lambda: flame.inverse(FP(), key=K0, init={"s_L": -1.0},
                                                    reference=flame_ref()), "s_L"),
    ("kinetics_inverse(noise=0)", lambda: flame.kinetics_inverse(FP(), noise=0.0, key=K0), "noise"),
    ("kinetics_inverse(unknown=('s_L',))", lambda: flame.kinetics_inverse(FP(), unknown=("s_L",), key=K0), "s_L"),
    ("FreelyPropagating(phi=0.42, p=0.5 atm, T_in=250) has no flame in the domain",
     lambda: flame.solve_reference(FP(phi=0.7, p=0.5 * flame.ATM, T_in=250.0), n_grid=101, rtol=1.0), "not a flame"),
]:
    add(f"flame: {_name}", "error", _fn, _m, timeout=120)


@functools.cache
def flame_ref():
    return flame.solve_reference(FP(phi=0.42), n_grid=51, rtol=1.0)


@case("flame: solve_reference(phi=0.42) on a coarse grid", "ok", timeout=180)
def _():
    s = float(flame_ref().s_L)
    need(abs(s - 0.2929) < 0.01 * 0.2929, f"s_L = {s}")


@case("flame: FreelyPropagating(phi=np.float32(0.42)) and the ends of the range", "ok")
def _():
    need(abs(float(FP(phi=np.float32(0.42)).phi) - 0.42) < 1e-6, "phi")
    FP(phi=0.3), FP(phi=0.7)


@case("flame: inverse(noise=0) with a given reference", "ok", timeout=120)
def _():
    p = flame.inverse(FP(phi=0.42), noise=0.0, key=K0, reference=flame_ref(), n_eval=11)
    need(jnp.allclose(p.obs_T, flame_ref().interp(p.obs_x)), "noisy data at noise=0")


# ======================================================================================
# 11. tumour growth
# ======================================================================================
PR = tumor.Params
for _name, _fn, _m in [
    ("Params(D_white=-1)", lambda: PR(-1.0, 0.02, (0.5, 0.5), 100.0), "D_white"),
    ("Params(rho=0)", lambda: PR(0.1, 0.0, (0.5, 0.5), 100.0), "rho"),
    ("Params(rho=nan)", lambda: PR(0.1, float("nan"), (0.5, 0.5), 100.0), "rho"),
    ("Params(t_end=0)", lambda: PR(0.1, 0.02, (0.5, 0.5), 0.0), "t_end"),
    ("Params(origin=(1.5, 0.5))", lambda: PR(0.1, 0.02, (1.5, 0.5), 100.0), "origin"),
    ("Params(origin 2D array)", lambda: PR(0.1, 0.02, np.full((2, 2), 0.5), 100.0), "origin"),
    ("Params(D_white='0.1')", lambda: PR("0.1", 0.02, (0.5, 0.5), 100.0), "D_white"),
    ("Params(rho=0) traced under jit", lambda: jax.jit(lambda r: PR(0.1, r, (0.5, 0.5), 100.0).rho)(0.0)
     .block_until_ready(), "rho"),
    ("homogeneous_box((1,))", lambda: tumor.homogeneous_box((1,)), "shape"),
    ("homogeneous_box((8.5, 8))", lambda: tumor.homogeneous_box((8.5, 8)), "shape"),
    ("ellipsoid_brain((3, 3))", lambda: tumor.ellipsoid_brain((3, 3)), "shape"),
    ("mni152_brain(resolution_mm=5)", lambda: tumor.mni152_brain(5), "resolution_mm"),
    ("Anatomy(white=-0.5)", lambda: tumor.Anatomy(jnp.full(8, -0.5), jnp.ones(8), 1.0), "white"),
    ("Anatomy(shapes differ)", lambda: tumor.Anatomy(jnp.ones(8), jnp.ones(9), 1.0), "shape"),
    ("Anatomy(spacing_mm=0)", lambda: tumor.Anatomy(jnp.ones(8), jnp.zeros(8), 0.0), "spacing_mm"),
    ("Anatomy(spacing_mm='1')", lambda: tumor.Anatomy(jnp.ones(8), jnp.zeros(8), "1"), "spacing_mm"),
    ("Anatomy(no tissue)", lambda: tumor.Anatomy(jnp.zeros(8), jnp.zeros(8), 1.0), "tissue"),
    ("simulate(dt above the stability limit)",
     lambda: tumor.simulate(box12(), PR(0.3, 0.05, (0.5, 0.5), 10.0), dt=100.0), "dt"),
    ("simulate(n_steps=0)", lambda: tumor.simulate(box12(), PR(0.3, 0.05, (0.5, 0.5), 10.0), n_steps=0), "n_steps"),
    ("simulate(origin with 3 coordinates on 2D)",
     lambda: tumor.simulate(box12(), PR(0.3, 0.05, (0.5, 0.5, 0.5), 10.0)), "origin"),
    ("simulate(origin outside the brain)",
     lambda: tumor.simulate(tumor.ellipsoid_brain((12, 12)), PR(0.3, 0.05, (0.0, 0.0), 10.0)), "origin"),
    ("simulate(params a dict)", lambda: tumor.simulate(box12(), {"D_white": 0.3, "rho": 0.05}), "params|Params"),
    ("segment(thresholds=(0.6, 0.2))", lambda: tumor.segment(jnp.linspace(0, 1, 9), (0.6, 0.2)), "thresholds"),
    ("segment(thresholds=(0, 1))", lambda: tumor.segment(jnp.linspace(0, 1, 9), (0.0, 1.0)), "thresholds"),
    ("segment(noise>0 without key)", lambda: tumor.segment(jnp.linspace(0, 1, 9), noise=0.1), "key"),
    ("segment(noise=-0.1)", lambda: tumor.segment(jnp.linspace(0, 1, 9), noise=-0.1), "noise"),
    ("from_segmentation(an empty mask)",
     lambda: tumor.from_segmentation(box12(), np.zeros((12, 12), bool), np.zeros((12, 12), bool)), "empty"),
    ("from_segmentation(a mask of the wrong shape)",
     lambda: tumor.from_segmentation(box12(), np.ones((8, 8), bool), np.ones((8, 8), bool)), "shape"),
    ("from_segmentation(t_end=0)",
     lambda: tumor.from_segmentation(box12(), np.eye(12, dtype=bool), np.eye(12, dtype=bool), t_end=0.0), "t_end"),
    ("segmentation_inverse(truth rho=5, outside the bounds)",
     lambda: tumor.segmentation_inverse(box12(), PR(0.3, 5.0, (0.5, 0.5), 150.0)), "rho|bounds"),
    ("FisherKPP1D(D=-1)", lambda: tumor.FisherKPP1D(D=-1.0), r"\bD\b"),
    ("FisherKPP1D(x_max < x_min)", lambda: tumor.FisherKPP1D(x_min=1.0, x_max=-1.0), "x_max"),
    ("DatabaseQuery.build(a LinearInverse)", lambda: inv.solvers.DatabaseQuery.build(lin3(), 4, K0), "HasSimulator"),
    ("DatabaseQuery.build(n=0)", lambda: inv.solvers.DatabaseQuery.build(tumor_problem(), 0, K0), r"\bn\b"),
    ("DatabaseQuery(k=10 > bank size 2)",
     lambda: inv.solvers.DatabaseQuery(jnp.zeros((2, 4)), jnp.zeros((2, 3)), "{}", k=10), r"\bk\b"),
]:
    add(f"tumor: {_name}", "error", _fn, _m)


@case("tumor: segment of a list", "ok")
def _():
    m = tumor.segment([0.1, 0.5, 0.9])
    need(np.array_equal(np.asarray(m), [[False, True, True], [False, False, True]]), "wrong masks")


@case("tumor: simulate conserves u in [0, 1] at a large rho (1e3/day)", "ok")
def _():
    u = tumor.simulate(box12(), PR(0.3, 1e3, (0.5, 0.5), 1.0))
    need(bool(jnp.all(jnp.isfinite(u))) and float(u.min()) >= 0 and float(u.max()) <= 1 + 1e-12, "u outside [0, 1]")


@functools.cache
def bank():
    return inv.solvers.DatabaseQuery.build(tumor_problem(), 16, K0, batch_size=16)


@case("tumor: a bank built for another problem is refused", "error", match="another problem|built for", timeout=180)
def _():
    other = tumor.segmentation_inverse(tumor.homogeneous_box((14, 14), spacing_mm=3.0), PR(0.3, 0.05, (0.5, 0.5), 50.0),
                                       key=K0)
    return inv.solve(other, bank())


@case("tumor: a bank query on its own problem", "ok", timeout=180)
def _():
    sol = works(inv.solve(tumor_problem(), dataclasses.replace(bank(), n_verify=0)))
    need(0 <= float(sol.metrics["dice_edema"]) <= 1, "dice")
    return sol


# ======================================================================================
# 12. checkpoints (HostLoop) and saved files
# ======================================================================================
@functools.cache
def cg_checkpoint():
    path = tmp("cg.npz")
    inv.solve(ls8(), inv.solvers.CG(rtol=1e-10), driver=inv.HostLoop(checkpoint=path))
    return path


def _copy_bytes(src, name, n=None, data=None):
    path = tmp(name)
    with open(path, "wb") as f:
        f.write(data if data is not None else open(src, "rb").read()[: n])
    return path


add("checkpoint: another problem of the same shapes", "error",
    lambda: inv.solve(inv.LinearSystem(A8(), -jnp.ones((8, 8))), inv.solvers.CG(rtol=1e-10),
                      driver=inv.HostLoop(checkpoint=cg_checkpoint())), "another run")
add("checkpoint: the same problem, other solver settings", "error",
    lambda: inv.solve(ls8(), inv.solvers.CG(rtol=1e-3), driver=inv.HostLoop(checkpoint=cg_checkpoint())),
    "another run")
add("checkpoint: of CG, read by PCG", "error",
    lambda: inv.solve(ls8(), inv.solvers.PCG(rtol=1e-10), driver=inv.HostLoop(checkpoint=cg_checkpoint())),
    "another run|different")
add("checkpoint: truncated", "error",
    lambda: inv.solve(ls8(), inv.solvers.CG(rtol=1e-10), driver=inv.HostLoop(
        checkpoint=_copy_bytes(cg_checkpoint(), "trunc.npz", n=300))), "cannot be read|truncated")
add("checkpoint: empty", "error",
    lambda: inv.solve(ls8(), inv.solvers.CG(),
                      driver=inv.HostLoop(checkpoint=_copy_bytes(None, "empty.npz", data=b""))),
    "cannot be read")
add("checkpoint: garbage", "error",
    lambda: inv.solve(ls8(), inv.solvers.CG(), driver=inv.HostLoop(
        checkpoint=_copy_bytes(None, "garbage.npz", data=b"\x00garbage" * 50))), "cannot be read")
add("checkpoint: a weights file", "error",
    lambda: inv.solve(ls8(), inv.solvers.CG(), driver=inv.HostLoop(
        checkpoint=os.path.join(ROOT, "invsolve", "weights", "lpn-ellipses-64.npz"))), "another run|cannot be read")
add("checkpoint: a directory", "error",
    lambda: inv.solve(ls8(), inv.solvers.CG(), driver=inv.HostLoop(checkpoint=TMP)), "cannot be read|directory")


@case("checkpoint: a DPS run with another key", "error", match="another run", timeout=120)
def _():
    gm, p = mixture()
    path = tmp("dps.npz")
    s = inv.solvers.DPS(gm, n_steps=5, zeta=0.5, n_samples=2)
    inv.solve(p, s, key=K0, driver=inv.HostLoop(checkpoint=path))
    return inv.solve(p, s, key=K1, driver=inv.HostLoop(checkpoint=path))


@case("checkpoint: resume a cut-short run gives the uninterrupted answer", "ok")
def _():
    path = tmp("resume.npz")
    first = inv.solve(ls8(), inv.solvers.CG(rtol=1e-10), max_steps=3, driver=inv.HostLoop(checkpoint=path), throw=False)
    need(first.result == inv.RESULTS.max_steps_reached, "the first leg should stop at 3")
    sol = cg_ok(inv.solve(ls8(), inv.solvers.CG(rtol=1e-10), driver=inv.HostLoop(checkpoint=path)))
    need(np.array_equal(np.asarray(sol.value), np.asarray(cg8().value)), "not the uninterrupted answer")
    return sol


@case("checkpoint: a finished run resumes to the same answer", "ok")
def _():
    sol = cg_ok(inv.solve(ls8(), inv.solvers.CG(rtol=1e-10), driver=inv.HostLoop(checkpoint=cg_checkpoint())))
    need(np.array_equal(np.asarray(sol.value), np.asarray(cg8().value)), "differs")
    return sol


@case("checkpoint: a training checkpoint of other data", "error", match="another run", timeout=120)
def _():
    path = tmp("lpn-train.npz")
    data = jax.random.uniform(K0, (16, 4))
    kw = dict(sigma=0.1, optimizer=optax.adam(1e-3), loss="l2", key=K0, steps=2, batch_size=4, checkpoint=path,
              progress=False, hidden=8, depth=2)
    inv.priors.LPN.train(data, **kw)
    return inv.priors.LPN.train(data + 1.0, **kw)


add("weights: LPN.pretrained('nope')", "error", lambda: inv.priors.LPN.pretrained("nope"), "available|ellipses")
add("weights: ScorePrior.pretrained('nope')", "error", lambda: inv.priors.ScorePrior.pretrained("nope"), "available")
add("weights: dcdm.pretrained('poisson4d')", "error", lambda: inv.solvers.dcdm.pretrained("poisson4d"), "available")
add("weights: LPN.pretrained(None)", "error", lambda: inv.priors.LPN.pretrained(None), "available")
add("weights: LPN.load(a missing file)", "error", lambda: inv.priors.LPN.load(tmp("missing.npz")), "no file|missing")
add("weights: LPN.load(garbage)", "error",
    lambda: inv.priors.LPN.load(_copy_bytes(None, "g2.npz", data=b"not a zip")), "cannot be read")
add("weights: LPN.load(a truncated weights file)", "error",
    lambda: inv.priors.LPN.load(_copy_bytes(os.path.join(ROOT, "invsolve/weights/lpn-ellipses-64.npz"), "t.npz",
                                            n=5000)),
    "cannot be read")
add("weights: LPN.load(a ScorePrior file)", "error",
    lambda: inv.priors.LPN.load(os.path.join(ROOT, "invsolve/weights/score-ellipses-64.npz")), "LPN")
add("weights: ScorePrior.load(an LPN file)", "error",
    lambda: inv.priors.ScorePrior.load(os.path.join(ROOT, "invsolve/weights/lpn-ellipses-64.npz")), "ScorePrior")
add("weights: DCDMModel.load(an LPN file)", "error",
    lambda: inv.solvers.dcdm.DCDMModel.load(os.path.join(ROOT, "invsolve/weights/lpn-ellipses-64.npz")), "DCDMModel")
add("weights: DCDMModel.load(a solve checkpoint)", "error",
    lambda: inv.solvers.dcdm.DCDMModel.load(cg_checkpoint()), "DCDMModel")
add("weights: DatabaseQuery.load(a solve checkpoint)", "error",
    lambda: inv.solvers.DatabaseQuery.load(cg_checkpoint()), "bank")
add("weights: DatabaseQuery.load(a missing file)", "error",
    lambda: inv.solvers.DatabaseQuery.load(tmp("nobank.npz")), "bank|no file|missing")
add("weights: LPN.prox of the wrong shape", "error",
    lambda: inv.priors.LPN.pretrained("ellipses-64").prox(jnp.ones((10, 10))), "shape|multiple")


@case("weights: LPN.load of a shipped file", "ok")
def _():
    lpn = inv.priors.LPN.load(os.path.join(ROOT, "invsolve/weights/lpn-ellipses-64.npz"))
    need(lpn.shape == (64, 64) and lpn.sigma == 0.1, f"{lpn.shape} {lpn.sigma}")


@case("weights: save and load a DCDM model round trip", "ok")
def _():
    m = inv.solvers.dcdm.pretrained("poisson2d-64")
    path = tmp("dcdm.npz")
    m.save(path)
    m2 = inv.solvers.dcdm.DCDMModel.load(path)
    need(all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(jax.tree.leaves(m.params),
                                                                         jax.tree.leaves(m2.params))), "differs")


# ======================================================================================
# 13. metrics
# ======================================================================================
I8 = jnp.asarray(np.random.default_rng(0).random((8, 8)))
for _name, _fn, _m in [
    ("psnr(shapes differ)", lambda: metrics.psnr(jnp.ones((8, 8)), jnp.ones((8, 7))), "shape"),
    ("psnr(would broadcast)", lambda: metrics.psnr(jnp.ones((2, 8, 8)), jnp.ones((8, 8))), "shape"),
    ("psnr(a constant reference, no data_range)", lambda: metrics.psnr(I8, jnp.zeros((8, 8))), "data_range"),
    ("ssim(a 4x4 image)", lambda: metrics.ssim(jnp.ones((4, 4)), jnp.ones((4, 4))), "7|win_size"),
    ("ssim(a 1D array)", lambda: metrics.ssim(jnp.ones(16), jnp.ones(16)), "2D"),
    ("rel_l2(structures differ)", lambda: metrics.rel_l2({"a": jnp.ones(3)}, {"b": jnp.ones(3)}), "structure"),
    ("dice(shapes differ)", lambda: metrics.dice(jnp.ones(3), jnp.ones(4)), "shape"),
    ("coverage(shapes differ)", lambda: metrics.coverage(jnp.zeros(3), jnp.ones(3), jnp.ones(4)), "shape"),
]:
    add(f"metrics: {_name}", "error", _fn, _m)


@case("metrics: psnr of nested lists", "ok")
def _():
    a, b = I8, I8 + 0.01
    need(abs(float(metrics.psnr(np.asarray(a).tolist(), np.asarray(b).tolist())) - float(metrics.psnr(a, b))) < 1e-9,
         "differs")


@case("metrics: psnr and ssim of integer images", "ok")
def _():
    a = np.arange(64).reshape(8, 8)
    b = a.copy()
    b[0, 0] += 3
    need(abs(float(metrics.psnr(a, b)) - float(metrics.psnr(a.astype(float), b.astype(float)))) < 1e-9, "psnr")
    need(abs(float(metrics.ssim(a, b)) - float(metrics.ssim(a.astype(float), b.astype(float)))) < 1e-9, "ssim")


@case("metrics: rel_l2 in float32 of values near 1e20", "ok")
def _():
    with x32():
        ref = jnp.full((16,), 1e20, jnp.float32)
        v = float(metrics.rel_l2(ref * 1.01, ref))
        need(abs(v - 0.01) < 1e-4, f"rel_l2 = {v}")


@case("metrics: psnr in float32 of values near 1e20", "ok")
def _():
    with x32():
        a = jnp.asarray(I8, jnp.float32)
        v = float(metrics.psnr(a * 1e20 + 1e18, a * 1e20))
        w = float(metrics.psnr(a + 1e-2, a))
        need(abs(v - w) < 1e-2, f"psnr = {v}, expected {w}")


@case("metrics: a float32 Landweber solve of values near 1e20 reports its rel_l2", "ok")
def _():
    with x32():
        M = inv.MatrixOperator.from_array(jnp.eye(4, dtype=jnp.float32))
        x = jnp.full((4,), 1e20, jnp.float32)
        p = inv.LinearInverse(M, x, inv.GaussianNoise(jnp.float32(1e19)), x * 1.01)
        sol = works(inv.solve(p, inv.solvers.Landweber(step_size=1e38, max_steps=1)))
        need(abs(float(sol.metrics["rel_l2"]) - 0.01 / 1.01) < 1e-4, f"rel_l2 = {sol.metrics['rel_l2']}")
        return sol


@case("metrics: dice of two empty masks is 1", "ok")
def _():
    need(float(metrics.dice(np.zeros(4, bool), np.zeros(4, bool))) == 1.0, "not 1")


# ======================================================================================
# 14. the command line
# ======================================================================================
def cli(*args, timeout=240):
    proc = subprocess.run([sys.executable, "-m", "invsolve.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=TMP, env={**os.environ, "PYTHONPATH": ROOT})
    if proc.returncode != 0:
        raise CliFailure(proc.returncode, proc.stderr)
    return proc


@case("cli: invsolve list", "ok", timeout=120)
def _():
    need("poisson-inverse" in cli("list").stdout, "no poisson-inverse")


add("cli: invsolve run no-such-thing", "error", lambda: cli("run", "no-such-thing"), "unknown experiment", timeout=120)
add("cli: invsolve run (no name)", "error", lambda: cli("run"), "name|required", timeout=120)
add("cli: invsolve run --seed abc", "error", lambda: cli("run", "poisson-inverse", "--seed", "abc"), "seed",
    timeout=120)
add("cli: invsolve run --set bogus=1", "error", lambda: cli("run", "poisson-inverse", "--quick", "--set", "bogus=1"),
    "NAME one of|bogus", timeout=120)
add("cli: invsolve run --set noise=-1", "error",
    lambda: cli("run", "poisson-inverse", "--quick", "--set", "noise=-1", "--out", tmp("cli-noise")), "noise",
    timeout=180)
add("cli: invsolve run --set shape=8", "error",
    lambda: cli("run", "poisson-inverse", "--quick", "--set", "shape=8", "--out", tmp("cli-shape")), "shape",
    timeout=180)
add("cli: invsolve train no-such-model", "error", lambda: cli("train", "nope", "--out", tmp("x.npz")), "unknown model",
    timeout=120)
add("cli: invsolve train without --out", "error", lambda: cli("train", "lpn-ellipses-64"), "--out", timeout=120)
add("cli: invsolve train --set bogus=1", "error",
    lambda: cli("train", "lpn-ellipses-64", "--out", tmp("x.npz"), "--set", "bogus=1"), "NAME one of|bogus",
    timeout=120)


@case("cli: invsolve run poisson-inverse, tiny", "ok", timeout=300)
def _():
    out = tmp("cli-run")
    cli("run", "poisson-inverse", "--quick", "--set", "shape=(8, 8)", "--set", "n_sensors=20", "--set", "max_steps=5",
        "--out", out)
    need(os.path.exists(os.path.join(out, "metrics.json")), "no metrics.json")


# --------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", action="append", default=[], help="run only cases whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    chosen = [c for c in CASES if not args.k or any(k.lower() in c.name.lower() for k in args.k)]
    if args.list:
        for c in chosen:
            print(f"{c.expect:5}  {c.name}")
        return 0
    classes = ("clear-error", "handled", "unhelpful-error", "silent-wrong")
    counts = dict.fromkeys(classes, 0)
    bad = []
    t0 = time.perf_counter()
    for i, c in enumerate(chosen, 1):
        with contextlib.redirect_stderr(open(os.devnull, "w")):
            cls, detail, dt = run_case(c)
        counts[cls] += 1
        if cls in ("unhelpful-error", "silent-wrong"):
            bad.append((cls, c.name, detail))
        print(f"{i:3d} {cls:15} [{c.expect:5}] {c.name}: {detail} ({dt:.1f} s)", flush=True)
    wall = time.perf_counter() - t0
    print("\nsummary")
    print(f"  {'class':15} {'cases':>5}")
    for k in classes:
        print(f"  {k:15} {counts[k]:5d}")
    print(f"  {'total':15} {len(chosen):5d}   wall time {wall:.0f} s")
    if bad:
        print("\nnot good enough:")
        for cls, name, detail in bad:
            print(f"  {cls:15} {name}: {detail}")
    failed = counts["silent-wrong"] > 0 or counts["unhelpful-error"] > 5
    print(f"\n{'FAIL' if failed else 'PASS'}: {counts['silent-wrong']} silent wrong answers (allowed 0), "
          f"{counts['unhelpful-error']} unhelpful errors (allowed 5)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
