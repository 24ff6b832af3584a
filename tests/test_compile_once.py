"""Compile once: preparation padded to row buckets, fewer small programs.

References: ``buckets.pad_rows(model.prepare(x))`` (the preparation of the real
rows alone, then padded): 1e-12 relative in float64, float32 rounding in float32;
compilations counted with JAX's backend-compile monitoring events
(``tests/compile_counter.py``, persistent cache off).
"""

import jax
import numpy as np
import pytest

import jaxem
from jaxem._src import buckets, padded_prepare, seeding
from compile_counter import counting

COVARIANCES = ("full", "tied", "diag", "spherical")
pytestmark = pytest.mark.filterwarnings("ignore:no restart of the EM fit converged")


@pytest.fixture(scope="module")
def faithful():
    return np.asarray(jaxem.load_dataset("faithful")[0], np.float64)


@pytest.mark.parametrize("covariance_type", COVARIANCES)
def test_padded_preparation_equals_preparing_then_padding(faithful, covariance_type):
    model = jaxem.models.gaussian_mixture(2, covariance_type=covariance_type)
    for n, dtype, rtol in ((190, np.float64, 1e-12), (100, np.float32, 1e-5)):
        x = (faithful[:n] * [1.0, 1e3]).astype(dtype)  # features of different magnitudes
        got, got_weight = padded_prepare.prepare_padded(model, x, None)
        want, want_weight = buckets.pad_rows(model, model.prepare(x), None)
        assert got.stats.shape == want.stats.shape == (buckets.bucket_size(n), want.stats.shape[1])
        assert got.stats.dtype == dtype
        for field, a, b in zip(got._fields, got, want):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=rtol, err_msg=field)
        np.testing.assert_array_equal(np.asarray(got_weight), np.asarray(want_weight))
        assert not np.any(np.asarray(got.stats)[n:])  # padding rows: zero features


def test_masked_standardization_ignores_padding_values(faithful):
    from jaxem._src.families.covariance import covariance_of

    x = faithful[:50]
    junk = np.concatenate([x, np.full((14, 2), 1e6)])  # padding rows of any value
    present = np.arange(64) < 50
    standardization = jax.jit(padded_prepare.masked_standardization, static_argnums=2)  # not op by op
    for covariance in map(covariance_of, COVARIANCES):
        alone = standardization(x, np.ones(50, bool), covariance)
        padded = standardization(junk, present, covariance)
        for a, b in zip(alone, padded):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12)
        # and the one-shot standardization of the rows alone, as prepare computes it
        features = jaxem.models.gaussian_mixture(2, covariance_type=covariance.name).prepare(x)
        np.testing.assert_allclose(np.asarray(alone[1] * alone[0]), np.asarray(features.shift), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(alone[2] * alone[0]), np.asarray(features.scale), rtol=1e-12)


def test_a_new_n_in_the_bucket_compiles_nothing(faithful):
    model = jaxem.models.gaussian_mixture(2)
    fit = dict(key=0, n_restarts=1, max_iter=5, tol=0.0)
    jaxem.fit(model, faithful[:170], **fit)  # bucket 192
    with counting() as count:
        for n in (150, 181, 192):  # cross-validation folds of other sizes
            result = jaxem.fit(model, faithful[:n], **fit)
    assert count.programs == 0, count.programs
    assert result.params.means.shape == (2, 2)


def test_a_new_n_in_the_bucket_compiles_nothing_float32(faithful):
    model = jaxem.models.gaussian_mixture(2, covariance_type="diag")
    fit = dict(key=0, n_restarts=2, max_iter=5, tol=0.0, progress=lambda info: None)  # the progress path too
    jaxem.fit(model, faithful[:100].astype(np.float32), **fit)
    with counting() as count:
        result = jaxem.fit(model, faithful[:120].astype(np.float32), **fit)
    assert count.programs == 0, count.programs
    assert result.log_likelihood.dtype == np.float32


@pytest.mark.slow  # test_buckets.py's padded-equals-unpadded tests take this path by default
def test_padded_fit_equals_unpadded_fit(faithful):
    """The whole fit through the padded preparation: the same as the compiled
    loop on the real rows alone (test_buckets.py's reference)."""
    from jaxem._src import algorithms, loop

    model = jaxem.models.gaussian_mixture(3, covariance_type="diag")
    x = faithful[:170]
    padded = jaxem.fit(model, x, key=2, n_restarts=3, max_iter=40, tol=1e-10)
    keys = jax.random.split(jax.random.key(2), 3)
    alone = loop.fit_restarts(model, model.prepare(x), keys, None, None, np.float64(1e-10),
                              make_algorithm=algorithms.em, max_iter=40)
    np.testing.assert_allclose(float(padded.log_likelihood), float(alone.log_likelihood), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(padded.n_iter), np.asarray(alone.n_iter))
    for a, b in zip(padded.params, alone.params):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_kmeans_plus_plus_is_prefix_consistent(faithful):
    """One uniform per centre, drawn up front: the K-centre seeding is the first K
    centres of the (K + 2)-centre one (so seedings for every K agree)."""
    x = jax.numpy.asarray(faithful)
    for key in range(3):
        small = np.asarray(seeding.kmeans_plus_plus(jax.random.key(key), x, 3))
        large = np.asarray(seeding.kmeans_plus_plus(jax.random.key(key), x, 5))
        np.testing.assert_array_equal(small, large[:3])
        assert all(any(np.array_equal(c, row) for row in faithful) for c in large)  # rows of x


def test_kmeans_plus_plus_draws_by_squared_distance():
    """The second centre's frequencies against the exact k-means++ probabilities
    (d² to the first centre over the total), 4000 seeds; 5 standard errors."""
    x = jax.numpy.asarray([[0.0], [1.0], [3.0]])
    draws = jax.vmap(lambda k: seeding.kmeans_plus_plus(k, x, 2))(jax.random.split(jax.random.key(0), 4000))
    first, second = np.asarray(draws[:, 0, 0]), np.asarray(draws[:, 1, 0])
    for origin in (0.0, 1.0, 3.0):
        picked = second[first == origin]
        d2 = (np.array([0.0, 1.0, 3.0]) - origin) ** 2
        for value, p in zip((0.0, 1.0, 3.0), d2 / d2.sum()):
            frequency = np.mean(picked == value)
            assert abs(frequency - p) <= 5 * np.sqrt(p * (1 - p) / picked.size) + 1e-12, (origin, value)
