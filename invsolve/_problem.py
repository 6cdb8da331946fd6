"""Problems: physics + data, as immutable pytrees, with capabilities that solvers ask for.

A solver declares the capabilities it needs in ``requires``; `invsolve.solve` checks them
with ``isinstance`` before anything is traced, so a mismatch fails with a clear message.
"""

from __future__ import annotations

import abc
import math
import operator
import os
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._linop import AbstractLinearOperator
from ._sampling import hammersley


_SIGMA = "GaussianNoise: sigma (the noise standard deviation) must be positive and finite in every entry"


def _positive_sigma(sigma):
    if isinstance(sigma, (int, float)) and not isinstance(sigma, bool):  # a number: checked on the host, no program
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"{_SIGMA}; got {sigma!r}.")
        return jnp.asarray(sigma)
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


def _nonneg_array(owner, name):
    message = f"{owner}: {name} must be non-negative and finite in every entry"

    def convert(value):
        a = as_array(value, message)
        return check_value(a, ~jnp.all(jnp.isfinite(a) & (a >= 0)), message, got=lambda: _summary(a))

    return convert


class PoissonNoise(eqx.Module):
    """Photon / particle counts: ``y ~ Poisson(prediction + background)`` entry by entry.

    ``y`` are counts (non-negative; integers, stored as floats), ``prediction`` the expected
    counts (>= 0, data units), ``background`` a known expected count added to every datum (a
    scalar or one per datum, >= 0; dark current, scatter). With ``lam = prediction + background``
    the negative log-likelihood, up to the constant ``sum log y!``, is::

        sum(lam - y log lam)

    A rate that reaches 0 where ``y > 0`` gives ``+inf``; keep the prediction positive (e.g.
    ``constrain=jnp.exp`` in `ForwardProblem`) or use a positive ``background``.
    """

    background: jax.Array = eqx.field(default=0.0, converter=_nonneg_array("PoissonNoise", "background"))

    def neg_log_likelihood(self, prediction, y):
        """``sum(lam - y log lam)``, ``lam = prediction + background`` (``0 log 0 = 0``)."""
        lam = prediction + self.background
        return jnp.sum(lam - jnp.where(y > 0, y * jnp.log(jnp.where(y > 0, lam, 1.0)), 0.0))


class PoissonGaussianNoise(eqx.Module):
    """Counts read out with additive Gaussian read noise:
    ``y = Poisson(lam) + N(0, read_sigma^2)``, ``lam = prediction + background`` (data units:
    counts, e.g. photo-electrons; ``read_sigma`` the read-noise standard deviation, a scalar
    or one per datum, > 0).

    The exact likelihood is an infinite sum; two standard approximations (Chouzenoux et al.,
    "A convex approach for image restoration with exact Poisson-Gaussian likelihood",
    SIAM J. Imaging Sci. 8(4), 2015, Sec. 2, review both):

    * ``"shifted_poisson"`` (default; Snyder, Hammoud & White, JOSA A 10(5), 1993): the shifted
      datum ``y + s^2`` is taken as ``Poisson(lam + s^2)`` (mean and variance match), so up to a
      constant::

          sum((lam + s^2) - max(y + s^2, 0) log(lam + s^2))

    * ``"gaussian"``: ``y ~ N(lam, lam + s^2)``, i.e.::

          sum((y - lam)^2 / (2 (lam + s^2)) + log(lam + s^2) / 2)

    Both stay finite for ``lam >= 0`` (``s > 0``), so a prediction may touch zero.
    """

    read_sigma: jax.Array = eqx.field(converter=_nonneg_array("PoissonGaussianNoise", "read_sigma"))
    background: jax.Array = eqx.field(default=0.0, converter=_nonneg_array("PoissonGaussianNoise", "background"))
    approximation: str = eqx.field(default="shifted_poisson", static=True)

    def __check_init__(self):
        if self.approximation not in ("shifted_poisson", "gaussian"):
            raise ValueError(f"PoissonGaussianNoise: approximation must be 'shifted_poisson' or 'gaussian', got "
                             f"{self.approximation!r}.")
        if not isinstance(self.read_sigma, jax.core.Tracer) and not bool(jnp.all(self.read_sigma > 0)):
            raise ValueError("PoissonGaussianNoise: read_sigma must be positive in every entry (for no read "
                             "noise use PoissonNoise).")

    def neg_log_likelihood(self, prediction, y):
        """The approximate negative log-likelihood above (up to a constant in ``prediction``)."""
        s2 = jnp.square(self.read_sigma)
        v = prediction + self.background + s2
        if self.approximation == "gaussian":
            return jnp.sum(0.5 * jnp.square(y - (v - s2)) / v + 0.5 * jnp.log(v))
        return jnp.sum(v - jnp.maximum(y + s2, 0.0) * jnp.log(v))


