"""Problems: physics + data, as immutable pytrees, with capabilities that solvers ask for.

A solver declares the capabilities it needs in ``requires``; `invsolve.solve` checks them
with ``isinstance`` before anything is traced, so a mismatch fails with a clear message.
"""

from __future__ import annotations

import abc
import operator
import os
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._linop import AbstractLinearOperator
from ._sampling import hammersley


_SIGMA = "GaussianNoise: sigma (the noise standard deviation) must be positive and finite in every entry"


def _positive_sigma(sigma):
    sigma = as_array(sigma, _SIGMA)
    return check_value(sigma, ~jnp.all(jnp.isfinite(sigma) & (sigma > 0)), _SIGMA, got=lambda: _summary(sigma))


class GaussianNoise(eqx.Module):
    """Additive i.i.d. Gaussian noise with standard deviation ``sigma`` (data units; a scalar
    or one per datum, every entry positive and finite)."""

    sigma: jax.Array = eqx.field(converter=_positive_sigma)

    def neg_log_likelihood(self, prediction, y):
        """0.5 * sum(((prediction - y) / sigma)**2), up to a constant."""
        r = (prediction - y) / self.sigma
        return 0.5 * jnp.sum(r * r)


class AbstractProblem(eqx.Module):
    """Base of every problem. ``y_obs`` are the data, ``x_true`` the ground truth or None."""

    # Subclasses provide (as fields or properties): ``y_obs`` and ``x_true``.

    def metrics(self, value) -> dict:
        """Errors of an estimate against ``x_true`` (empty when the truth is unknown)."""
        if self.x_true is None:
            return {}
        from .metrics import rel_l2

        return {"rel_l2": rel_l2(value, self.x_true)}


class HasForward(AbstractProblem):
    """A problem with a differentiable forward model ``y = forward(theta) + noise``.

    ``theta`` is the unconstrained unknown that solvers optimise; ``constrain(theta)`` maps
    it to the physical unknown (e.g. ``exp`` for a positive coefficient).
    """

    # Subclasses provide ``noise`` (e.g. `GaussianNoise`).

    @abc.abstractmethod
    def forward(self, theta):
        """The predicted observations for unknown ``theta``; pure, jit/grad/vmap-safe."""

    @abc.abstractmethod
    def init_params(self):
        """The starting point for iterative solvers (unconstrained)."""

    def constrain(self, theta):
        return theta

    def neg_log_likelihood(self, theta):
        return self.noise.neg_log_likelihood(self.forward(theta), self.y_obs)

    def normalized_chi2(self, theta):
        """``2 neg_log_likelihood(theta) / m`` over the ``m`` data: the normalised chi-square
        ``||(forward(theta) - y) / sigma||^2 / m`` for Gaussian noise, about 1 at a fit to the
        noise level."""
        return 2.0 * self.neg_log_likelihood(theta) / sum(jnp.size(y) for y in jax.tree.leaves(self.y_obs))


class HasLinearOperator(HasForward):
    """A problem whose forward model is a linear operator: ``forward(x) = operator.mv(x)``."""

    @abc.abstractmethod
    def operator(self) -> AbstractLinearOperator:
        ...

    def forward(self, theta):
        return self.operator().mv(theta)

    def init_params(self):
        return jnp.zeros(self.operator().in_shape, self.operator().dtype)


class LinearSystem(HasLinearOperator):
    """Solve ``A x = b`` for ``x``: the problem Krylov solvers take.

    Attributes:
        A: the linear operator; ``A.in_shape == b.shape``.
        b: right-hand side.
        x_true: optional reference solution for metrics.
    """

    A: AbstractLinearOperator
    b: jax.Array = eqx.field(converter=lambda b: as_array(b, "LinearSystem: b (the right-hand side) must be an array"))
    x_true: Any = None

    def __check_init__(self):
        _check_operator("LinearSystem", self.A)
        if tuple(self.b.shape) != tuple(self.A.out_shape):
            raise ValueError(
                f"LinearSystem: the right-hand side has shape {tuple(self.b.shape)} but the "
                f"operator maps to shape {tuple(self.A.out_shape)}; pass b of that shape."
            )
        check_finite_data("LinearSystem", "b", self.b, "the right-hand side")

    @property
    def y_obs(self):
        return self.b

    @property
    def noise(self):
        return GaussianNoise(1.0)

    def operator(self):
        return self.A


