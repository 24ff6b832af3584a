"""Preparation on padded data: one program per bucket, not per N.

``buckets.pad_rows`` pads *prepared* rows, so the preparation itself (the
Gaussian's standardization and features, one compiled program per shape) still
compiled once per N. Here the raw rows are padded first, on the host, with rows of
zeros up to ``buckets.bucket_size(N)``, and prepared by one program per bucket
that takes the number of real rows ``n`` as an argument:

* the standardization (``masked_standardization``) is that of the real rows alone:
  the padding rows are masked out of the largest magnitude, the mean and the
  spread (their centred values are set to zero and the mean of squares rescaled
  from ``M`` to ``n`` rows);
* the padding rows' features are then set to zero, as ``pad_rows`` leaves them.

So ``prepare_padded(model, x, w)`` equals ``pad_rows(model, model.prepare(x), w)``
up to the order of the sums (float rounding). It applies to Gaussian mixtures
(``jaxem.models.gaussian_mixture`` without missing values or a prior), whose
preparation depends on all rows; any other model's data is prepared, then padded
(``buckets.pad_rows``; an HMM's batch by ``sequence_buckets.pad_sequences``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import buckets, exported, sequence_buckets, validation
from jaxem._src.base import Array, Model
from jaxem._src.families.covariance import Covariance, covariance_of, registered_name
from jaxem._src.families.gaussian import GaussianFeatures, _power_of_two_below, feature_rows


def masked_standardization(flat: Array, present: Array, covariance: Covariance):
    """``(unit, shift_y, spread_y)`` of the rows of ``flat [M, D]`` where
    ``present [M]`` is True, as the Gaussian's ``_standardization`` of those rows
    alone gives them (``x' = (x / unit - shift_y) / spread_y``).

    Examples:
      >>> from jaxem._src.families.covariance import covariance_of
      >>> x = jnp.array([[1.0, 10.0], [3.0, 30.0], [0.0, 0.0]])       # last row: padding
      >>> unit, shift, spread = masked_standardization(x, jnp.array([True, True, False]), covariance_of("diag"))
      >>> np.round(shift * unit, 6).tolist(), np.round(spread * unit, 6).tolist()   # of the first two rows
      ([2.0, 20.0], [1.0, 10.0])
    """
    rows = jnp.sum(present.astype(jnp.int32)).astype(flat.dtype)
    keep = present[:, None]
    zeroed = jnp.where(keep, flat, jnp.zeros_like(flat))
    unit = covariance.pooled_units(_power_of_two_below(jnp.max(jnp.abs(zeroed), axis=0)))
    y = zeroed / unit[None, :]
    shift_y = jnp.sum(y, axis=0) / rows
    centred = jnp.where(keep, y - shift_y[None, :], jnp.zeros_like(y))
    spread_y = covariance.spread(centred * jnp.sqrt(flat.shape[0] / rows))  # mean over the n real rows
    spread_y = jnp.where((spread_y > 0) & jnp.isfinite(spread_y * unit), spread_y, 1.0 / unit)
    return unit, shift_y, spread_y


@functools.partial(jax.jit, static_argnums=2)
def padded_gaussian_features(x: Array, n_rows: Array, covariance: Covariance) -> GaussianFeatures:
    """``GaussianFeatures`` of ``x [M, D]`` whose first ``n_rows`` rows are real:
    standardized as those rows alone, the other rows' features all zero."""
    present = jnp.arange(x.shape[0], dtype=jnp.int32) < n_rows
    unit, shift_y, spread_y = masked_standardization(x, present, covariance)
    xs = (x / unit[None, :] - shift_y[None, :]) / spread_y[None, :]
    xs = jnp.where(present[:, None], xs, jnp.zeros_like(xs))
    stats = feature_rows(xs, covariance)
    stats = jnp.where(present[:, None], stats, jnp.zeros_like(stats))
    return GaussianFeatures(stats, xs, shift_y * unit, spread_y * unit)


def _covariance(model: Model):
    """The covariance type of a plain Gaussian mixture (registered, no missing
    values, no prior), else ``None``."""
    spec = model.spec
    if getattr(spec, "factory", None) != "gaussian_mixture":  # also a frozen model's FrozenSpec
        return None
    options = spec.as_dict()
    if options.get("missing") != "reject" or options.get("prior") is not None:
        return None
    return covariance_of(options["covariance_type"])


def prepare_padded(model: Model, data, sample_weight):
    """``buckets.pad_rows(model, model.prepare(data), sample_weight)``, compiled
    once per bucket for raw NumPy rows of a Gaussian mixture (see above); for
    other models and data, exactly that.

    Args:
      model: the model (``chunking.with_chunk_size`` already applied).
      data: the raw data, checked (``validation.as_data``), or prepared features.
      sample_weight: ``[N]`` checked weights, or ``None``.

    Returns:
      ``(prepared data, sample_weight)``, as ``buckets.pad_rows`` returns them.
    """
    covariance = _covariance(model)
    if covariance is None or not _host_rows(data):
        return _prepare_then_pad(model, data, sample_weight)
    x = np.asarray(data)
    x = x.astype(jax.dtypes.canonicalize_dtype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64))
    n = x.shape[0]
    if not buckets.model_can_pad(model) or n > buckets.MAX_BUCKETED_ROWS:
        return _prepare_then_pad(model, data, sample_weight)
    extra = buckets.bucket_size(n) - n
    weights = np.ones((n,), x.dtype) if sample_weight is None else sample_weight
    padded = jax.device_put(np.pad(x, [(0, extra), (0, 0)]))
    prepare = lambda x, n: padded_gaussian_features(x, n, covariance)  # noqa: E731
    features = exported.call_function("padded_gaussian_features", prepare, registered_name(covariance), padded, np.int32(n))  # kept between processes
    return features, buckets._pad(weights, extra)


def _prepare_then_pad(model: Model, data, sample_weight):
    """Prepared, then padded: mixture rows (``buckets.pad_rows``) or HMM
    sequences and steps (``sequence_buckets.pad_sequences``), where they apply."""
    data, sample_weight = buckets.pad_rows(model, model.prepare(data), sample_weight)
    return sequence_buckets.pad_sequences(model, data, sample_weight)


def _host_rows(data) -> bool:
    """Whether ``data`` is a concrete ``[N, D]`` array of numbers on one device (not
    features, not traced, not sharded: those are prepared as they are)."""
    if isinstance(data, tuple) or not validation.is_concrete(data):
        return False
    sharding = getattr(data, "sharding", None)
    if sharding is not None and len(sharding.device_set) > 1:
        return False
    return hasattr(data, "shape") and len(data.shape) == 2 and hasattr(data, "dtype") and (
        np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.bool_)
    )
