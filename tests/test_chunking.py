"""Row chunking (``chunk_size``) equals the unchunked computation (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
from tests.helpers import blobs


@pytest.mark.parametrize(
    "covariance_type, weighted", [("full", False), ("tied", True), ("diag", True), ("spherical", False)]
)
def test_chunked_em_step_equals_unchunked(covariance_type, weighted):
    x, *_ = blobs(2, n=1003)  # not a multiple of the chunk size
    model = jaxem.models.gaussian_mixture(3, covariance_type=covariance_type)
    params = jaxem.init(model, jax.random.key(0), x)
    weight = np.random.default_rng(0).uniform(0.0, 2.0, size=x.shape[0]) if weighted else None
    plain, plain_ll = jaxem.em_step(model, params, x, sample_weight=weight)
    for chunk_size in (128, 5000):
        chunked, chunked_ll = jaxem.em_step(model, params, x, sample_weight=weight, chunk_size=chunk_size)
        np.testing.assert_allclose(float(chunked_ll), float(plain_ll), rtol=1e-12)
        for a, b in zip(jax.tree_util.tree_leaves(chunked), jax.tree_util.tree_leaves(plain)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def test_chunked_fit_equals_unchunked():
    x, *_ = blobs(3, n=777)
    model = jaxem.models.gaussian_mixture(3, covariance_type="full")
    plain = jaxem.fit(model, x, key=jax.random.key(1), n_restarts=3, max_iter=30, tol=0.0)
    chunked = jaxem.fit(model, x, key=jax.random.key(1), n_restarts=3, max_iter=30, tol=0.0, chunk_size=100)
    np.testing.assert_allclose(np.asarray(chunked.history), np.asarray(plain.history), rtol=1e-10)
    np.testing.assert_allclose(float(chunked.log_likelihood), float(plain.log_likelihood), rtol=1e-10)
    for a, b in zip(jax.tree_util.tree_leaves(chunked.all_params), jax.tree_util.tree_leaves(plain.all_params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-8, atol=1e-10)


def test_chunked_step_under_user_jit_and_prepared_features():
    x, *_ = blobs(4, n=301)
    model = jaxem.models.gaussian_mixture(3, covariance_type="diag")
    params = jaxem.init(model, 0, x)
    features = model.prepare(x)
    step = jax.jit(lambda p: jaxem.em_step(model, p, features, chunk_size=64))
    new, ll = step(params)
    ref, ref_ll = jaxem.em_step(model, params, x)
    np.testing.assert_allclose(np.asarray(new.means), np.asarray(ref.means), rtol=1e-10)
    np.testing.assert_allclose(float(ll), float(ref_ll), rtol=1e-12)


def test_chunk_size_validation():
    x, *_ = blobs(0, n=50)
    model = jaxem.models.gaussian_mixture(2)
    with pytest.raises(ValueError, match="chunk_size"):
        jaxem.fit(model, x, key=0, chunk_size=0)
    generic = model._replace(m_step=lambda data, posterior, params: params)
    with pytest.raises(ValueError, match="chunk_size"):
        jaxem.em_step(generic, jaxem.init(model, 0, x), x, chunk_size=10)