def as_noise(noise):
    """A noise model from ``noise``: a real number or an array of them is a Gaussian ``sigma``
    (`GaussianNoise`); a noise model passes unchanged (anything else too: the problem's check
    names it)."""
    if callable(getattr(noise, "neg_log_likelihood", None)) or isinstance(noise, (str, bytes, dict)) or noise is None:
        return noise
    try:
        a = np.asarray(noise) if not isinstance(noise, jax.Array) else noise
    except (TypeError, ValueError):
        return noise
    if getattr(a, "dtype", None) is not None and (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        return GaussianNoise(noise)
    return noise


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

    ``LinearInverse(A, y, noise=0.1)`` takes a dense matrix for ``A`` too (a NumPy/JAX 2-D array
    ``(m, n)``, wrapped in `MatrixOperator`: unknown of shape ``(n,)``, data ``(m,)``) and a
    number for ``noise`` (the Gaussian ``sigma``, data units).

    Attributes:
        A: the forward operator (an `AbstractLinearOperator`, e.g. `FunctionOperator`, or a 2-D
            matrix), ``A.in_shape`` the unknown's shape, ``A.out_shape`` the data's.
        y_obs: the data, shape ``A.out_shape``.
        noise: a noise model: `GaussianNoise` (``sigma`` scalar or of the data's shape: weighted
            least squares; a number or array here is that ``sigma``), or `PoissonNoise` /
            `PoissonGaussianNoise` (for likelihood-based solvers such as `GradientMAP`; the
            least-squares solvers need Gaussian noise).
        x_true: the ground truth, or None.
    """

    A: AbstractLinearOperator = eqx.field(converter=lambda A: as_operator(A))
    y_obs: jax.Array = eqx.field(converter=lambda y: as_array(y, "LinearInverse: y_obs (the data) must be an array"))
    noise: Any = eqx.field(converter=lambda n: as_noise(n))
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


class ForwardProblem(HasForward):
    """``y = forward(theta) + noise`` from any JAX function: bring your own forward model.

    ``ForwardProblem(forward, y, noise, init=theta0)`` is a `HasForward` problem, so every solver
    that needs only a forward model takes it (`invsolve.solvers.GradientMAP`, `NUTS` with a
    prior, ...). For a linear forward model with a known transpose, `LinearInverse` with a
    `FunctionOperator` also opens the least-squares solvers (CGLS, ...).

    Args:
        forward: ``theta -> prediction``, an array of ``y``'s shape (data units); pure and
            jit/grad/vmap-safe (JAX operations only).
        y: the data, an array (integer counts are stored as floats); every entry finite.
        noise: a noise model (`GaussianNoise`, `PoissonNoise`, `PoissonGaussianNoise`) or a
            number or per-datum array: the Gaussian ``sigma`` (data units).
        init: the starting ``theta`` (an array or a pytree of arrays; integers become floats):
            it fixes the unknown's shapes and dtype.
        constrain: ``theta -> physical unknown`` (e.g. ``jnp.exp`` for a positive
            coefficient; applied to the estimate a solver reports), or None (identity).
        x_true: the true physical unknown (shape of ``constrain(init)``), or None.

    ``forward(init)`` is checked with ``jax.eval_shape`` (nothing is computed): its shape must
    be ``y``'s.
    """

    forward_fn: Any = eqx.field(static=True)  # functions are static: arrays they close over are constants
    y_obs: jax.Array
    noise: Any
    theta_init: Any
    constrain_fn: Any = eqx.field(static=True)
    x_true: Any

    def __init__(self, forward, y, noise, init, constrain=None, x_true=None):
        if not callable(forward):
            raise TypeError(f"ForwardProblem: forward must be a function theta -> prediction, got {type(forward).__name__}.")
        if constrain is not None and not callable(constrain):
            raise TypeError(f"ForwardProblem: constrain must be a function or None, got {type(constrain).__name__}.")
        y = as_array(y, "ForwardProblem: y (the data) must be an array")
        self.forward_fn, self.constrain_fn = forward, constrain
        self.y_obs = y if jnp.issubdtype(y.dtype, jnp.inexact) else y.astype(jnp.result_type(float))
        self.noise = as_noise(noise)
        self.theta_init = jax.tree.map(_float_leaf, init)
        self.x_true = x_true

    def __check_init__(self):
        check_finite_data("ForwardProblem", "y", self.y_obs, "y (the data)")
        check_noise("ForwardProblem", self.noise, self.y_obs)
        if not jax.tree.leaves(self.theta_init):
            raise ValueError(f"ForwardProblem: init must be an array or a pytree of arrays (the starting theta), got "
                             f"{self.theta_init!r}.")
        try:
            pred = jax.eval_shape(self.forward_fn, self.theta_init)
        except Exception as e:  # noqa: BLE001 -- any failure of the user's function: say where it happened
            raise ValueError(f"ForwardProblem: forward(init) fails: {type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0]}") from e
        if tuple(getattr(pred, "shape", (None,))) != tuple(self.y_obs.shape):
            got = tuple(pred.shape) if hasattr(pred, "shape") else jax.tree.structure(pred)
            raise ValueError(f"ForwardProblem: forward(init) has shape {got} but the data y have shape "
                             f"{tuple(self.y_obs.shape)}; forward must predict one value per datum.")
        if self.x_true is not None:
            want = jax.tree.map(lambda a: tuple(a.shape), jax.eval_shape(self.constrain, self.theta_init))
            got = jax.tree.map(lambda a: tuple(jnp.shape(a)), self.x_true)
            if got != want:
                raise ValueError(f"ForwardProblem: x_true has shape {got}, expected the shape of constrain(init): {want}.")

    def forward(self, theta):
        return self.forward_fn(theta)

    def init_params(self):
        return self.theta_init

    def constrain(self, theta):
        return theta if self.constrain_fn is None else self.constrain_fn(theta)

    def with_observations(self, y) -> "ForwardProblem":
        """The same problem with other data (e.g. another noise draw)."""
        return ForwardProblem(self.forward_fn, y, self.noise, self.theta_init, self.constrain_fn, self.x_true)


def _float_leaf(x):
    a = as_array(x, "ForwardProblem: init must be an array or a pytree of arrays (the starting theta)")
    return a if jnp.issubdtype(a.dtype, jnp.inexact) else a.astype(jnp.result_type(float))


class HasResidual(AbstractProblem):
    """A problem a physics-informed solver can take: a differential-equation residual on a
    box, extra conditions (boundary values, observations), and optional unknown constants.

    The field ``u`` (the solver supplies a network) maps a batch of points ``x`` of shape
    ``(n, dim)`` row by row to values ``(n, n_out)``: each row depends only on its own point,
    so derivatives along a direction are one forward-mode pass over the whole batch
    (`directional_derivatives`). ``theta`` are the unknown constants in physical units
    (``constrain(raw)`` of the trainable raw values, ``{}`` when there are none).

    Subclasses provide ``lower``/``upper`` (the box, shape ``(dim,)``), ``n_out`` and
    `residual`; the rest has defaults. Time-dependent problems name their time coordinate
    (``time_axis``, for causal training) and periodic ones the axes along which the box's side
    is one period (``periodic_axes``, for exact periodic embeddings).
    """

    n_out: eqx.AbstractClassVar[int]
    time_axis: ClassVar[int | None] = None
    periodic_axes: ClassVar[tuple] = ()

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
def as_operator(A):
    """A dense 2-D matrix (NumPy or JAX array, or nested lists) as a `MatrixOperator`; anything
    else passes unchanged (the problem's check names what was wrong)."""
    if isinstance(A, AbstractLinearOperator) or isinstance(A, (str, bytes, dict)) or A is None:
        return A
    if isinstance(A, (np.ndarray, jax.Array, list, tuple)) and np.ndim(A) == 2:
        from ._linop import MatrixOperator

        M = as_array(A, "a matrix A must be numeric")
        if not jnp.issubdtype(M.dtype, jnp.inexact):
            M = M.astype(jnp.result_type(float))
        return MatrixOperator.from_array(M)
    return A


def _check_operator(owner: str, A) -> None:
    if not isinstance(A, AbstractLinearOperator):
        extra = f" of shape {tuple(np.shape(A))}" if hasattr(A, "shape") else ""
        raise TypeError(f"{owner}: A must be a linear operator (an invsolve.AbstractLinearOperator such as "
                        f"invsolve.MatrixOperator.from_array(M) or poisson.operator(...)"
                        f"{', or a 2-D matrix' if owner == 'LinearInverse' else ''}), got {type(A).__name__}{extra}.")


def check_noise(owner: str, noise, y_obs) -> None:
    """``noise`` is a noise model (``neg_log_likelihood``); its per-datum parameters (a
    `GaussianNoise` sigma, a Poisson ``background``, a ``read_sigma``) are scalars or broadcast
    to the data's shape (one per datum)."""
    if not callable(getattr(noise, "neg_log_likelihood", None)):
        raise TypeError(f"{owner}: noise must be a noise model such as invsolve.GaussianNoise(sigma) (or a positive "
                        f"sigma), got "
                        f"{type(noise).__name__} {noise!r}.")
    for name in ("sigma", "read_sigma", "background"):
        value = getattr(noise, name, None)
        if value is None or jnp.ndim(value) == 0:
            continue
        shape, data = tuple(jnp.shape(value)), tuple(jnp.shape(y_obs))
        try:
            ok = np.broadcast_shapes(shape, data) == data
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{owner}: the noise {name} has shape {shape}, which does not fit the data of shape "
                             f"{data}; pass a scalar {name} or one per datum (shape {data}).")


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