class LinearInverse(HasLinearOperator):
    """``y = A x + noise`` with a known linear operator ``A`` (tomography, deblurring, ...).

    Attributes:
        A: the forward operator, ``A.in_shape`` the unknown's shape, ``A.out_shape`` the data's.
        y_obs: the data, shape ``A.out_shape``.
        noise: `GaussianNoise` (``sigma`` scalar or of the data's shape: weighted least squares).
        x_true: the ground truth, or None.
    """

    A: AbstractLinearOperator
    y_obs: jax.Array = eqx.field(converter=lambda y: as_array(y, "LinearInverse: y_obs (the data) must be an array"))
    noise: GaussianNoise
    x_true: Any = None

    def __check_init__(self):
        _check_operator("LinearInverse", self.A)
        if tuple(self.y_obs.shape) != tuple(self.A.out_shape):
            raise ValueError(
                f"the data have shape {tuple(self.y_obs.shape)} but the operator maps to shape "
                f"{tuple(self.A.out_shape)}; pass data of that shape."
            )
        check_finite_data("LinearInverse", "y_obs", self.y_obs)
        check_noise("LinearInverse", self.noise, self.y_obs)
        if self.x_true is not None and tuple(jnp.shape(self.x_true)) != tuple(self.A.in_shape):
            raise ValueError(
                f"x_true has shape {tuple(jnp.shape(self.x_true))}, expected the operator's input "
                f"shape {tuple(self.A.in_shape)}."
            )

    def operator(self):
        return self.A

    def metrics(self, value) -> dict:
        """``rel_l2`` and, for an image-like truth (two or more axes), ``psnr`` (dB, the data
        range of the truth; NaN for a constant truth, which has no range)."""
        out = super().metrics(value)
        if self.x_true is not None and jnp.ndim(self.x_true) >= 2:
            from .metrics import psnr

            span = jnp.max(self.x_true) - jnp.min(self.x_true)
            out["psnr"] = jnp.where(span > 0, psnr(value, self.x_true, jnp.where(span > 0, span, 1.0)), jnp.nan)
        return out

    def with_observations(self, y_obs) -> "LinearInverse":
        """The same problem with other data (e.g. another noise draw)."""
        return LinearInverse(self.A, jnp.asarray(y_obs, self.y_obs.dtype), self.noise, self.x_true)


class HasResidual(AbstractProblem):
    """A problem a physics-informed solver can take: a differential-equation residual on a
    box, extra conditions (boundary values, observations), and optional unknown constants.

    The field ``u`` (the solver supplies a network) maps a batch of points ``x`` of shape
    ``(n, dim)`` row by row to values ``(n, n_out)``: each row depends only on its own point,
    so derivatives along a direction are one forward-mode pass over the whole batch
    (`directional_derivatives`). ``theta`` are the unknown constants in physical units
    (``constrain(raw)`` of the trainable raw values, ``{}`` when there are none).

    Subclasses provide ``lower``/``upper`` (the box, shape ``(dim,)``), ``n_out`` and
    `residual`; the rest has defaults.
    """

    n_out: eqx.AbstractClassVar[int]

    @abc.abstractmethod
    def residual(self, u, theta, x):
        """The scaled residual at the points ``x`` (n, dim): an array of shape (n,) or (n, n_eq)."""

    def conditions(self, u, theta) -> dict:
        """Named residual arrays of the side conditions (scaled); the loss adds their mean
        squares. Default: none."""
        return {}

    def scale_input(self, x):
        """The network's input for points ``x`` (n, dim); default maps the box to [-1, 1]^dim."""
        lo, hi = jnp.asarray(self.lower), jnp.asarray(self.upper)
        return 2.0 * (x - lo) / (hi - lo) - 1.0

    def transform(self, x, out, theta):
        """Field values at ``x`` (n, dim) from the network's raw output ``out`` (n, n_out):
        where bounds or hard boundary conditions are imposed (row by row). Default: identity."""
        return out

    def init_params(self) -> dict:
        """Initial raw values of the unknown constants (default: none)."""
        return {}

    def constrain(self, raw) -> dict:
        """Physical unknowns from raw trainable values (default: identity)."""
        return raw

    def collocation(self, n: int, key=None):
        """``n`` collocation points (n, dim): a Hammersley set scaled to the box, or
        uniform random points when ``key`` is given (resampling)."""
        lo, hi = jnp.asarray(self.lower), jnp.asarray(self.upper)
        if key is None:
            unit = jnp.asarray(hammersley(n, lo.shape[0]), lo.dtype)
        else:
            unit = jax.random.uniform(key, (n, lo.shape[0]), lo.dtype)
        return lo + unit * (hi - lo)

    def warmup_data(self):
        """``(x (n, dim), target (n, n_out))`` to fit before the physics (or None)."""
        return None

    @property
    def field_scale(self):
        """Multiplies field errors in data-fit losses so they are O(1) (default 1)."""
        return 1.0

    def evaluate(self, u, theta) -> dict:
        """The estimate reported in `Solution.value`: the unknowns and the field on the
        problem's evaluation points (subclasses choose)."""
        return dict(theta)


