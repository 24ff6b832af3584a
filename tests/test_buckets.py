"""Row buckets: a padded fit equals the unpadded one, and one program serves
every N of a bucket.

References: the compiled fit (``loop.fit_restarts``) on the unpadded rows, with
the same keys: relative 1e-12 in float64, float32 rounding (1e-5) in float32;
compilations counted with the jit caches' sizes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
from jaxem._src import algorithms, buckets, loop, seeding

FIT = dict(n_restarts=3, max_iter=80, tol=1e-10)


@pytest.fixture(scope="module")
def faithful():
    return np.asarray(jaxem.load_dataset("faithful")[0], np.float64)


def unpadded(model, x, key):
    """The fit without padding: the compiled program on the real rows."""
    data = model.prepare(x)
    keys = jax.random.split(jax.random.key(key), FIT["n_restarts"])
    tol = jnp.asarray(FIT["tol"], x.dtype)
    return loop.fit_restarts(model, data, keys, None, None, tol, make_algorithm=algorithms.em, max_iter=FIT["max_iter"])


def test_bucket_sizes():
    sizes = [buckets.bucket_size(n) for n in range(1, 5000)]
    assert sizes[:16] == [16] * 16 and buckets.bucket_size(17) == 24 and buckets.bucket_size(25) == 32
    for n, size in zip(range(1, 5000), sizes):
        assert n <= size <= max(16, 1.5 * n)
    assert len(set(sizes)) < 25  # a few programs for all N up to 5000


@pytest.mark.parametrize("init", ["kmeans++", "random_from_data"])
def test_padded_equals_unpadded_float64(faithful, init):
    model = jaxem.models.gaussian_mixture(2 if init == "kmeans++" else 3, init=init)
    x = faithful[:190]  # padded to 192 rows
    assert buckets.bucket_size(190) == 192
    padded = jaxem.fit(model, x, key=1, **FIT)
    alone = unpadded(model, x, 1)
    np.testing.assert_allclose(float(padded.log_likelihood), float(alone.log_likelihood), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(padded.n_iter), np.asarray(alone.n_iter))
    for got, want in zip(padded.params, alone.params):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-12)
    # the reported log-likelihood is that of the real rows only
    np.testing.assert_allclose(float(jaxem.log_likelihood(model, padded.params, x)), float(padded.log_likelihood), rtol=1e-12)


def test_padded_equals_unpadded_float32(faithful):
    model = jaxem.models.gaussian_mixture(2)
    x = faithful[:100].astype(np.float32)
    padded = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=30, tol=1e-4)
    data = model.prepare(x)
    alone = loop.fit_restarts(
        model, data, jax.random.split(jax.random.key(0), 2), None, None, jnp.asarray(1e-4, jnp.float32),
        make_algorithm=algorithms.em, max_iter=30,
    )
    assert padded.log_likelihood.dtype == jnp.float32
    np.testing.assert_allclose(float(padded.log_likelihood), float(alone.log_likelihood), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(padded.params.means), np.asarray(alone.params.means), rtol=1e-4, atol=1e-4)


def test_one_program_per_bucket(faithful):
    model = jaxem.models.gaussian_mixture(2)
    jaxem.fit(model, faithful[:190], key=0, **FIT)
    compiled = loop.fit_restarts._cache_size()
    for n in (145, 170, 181, 192):  # cross-validation folds of other sizes, same bucket
        jaxem.fit(model, faithful[:n], key=0, **FIT)
    again = jaxem.models.gaussian_mixture(2)  # an equal model: the same object, the same programs
    assert again is model
    jaxem.fit(again, faithful[:150], key=0, **FIT)
    assert loop.fit_restarts._cache_size() == compiled


def test_seeders_never_draw_padding():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20, 2)), np.full((12, 2), 1e3)])
    present = jnp.arange(32) < 20
    for seed_centres in (seeding.kmeans_plus_plus, seeding.random_from_data, seeding.kmeans):
        for key in range(5):
            centres = np.asarray(seed_centres(jax.random.key(key), jnp.asarray(x), 4, present))
            assert np.all(np.abs(centres) < 100), seed_centres.__name__


def test_sample_weight_padded(faithful):
    model = jaxem.models.gaussian_mixture(2)
    x = faithful[:190]
    weight = np.linspace(0.5, 2.0, 190)
    padded = jaxem.fit(model, x, key=0, sample_weight=weight, **FIT)
    data = model.prepare(x)
    alone = loop.fit_restarts(
        model, data, jax.random.split(jax.random.key(0), FIT["n_restarts"]), None, jnp.asarray(weight),
        jnp.asarray(FIT["tol"]), make_algorithm=algorithms.em, max_iter=FIT["max_iter"],
    )
    np.testing.assert_allclose(float(padded.log_likelihood), float(alone.log_likelihood), rtol=1e-12)


def test_no_padding_for_a_users_init(faithful):
    model = jaxem.models.gaussian_mixture(2)
    data = model.prepare(faithful[:100])
    assert buckets.can_pad(model, data)
    own = model._replace(init=lambda key, features: model.init(key, features))  # may not skip padding rows
    assert not buckets.can_pad(own, data)
    assert buckets.pad_rows(own, data, None) == (data, None)
