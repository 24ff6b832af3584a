"""Families as components: prepared features carry their family, the regression
family declares its per-row fields (chunking), one component serves both builders."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
from jaxem import models
from jaxem._src.families import bernoulli


def _bits(n=40, d=3, seed=0):
    return (np.random.default_rng(seed).uniform(size=(n, d)) < 0.4).astype(np.float64)


def test_poisson_mixture_refuses_bernoulli_features():
    # Both used to be CountFeatures: the Poisson mixture fitted rates of shape (2, 2)
    # for 3 columns (its stats [1, log h, x] read as [1, x] of the Bernoulli).
    features = models.bernoulli_mixture(2).prepare(_bits())
    poisson = models.poisson_mixture(2)
    with pytest.raises(ValueError, match="x is BernoulliFeatures"):
        jaxem.fit(poisson, features, key=0, max_iter=3)
    with pytest.raises(ValueError, match="x is BernoulliFeatures"):
        poisson.prepare(features)
    with pytest.raises(ValueError, match="x is BernoulliFeatures"):
        models.categorical_mixture(2).prepare(features)


def test_each_family_accepts_its_own_features_unchanged():
    counts = np.random.default_rng(1).poisson(2.0, size=(30, 3)).astype(np.float64)
    for model, x in [
        (models.poisson_mixture(2), counts),
        (models.categorical_mixture(2), counts),
        (models.bernoulli_mixture(2), _bits()),
        (models.gaussian_mixture(2, covariance_type="diag"), counts),
    ]:
        features = model.prepare(x)
        assert model.prepare(features) is features
        direct = jaxem.fit(model, x, key=0, max_iter=5)
        prepared = jaxem.fit(model, features, key=0, max_iter=5)
        np.testing.assert_allclose(np.asarray(direct.log_likelihood), np.asarray(prepared.log_likelihood), rtol=1e-13)  # summation order


def test_full_gaussian_mixture_refuses_diag_features():
    x = np.random.default_rng(2).normal(size=(50, 3))
    diag_features = models.gaussian_mixture(2, covariance_type="diag").prepare(x)
    full = models.gaussian_mixture(2, covariance_type="full")
    with pytest.raises(ValueError, match="covariance_type='full'"):
        full.prepare(diag_features)
    with pytest.raises(ValueError, match="x holds GaussianFeatures"):
        jaxem.fit(full, diag_features, key=0, max_iter=3)
    # full and tied features are the same features
    tied = models.gaussian_mixture(2, covariance_type="tied")
    full_features = full.prepare(x)
    assert tied.prepare(full_features) is full_features


def test_hmm_refuses_another_familys_chain_data():
    symbols = np.random.default_rng(3).integers(0, 3, size=40)
    data = models.categorical_hmm(2, 3).prepare(symbols)
    with pytest.raises(ValueError, match="CategoricalFeatures"):
        jaxem.fit(models.poisson_hmm(2), data, key=0, max_iter=3)


def _regression_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    z = rng.integers(0, 2, size=n)
    y = np.where(z == 0, 1.0 + x @ [2.0, -1.0], -1.0 + x @ [-0.5, 0.5]) + 0.3 * rng.normal(size=n)
    return x, y


def test_regression_mixture_chunked_fit_equals_unchunked():
    x, y = _regression_data(1000)
    model = models.regression_mixture(2)
    one_pass = jaxem.fit(model, (x, y), key=0, chunk_size=None)
    chunked = jaxem.fit(model, (x, y), key=0, chunk_size=64)
    for a, b in zip(jax.tree_util.tree_leaves(one_pass.params), jax.tree_util.tree_leaves(chunked.params)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10)
    np.testing.assert_allclose(float(chunked.log_likelihood), float(one_pass.log_likelihood), rtol=1e-10)


def test_regression_mixture_auto_chunks_many_rows():
    # Above 32 768 rows chunk_size="auto" chunks: that crashed (AttributeError, no field x).
    x, y = _regression_data(40_000, seed=1)
    result = jaxem.fit(models.regression_mixture(2), (x, y), key=0, max_iter=5)
    assert np.isfinite(float(result.log_likelihood))
    assert result.params.coefs.shape == (2, 2)


class _BernoulliHMMParams(NamedTuple):
    initial_probs: jax.Array
    transition_matrix: jax.Array
    probs: jax.Array


def test_one_component_serves_mixture_and_hmm():
    # A family written once (bernoulli.py) is an HMM emission without further code.
    component = bernoulli.component("probs")
    model = jaxem.component_hmm(component, 2, params_type=_BernoulliHMMParams)
    params = _BernoulliHMMParams(
        jnp.asarray([0.5, 0.5]), jnp.asarray([[0.9, 0.1], [0.2, 0.8]]), jnp.asarray([[0.1, 0.9], [0.8, 0.3]])
    )
    obs, states = jaxem.sample(model, params, 0, 300)
    assert obs.shape == (300, 2) and states.shape == (300,)
    result = jaxem.fit(model, np.asarray(obs, np.float64), key=0, n_restarts=4)
    assert result.params.probs.shape == (2, 2)
    history = np.asarray(result.history[int(result.best_restart)])[: int(result.n_iter[int(result.best_restart)])]
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    mixture = jaxem.component_mixture(component, 2, params_type=models.BernoulliMixtureParams)
    assert jaxem.fit(mixture, _bits(), key=0).params.probs.shape == (2, 3)