def directional_derivatives(f, x, v):
    """``(f(x), Df(x) v, D^2 f(x)[v, v])`` by nested forward mode: one pass for a first and
    second derivative along ``v`` (e.g. ``T, T_x, T_xx`` with ``v = e_x``). For a row-wise
    ``f`` on a batch ``x`` (n, dim), ``v`` of shape (n, dim) gives every row's derivatives
    at once."""
    first = lambda y: jax.jvp(f, (y,), (v,))
    (fx, dfx), (_, d2fx) = jax.jvp(first, (x,), (v,))
    return fx, dfx, d2fx


class HasSimulator(HasForward):
    """A forward model over a box of parameters, for database query and sampling.

    ``theta = theta_from_unit(z)`` for ``z`` in the unit cube ``[0, 1]^box_dim``. ``features(theta)`` is a compact 1-D summary of the
    simulated observation (vmap-able); ``match(features, unit)`` scores a bank
    ``(n, n_features)`` simulated at ``unit`` ``(n, box_dim)`` against the observed data
    (higher is better) and returns ``(scores, unit)``, where a problem may move an entry's
    parameters (e.g. align its position with the data); ``signature()`` is a
    JSON-able description that a stored database must match to be queried for this problem.
    """

    @property
    @abc.abstractmethod
    def box_dim(self) -> int: ...

    @abc.abstractmethod
    def theta_from_unit(self, z): ...

    @abc.abstractmethod
    def features(self, theta): ...

    @abc.abstractmethod
    def match(self, features, unit): ...

    @abc.abstractmethod
    def signature(self) -> dict: ...

    def unit_from_theta(self, theta):
        """Inverse of `theta_from_unit` (a point ``(box_dim,)`` of the unit cube); samplers
        start from it."""
        raise NotImplementedError(f"{type(self).__name__} does not map theta back to the unit cube (unit_from_theta).")


# --------------------------------------------------------------------------------------
# input checks shared by the problems
# --------------------------------------------------------------------------------------
def _check_operator(owner: str, A) -> None:
    if not isinstance(A, AbstractLinearOperator):
        raise TypeError(f"{owner}: A must be a linear operator (an invsolve.AbstractLinearOperator such as "
                        f"invsolve.MatrixOperator.from_array(M) or poisson.operator(...)), got {type(A).__name__}.")


def check_noise(owner: str, noise, y_obs) -> None:
    """``noise`` is a noise model (``neg_log_likelihood``); a `GaussianNoise` sigma is a scalar or
    broadcasts to the data's shape (one sigma per datum)."""
    if not callable(getattr(noise, "neg_log_likelihood", None)):
        raise TypeError(f"{owner}: noise must be a noise model such as invsolve.GaussianNoise(sigma), got "
                        f"{type(noise).__name__} {noise!r}.")
    sigma = getattr(noise, "sigma", None)
    if sigma is not None and jnp.ndim(sigma) > 0:
        shape, data = tuple(jnp.shape(sigma)), tuple(jnp.shape(y_obs))
        try:
            ok = np.broadcast_shapes(shape, data) == data
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{owner}: the noise sigma has shape {shape}, which does not fit the data of shape "
                             f"{data}; pass a scalar sigma or one per datum (shape {data}).")


def as_array(value, message: str):
    """``jnp.asarray(value)`` of a numeric value (an array, a list of numbers, a NumPy or Python
    number; traced values pass); anything else (None, a string, a dict) raises ``ValueError``
    with ``message`` and the value."""
    if isinstance(value, jax.core.Tracer):
        return value
    bad = value is None or isinstance(value, (str, bytes, dict))
    if not bad:
        try:
            a = jnp.asarray(value)
        except (TypeError, ValueError):
            bad = True
        else:
            bad = not (jnp.issubdtype(a.dtype, jnp.number) or jnp.issubdtype(a.dtype, jnp.bool_))
    if bad:
        raise ValueError(f"{message}; got {value!r}."[:400])
    return a


