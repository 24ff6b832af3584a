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


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("n", [7, 64, 200, 257])
def test_block_built_features_equal_one_shot_exactly(covariance_type, n):
    # Blocks of 64 rows: none (n <= 64), whole blocks only, and whole blocks plus a tail.
    from jaxem._src.families import gaussian
    from jaxem._src.families.covariance import COVARIANCES

    covariance = COVARIANCES[covariance_type]
    xs = jnp.asarray(np.random.default_rng(n).normal(size=(n, 5)), jnp.float32)
    one_shot = jax.jit(gaussian.block_features, static_argnums=1)(xs, covariance)
    blocks = jax.jit(gaussian.feature_rows, static_argnums=(1, 2))(xs, covariance, 64)
    assert blocks.shape == (n, 1 + 5 + covariance.n_quadratic(5))
    np.testing.assert_array_equal(np.asarray(blocks), np.asarray(one_shot))
    i, j = np.triu_indices(5)
    if covariance_type in ("full", "tied"):  # the layout T(x) = [1, x, upper(x xᵀ)]
        x = np.asarray(xs, np.float64)
        np.testing.assert_allclose(np.asarray(blocks)[:, 6:], x[:, i] * x[:, j], rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(blocks)[:, 0], 1.0)


def test_prepare_with_block_built_features_equals_unblocked_prepare():
    # Above FEATURE_BLOCK_ROWS rows prepare builds the features block by block.
    from jaxem._src.families import gaussian
    from jaxem._src.families.covariance import COVARIANCES

    x, *_ = blobs(5, n=gaussian.FEATURE_BLOCK_ROWS * 2 + 13)
    model = jaxem.models.gaussian_mixture(3, covariance_type="full")
    features = model.prepare(x)
    one_shot = jax.jit(gaussian.block_features, static_argnums=1)(features.x, COVARIANCES["full"])
    np.testing.assert_array_equal(np.asarray(features.stats), np.asarray(one_shot))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_prepare_returns_prepared_features_without_a_copy(covariance_type):
    # Through jit, an input returned as output is copied: at N = 10⁷ that was a second
    # 5.8 GiB feature matrix in every fit on prepared features.
    x, *_ = blobs(6, n=50)
    model = jaxem.models.gaussian_mixture(2, covariance_type=covariance_type)
    features = model.prepare(x)
    again = model.prepare(features)
    assert again is features
    assert again.stats.unsafe_buffer_pointer() == features.stats.unsafe_buffer_pointer()


@pytest.mark.parametrize(
    "covariance_type, dtype, rows",
    [("full", jnp.float32, 4096), ("full", jnp.float64, 2048), ("diag", jnp.float32, 16384), ("diag", jnp.float64, 8192)],
)
def test_auto_chunk_size_keeps_a_chunk_of_features_within_the_budget(covariance_type, dtype, rows):
    from jaxem._src import chunking

    model = jaxem.models.gaussian_mixture(32, covariance_type=covariance_type)
    big = jax.ShapeDtypeStruct((200_000, 16), dtype)
    assert chunking.auto_chunk_size(model, big) == rows
    assert chunking.auto_chunk_size(model, jax.ShapeDtypeStruct((chunking.MIN_ROWS_TO_CHUNK, 16), dtype)) is None
    n_features = 1 + 16 + (16 * 17 // 2 if covariance_type == "full" else 16)
    itemsize = jnp.dtype(dtype).itemsize
    assert rows * n_features * itemsize <= chunking.CHUNK_BYTES < 2 * rows * n_features * itemsize


@pytest.mark.slow
def test_chunked_float32_fit_equals_unchunked():
    # 40 000 rows: "auto" chunks them (16 384-row chunks for D = 3, plus a tail).
    x, *_ = blobs(7, n=40_000)
    x = np.asarray(x, np.float32)
    for covariance_type in ("full", "diag"):
        model = jaxem.models.gaussian_mixture(3, covariance_type=covariance_type)
        plain = jaxem.fit(model, x, key=jax.random.key(2), max_iter=20, tol=0.0, chunk_size=None)
        chunked = jaxem.fit(model, x, key=jax.random.key(2), max_iter=20, tol=0.0)
        np.testing.assert_allclose(np.asarray(chunked.history), np.asarray(plain.history), rtol=2e-6)
        np.testing.assert_allclose(np.asarray(chunked.params.means), np.asarray(plain.params.means), rtol=1e-4, atol=1e-4)


def test_last_overlapping_chunk_counts_each_row_once():
    # N = 250, chunks of 100: the last chunk is rows 150..249, rows 150..199 were
    # counted by the chunk before and must add exact zeros. A weight on one of them
    # alone gives exactly that row's log-likelihood and statistics (2x if counted twice).
    from jaxem._src import chunking

    x, *_ = blobs(8, n=250)
    model = jaxem.models.gaussian_mixture(3, covariance_type="full")
    params = jaxem.init(model, jax.random.key(0), x)
    features = model.prepare(x)
    for row in (120, 160, 230):
        weight = jnp.zeros(250).at[row].set(1.0)
        log_lik, stats = chunking.statistics(model, params, features, weight, chunk_size=100)
        one = features._replace(stats=features.stats[row : row + 1], x=features.x[row : row + 1])
        row_log_lik, row_stats = chunking.chunk_statistics(model, params, one)
        assert np.isfinite(float(log_lik)) and np.all(np.isfinite(np.asarray(stats)))
        np.testing.assert_allclose(float(log_lik), float(row_log_lik), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(stats), np.asarray(row_stats), rtol=1e-10, atol=1e-13)


def test_weighted_chunked_fit_equals_unchunked_when_chunks_do_not_divide_n():
    x, *_ = blobs(9, n=1001)  # 1001 = 7 * 128 + 105
    weight = np.random.default_rng(1).uniform(0.0, 3.0, size=x.shape[0])
    model = jaxem.models.gaussian_mixture(3, covariance_type="full")
    plain = jaxem.fit(model, x, key=jax.random.key(3), n_restarts=2, max_iter=15, tol=0.0, sample_weight=weight, chunk_size=None)
    chunked = jaxem.fit(model, x, key=jax.random.key(3), n_restarts=2, max_iter=15, tol=0.0, sample_weight=weight, chunk_size=128)
    np.testing.assert_allclose(np.asarray(chunked.history), np.asarray(plain.history), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(chunked.all_log_likelihoods), np.asarray(plain.all_log_likelihoods), rtol=1e-10)
    for a, b in zip(jax.tree_util.tree_leaves(chunked.all_params), jax.tree_util.tree_leaves(plain.all_params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-8, atol=1e-10)
