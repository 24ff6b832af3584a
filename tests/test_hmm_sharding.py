"""HMMs sharded over sequences on 4 CPU devices (tests/conftest.py): padded with
sequences of length 0 to equal shards, the fit equals the unsharded one (float64)."""

import jax
import numpy as np
import pytest

import jaxem
from jaxem._src.hmm import draw_index


def ragged_gaussian_sequences(seed, n_sequences=10):
    rng = np.random.default_rng(seed)
    means = np.array([[-3.0, 0.0], [0.0, 3.0], [3.0, -1.0]])
    sequences = []
    for _ in range(n_sequences):
        states = np.cumsum(rng.random(int(rng.integers(15, 40))) < 0.15) % 3
        sequences.append(means[states] + rng.normal(size=(states.size, 2)))
    return jaxem.Sequences.from_list(sequences)


def assert_same_fit(a, b):
    np.testing.assert_allclose(np.asarray(b.history), np.asarray(a.history), rtol=1e-10)
    for x, y in zip(jax.tree_util.tree_leaves(a.all_params), jax.tree_util.tree_leaves(b.all_params)):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-8, atol=1e-10)


@pytest.mark.slow
def test_gaussian_hmm_sharded_over_sequences_equals_unsharded_fit():
    assert jax.device_count() == 4
    data = ragged_gaussian_sequences(0)  # 10 sequences: padded to 12
    model = jaxem.models.gaussian_hmm(3)
    sharded = jaxem.shard_rows(model, data)
    assert sharded.lengths.shape == (12,) and len(sharded.lengths.sharding.device_set) == 4
    assert sharded.features.stats.addressable_shards[0].data.shape[0] == 3
    np.testing.assert_array_equal(np.asarray(sharded.lengths)[10:], 0)
    # from a key: k-means++ seeding, standardization and counts ignore the padding
    a = jaxem.fit(model, data, key=4, n_restarts=2, max_iter=12, tol=0.0)
    b = jaxem.fit(model, sharded, key=4, n_restarts=2, max_iter=12, tol=0.0)
    assert_same_fit(a, b)
    np.testing.assert_allclose(float(jaxem.bic(model, b.params, sharded)), float(jaxem.bic(model, a.params, data)), rtol=1e-12)


def test_categorical_hmm_sharded_em_step_and_mixture_through_the_same_entry_point():
    rng = np.random.default_rng(1)
    data = jaxem.Sequences.from_list([rng.integers(0, 4, size=int(rng.integers(5, 30))) for _ in range(7)])
    model = jaxem.models.categorical_hmm(2, n_symbols=4)
    params = jaxem.init(model, 0, data)
    sharded = jaxem.shard_rows(model, data)
    new_a, ll_a = jaxem.em_step(model, params, data)
    new_b, ll_b = jaxem.em_step(model, params, sharded)
    np.testing.assert_allclose(float(ll_b), float(ll_a), rtol=1e-13)
    for x, y in zip(jax.tree_util.tree_leaves(new_a), jax.tree_util.tree_leaves(new_b)):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-12, atol=1e-15)
    # mixtures: the same call; their rows cannot be padded
    mixture = jaxem.models.poisson_mixture(2)
    counts = rng.poisson(3.0, size=(8, 2))
    assert len(jaxem.shard_rows(mixture, counts).stats.sharding.device_set) == 4
    with pytest.raises(ValueError, match="multiple of the number of devices"):
        jaxem.shard_rows(mixture, counts[:7])


@pytest.mark.slow
def test_one_sequence_and_prepared_chain_data_are_sharded_too():
    model = jaxem.models.gaussian_hmm(2)
    data = ragged_gaussian_sequences(2, n_sequences=5)
    prepared = model.prepare(data)
    params = jaxem.init(model, 1, data)
    sharded = jaxem.shard_rows(model, prepared)
    assert sharded.lengths.shape == (8,)
    np.testing.assert_allclose(
        float(jaxem.log_likelihood(model, params, sharded)), float(jaxem.log_likelihood(model, params, data)), rtol=1e-13
    )
    one = np.asarray(data.obs[0, : int(data.lengths[0])])
    sharded_one = jaxem.shard_rows(model, one)
    np.testing.assert_allclose(
        float(jaxem.log_likelihood(model, params, sharded_one)), float(jaxem.log_likelihood(model, params, one)), rtol=1e-12
    )


def test_draw_index_ignores_zero_weights_anywhere():
    weights = np.array([0.5, 2.0, 1.0, 0.25])
    padded = np.array([0.0, 0.5, 0.0, 0.0, 2.0, 1.0, 0.0, 0.25, 0.0])
    where = np.flatnonzero(padded)
    for seed in range(20):
        key = jax.random.key(seed)
        assert where[int(draw_index(key, weights))] == int(draw_index(key, padded))
    counts = np.bincount([int(draw_index(k, weights)) for k in jax.random.split(jax.random.key(0), 2000)], minlength=4)
    np.testing.assert_allclose(counts / 2000, weights / weights.sum(), atol=0.04)


@pytest.mark.slow
def test_one_long_sequence_split_over_devices_equals_the_sequential_recursion():
    rng = np.random.default_rng(5)
    states = np.cumsum(rng.random(403) < 0.05) % 2
    obs = np.array([[-2.0, 0.0], [2.0, 1.0]])[states] + rng.normal(size=(403, 2))
    sequential = jaxem.models.gaussian_hmm(2)
    parallel = jaxem.models.gaussian_hmm(2, parallel=True)
    data = jaxem.shard_steps(parallel, obs)  # 403 steps padded to 404, 101 per device
    assert data.features.stats.shape[1] == 404 and data.features.stats.addressable_shards[0].data.shape[1] == 101
    assert len(data.features.stats.sharding.device_set) == 4
    params = jaxem.init(sequential, 0, obs)
    new_a, ll_a = jaxem.em_step(sequential, params, obs)
    new_b, ll_b = jaxem.em_step(parallel, params, data)
    np.testing.assert_allclose(float(ll_b), float(ll_a), rtol=1e-12)
    for x, y in zip(jax.tree_util.tree_leaves(new_a), jax.tree_util.tree_leaves(new_b)):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-9, atol=1e-12)
    posterior = np.asarray(jaxem.posterior(parallel, params, data))[0]
    np.testing.assert_allclose(posterior[:403], np.asarray(jaxem.posterior(sequential, params, obs))[0], atol=1e-10)
    np.testing.assert_array_equal(posterior[403:], 0.0)
    with pytest.raises(ValueError, match="one sequence"):
        jaxem.shard_steps(parallel, ragged_gaussian_sequences(0, 3))