def is_key(key, *, batch: bool = False) -> bool:
    """Whether ``key`` is one typed JAX key (``jax.random.key``) or a legacy uint32 ``PRNGKey``;
    with ``batch``, also an array of them."""
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        return False
    typed = jnp.issubdtype(dtype, jax.dtypes.prng_key) and jnp.ndim(key) <= int(batch)
    raw = dtype == jnp.uint32 and jnp.shape(key)[-1:] == (2,) and jnp.ndim(key) <= 1 + int(batch)
    return bool(typed or raw)


def check_key(owner: str, key) -> None:
    """Refuse a ``key`` that is not one JAX random key (``TypeError`` naming ``owner``), before
    JAX's own error from deep inside ``jax.random``."""
    if not is_key(key):
        got = f"an array of dtype {key.dtype} and shape {jnp.shape(key)}" if hasattr(key, "dtype") else repr(key)
        raise TypeError(f"{owner}: key must be one JAX random key such as jax.random.key(0), got {got}.")


def rms(x):
    """The root mean square of ``x``, computed without overflow (``x`` is scaled by its largest
    magnitude first: in float32, squares of values above 1.8e19 would be infinite)."""
    x = jnp.asarray(x)
    m = jnp.max(jnp.abs(x))
    return m * jnp.sqrt(jnp.mean(jnp.square(x / jnp.where(m > 0, m, 1))))


def as_int(value) -> int | None:
    """``value`` as a Python int if it is one (a Python or NumPy integer, not a bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_value(x, bad, message: str, got=None):
    """``x``, once a value check has passed: ``bad`` is a boolean scalar computed from ``x``.
    Concrete: ``bad`` raises ``ValueError(message + "; got " + got())`` at once. Traced
    (under ``jit``, ``grad``, ``vmap``): `eqx.error_if` raises when the compiled code runs,
    so the check does not vanish."""
    if isinstance(bad, jax.core.Tracer):
        return eqx.error_if(x, bad, message + ".")
    if bool(bad):
        raise ValueError(message + ("." if got is None else f"; got {got()}."))
    return x


def _summary(a) -> str:
    """A short description of an array's values for error messages."""
    a = np.asarray(a)
    if a.size <= 8:
        return repr(a.tolist()) if a.ndim else repr(a.item())
    f = a[np.isfinite(a)]
    span = f"from {f.min():g} to {f.max():g}" if f.size else "none finite"
    return f"{a.size} values, {span}, {a.size - f.size} non-finite"


def check_finite_data(owner: str, name: str, value, what: str | None = None) -> None:
    """Refuse data with NaN or infinite entries (``ValueError`` naming the argument ``name``,
    described as ``what``) when the value is concrete. Traced data pass: under ``jit`` the
    solvers report ``nonfinite``."""
    for leaf in jax.tree.leaves(value):
        if isinstance(leaf, jax.core.Tracer):
            continue
        a = np.asarray(leaf)
        if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
            where = f"{int(np.sum(~np.isfinite(a)))} of {a.size} entries" + ("" if what is None else f" of {name}")
            raise ValueError(f"{owner}: {what or name} contains NaN or infinite values ({where}); the data must be "
                             "finite: remove or impute them first.")


def real_number(value) -> float | None:
    """``value`` as a Python float if it is one real number (a Python or NumPy int or
    float, or a 0-d array of one; not a bool), else None."""
    if isinstance(value, (bool, np.bool_, jax.core.Tracer)):
        return None
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if a.ndim != 0 or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        return None
    return float(a)


def physical_memory() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(what: str, n_bytes: float, hint: str = "use a smaller size") -> None:
    """Refuse, before anything is allocated, a problem whose main arrays (``n_bytes``
    together) would not fit in the machine's physical memory: ``MemoryError`` with the size
    in GiB. ``what`` names the request, e.g. ``"poisson.operator on a (100000, 100000) grid"``."""
    total = physical_memory()
    if total is not None and n_bytes > total:
        raise MemoryError(f"{what} needs about {n_bytes / 2**30:,.1f} GiB for its main arrays, more than this "
                          f"machine's {total / 2**30:,.1f} GiB of memory; {hint}.")
