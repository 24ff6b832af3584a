"""Hostile data: every fit ends with finite params and log-likelihood, or a clear error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem

def _types(*default):
    """All four covariance types; those not in ``default`` only in the slow run."""
    return [t if t in default else pytest.param(t, marks=pytest.mark.slow) for t in ("full", "tied", "diag", "spherical")]


# One model per configuration, shared by the tests, so that compiled code is reused.
_MODELS = {}


def _model(k, covariance_type):
    if (k, covariance_type) not in _MODELS:
        _MODELS[k, covariance_type] = jaxem.models.gaussian_mixture(k, covariance_type=covariance_type)
    return _MODELS[k, covariance_type]


def _assert_finite(model, result, x):
    for leaf in jax.tree_util.tree_leaves(result.params):
        assert bool(jnp.all(jnp.isfinite(leaf))), result.params
    assert np.isfinite(float(result.log_likelihood))
    assert np.all(np.isfinite(np.asarray(jaxem.score_samples(model, result.params, x))))
    assert np.all(np.isfinite(np.asarray(jaxem.posterior(model, result.params, x))))


def _two_clusters(rng, n, offset, scales):
    d = len(scales)
    z = rng.integers(2, size=n)
    x = rng.normal(size=(n, d)) + 4.0 * z[:, None]
    return offset + x * np.asarray(scales)[None, :], z


@pytest.mark.parametrize("covariance_type", _types("full"))
def test_float32_huge_offset_and_wild_feature_scales(covariance_type):
    rng = np.random.default_rng(0)
    scales = [1e-3, 1.0, 1e4]
    x64, z = _two_clusters(rng, 400, 1e6, scales)
    x = x64.astype(np.float32)
    model = _model(2, covariance_type)
    result = jaxem.fit(model, x, key=0, n_restarts=4)
    _assert_finite(model, result, x)
    assert result.params.means.dtype == jnp.float32
    # Recovers the clusters: each true cluster is one fitted component.
    labels = np.asarray(jaxem.predict(model, result.params, x))
    agreement = max(np.mean(labels == z), np.mean(labels != z))
    assert agreement > 0.97
    # and the float32 fit's log-likelihood matches the float64 fit's of the same data
    reference = jaxem.fit(model, x.astype(np.float64), key=0, n_restarts=4)
    assert float(result.log_likelihood) == pytest.approx(float(reference.log_likelihood), rel=1e-3)


@pytest.mark.parametrize("covariance_type", _types("full"))
def test_duplicated_points_fewer_distinct_than_components(covariance_type):
    distinct = np.array([[0.0, 1.0], [5.0, -2.0], [3.0, 3.0]])
    x = np.repeat(distinct, 20, axis=0).astype(np.float32)
    model = _model(5, covariance_type)
    result = jaxem.fit(model, x, key=1, n_restarts=3)
    _assert_finite(model, result, x)
    same = np.ones((10, 2), np.float32) * 7.0  # a single distinct point
    model2 = _model(3, covariance_type)
    _assert_finite(model2, jaxem.fit(model2, same, key=0, n_restarts=2), same)


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_256_features(covariance_type):
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(300, 256)) + 3.0 * rng.integers(2, size=300)[:, None]).astype(np.float32)
    model = _model(2, covariance_type)
    result = jaxem.fit(model, x, key=0, max_iter=20)
    _assert_finite(model, result, x)


@pytest.mark.parametrize("covariance_type", _types("tied"))
def test_as_many_components_as_points(covariance_type):
    x = np.random.default_rng(3).normal(size=(6, 2)).astype(np.float32)
    model = _model(6, covariance_type)
    result = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=50)
    _assert_finite(model, result, x)


@pytest.mark.parametrize("covariance_type", _types("spherical"))
def test_component_that_empties_during_em(covariance_type):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 6.0])
    # Third component far from all data: its responsibilities underflow to zero.
    start = jaxem.models.gaussian_mixture_params(
        [0.45, 0.45, 0.1],
        [[0.0, 0.0], [6.0, 6.0], [1e4, -1e4]],
        {"full": np.stack([np.eye(2)] * 3), "tied": np.eye(2), "diag": np.ones((3, 2)), "spherical": np.ones(3)}[covariance_type],
        covariance_type,
    )
    model = _model(3, covariance_type)
    params, log_lik = jaxem.em_step(model, start, x)
    assert float(params.weights[2]) < 1e-12  # it did empty
    result = jaxem.fit(model, x, key=0, init_params=start, max_iter=50)
    _assert_finite(model, result, x)
    history = np.asarray(result.history[0])
    history = history[np.isfinite(history)]
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))  # still monotone


@pytest.mark.parametrize("covariance_type", _types("diag"))
def test_extremely_peaked_data(covariance_type):
    rng = np.random.default_rng(5)
    tight = 3.0 + 1e-9 * rng.normal(size=(150, 2))  # all but identical
    wide = rng.normal(size=(150, 2)) * 10.0
    x = np.concatenate([tight, wide]).astype(np.float32)
    model = _model(2, covariance_type)
    result = jaxem.fit(model, x, key=0, n_restarts=3)
    _assert_finite(model, result, x)
    x64 = np.concatenate([tight, wide])
    result64 = jaxem.fit(model, x64, key=0, n_restarts=3)
    _assert_finite(model, result64, x64)


def test_values_whose_squares_overflow():
    rng = np.random.default_rng(6)
    for dtype, big in ((np.float32, 1e25), (np.float64, 1e200)):
        x = (rng.normal(size=(60, 2)) * big).astype(dtype)
        model = _model(2, "full")
        _assert_finite(model, jaxem.fit(model, x, key=0, max_iter=10), x)


def test_bad_params_are_rejected_up_front():
    x = np.random.default_rng(7).normal(size=(20, 2))
    model = _model(2, "full")
    params = jaxem.init(model, 0, x)
    cases = [
        (None, TypeError, "params must be the model's parameters"),
        (params._replace(means=params.means.tolist()), TypeError, "params.means must be a real numeric array"),
        (params._replace(means=params.means.at[0, 0].set(np.nan)), ValueError, "params.means contains NaN"),
        (params._replace(weights=jnp.array([1.5, -0.5])), ValueError, "params.weights must be non-negative"),
        (params._replace(precisions_cholesky=params.precisions_cholesky.at[0, 1, 1].set(0.0)), ValueError, "invertible"),
    ]
    for bad, error, match in cases:
        for call in (jaxem.em_step, jaxem.posterior, jaxem.score_samples, jaxem.predict, jaxem.log_likelihood, jaxem.bic):
            with pytest.raises(error, match=match):
                call(model, bad, x)
    with pytest.raises(ValueError, match="params.means contains NaN"):
        jaxem.sample(model, cases[2][0], 0, 5)
    # float32 data 1e29 sd away from unit-variance components: the natural parameters overflow
    far = jaxem.models.gaussian_mixture_params([1.0], [[0.0]], [[[1.0]]])
    with pytest.raises(ValueError, match="overflow; use float64"):
        jaxem.score_samples(_model(1, "full"), far, np.array([[1.3e29], [-1.2e29]], np.float32))
