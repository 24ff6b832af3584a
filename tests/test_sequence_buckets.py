"""Sequence buckets: a padded HMM fit equals the unpadded one, and one program
serves every batch of a bucket.

References: the compiled fit (``loop.fit_restarts``) on the unpadded prepared
batch with the same keys: relative 1e-12 in float64, float32 rounding (1e-5) in
float32; compilations counted with JAX's backend-compile events
(``tests/compile_counter.py``).
"""

import jax
import numpy as np
import pytest

import jaxem
from jaxem._src import algorithms, loop, sequence_buckets
from compile_counter import counting

pytestmark = pytest.mark.filterwarnings("ignore:no restart of the EM fit converged")


@pytest.fixture(scope="module")
def geyser():
    return np.asarray(jaxem.load_dataset("geyser")[0], np.float64)  # [299, 2], one series


def unpadded(model, data, key, n_restarts, max_iter, tol, sample_weight=None):
    keys = jax.random.split(jax.random.key(key), n_restarts)
    prepared = model.prepare(data)
    tol = np.asarray(tol, prepared.features.stats.dtype)
    return loop.fit_restarts(model, prepared, keys, None, sample_weight, tol, make_algorithm=algorithms.em, max_iter=max_iter)


def test_bucket_shapes():
    assert [sequence_buckets.batch_bucket(b) for b in range(1, 10)] == [1, 2, 3, 4, 6, 6, 8, 8, 12]
    assert sequence_buckets.padded_shape(3, 130) == (3, 192)
    for b in range(1, 300):
        assert b <= sequence_buckets.batch_bucket(b) <= max(4, 1.5 * b)


@pytest.mark.parametrize("covariance_type", ["diag", pytest.param("full", marks=pytest.mark.slow)])
def test_padded_equals_unpadded_float64(geyser, covariance_type):
    model = jaxem.models.gaussian_hmm(2, covariance_type=covariance_type)
    seqs = jaxem.Sequences.from_list([geyser[:120], geyser[120:250], geyser[250:]])  # B 3, T 130 -> 192
    prepared = model.prepare(seqs)
    assert sequence_buckets.can_pad(model, prepared)
    padded = jaxem.fit(model, seqs, key=0, n_restarts=2, max_iter=25, tol=1e-10)
    alone = unpadded(model, seqs, 0, 2, 25, 1e-10)
    np.testing.assert_allclose(float(padded.log_likelihood), float(alone.log_likelihood), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(padded.n_iter), np.asarray(alone.n_iter))
    for field, got, want in zip(padded.params._fields, padded.params, alone.params):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-12, err_msg=field)
    # the reported log-likelihood is that of the real sequences only
    np.testing.assert_allclose(float(jaxem.log_likelihood(model, padded.params, seqs)), float(padded.log_likelihood), rtol=1e-12)


@pytest.mark.slow
def test_padded_equals_unpadded_float32_and_weighted(geyser):
    model = jaxem.models.gaussian_hmm(2, covariance_type="diag")
    x = geyser.astype(np.float32)
    seqs = jaxem.Sequences.from_list([x[:90], x[90:200], x[200:]])  # B 3 (no padding), T 110 -> 128
    weight = np.asarray([1.0, 0.5, 2.0], np.float32)
    padded = jaxem.fit(model, seqs, key=1, n_restarts=2, max_iter=20, tol=1e-6, sample_weight=weight)
    alone = unpadded(model, seqs, 1, 2, 20, 1e-6, jax.numpy.asarray(weight))
    assert padded.log_likelihood.dtype == np.float32
    np.testing.assert_allclose(float(padded.log_likelihood), float(alone.log_likelihood), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(padded.params.means), np.asarray(alone.params.means), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_poisson_hmm_padded_equals_unpadded():
    counts = np.asarray(jaxem.load_dataset("discoveries")[0][:, 1:], np.int64)  # [100, 1]
    model = jaxem.models.poisson_hmm(2)
    seqs = jaxem.Sequences.from_list([counts[:45], counts[45:]])  # B 2, T 55 -> 64
    padded = jaxem.fit(model, seqs, key=0, n_restarts=2, max_iter=30, tol=1e-10)
    alone = unpadded(model, seqs, 0, 2, 30, 1e-10)
    np.testing.assert_allclose(float(padded.log_likelihood), float(alone.log_likelihood), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(padded.params.rates), np.asarray(alone.params.rates), rtol=1e-10)


def test_subsets_of_a_bucket_share_one_fit_program(geyser):
    """The fit program (``loop.fit_restarts``) is compiled once per bucket; the
    preparation of the raw sequences still compiles per raw shape (small programs)."""
    model = jaxem.models.gaussian_hmm(2, covariance_type="spherical")
    fit = dict(key=0, n_restarts=1, max_iter=3, tol=0.0)
    jaxem.fit(model, jaxem.Sequences.from_list([geyser[:100], geyser[100:220]]), **fit)  # (2, 128)
    programs = loop.fit_restarts._cache_size()
    for cut in (105, 115):  # other lengths, the same bucket (T_max 105, 115: padded to 128)
        jaxem.fit(model, jaxem.Sequences.from_list([geyser[:cut], geyser[cut:cut + 97]]), **fit)
    assert loop.fit_restarts._cache_size() == programs
    # the same prepared batch shape again: nothing at all is compiled
    with counting() as again:
        jaxem.fit(model, jaxem.Sequences.from_list([geyser[:115], geyser[115:212]]), **fit)
    assert again.programs == 0, again.programs
    # five or six sequences: both padded to six
    jaxem.fit(model, jaxem.Sequences.from_list([geyser[i * 50 : i * 50 + 40] for i in range(5)]), **fit)
    programs = loop.fit_restarts._cache_size()
    jaxem.fit(model, jaxem.Sequences.from_list([geyser[i * 45 : i * 45 + 40] for i in range(6)]), **fit)
    assert loop.fit_restarts._cache_size() == programs


def test_no_padding_for_a_family_start_or_long_series(geyser):
    symbols = (geyser[:, 0] > 3).astype(np.int32)
    categorical = jaxem.models.categorical_hmm(2, 2)  # its own start (init_states): not declared
    assert not sequence_buckets.can_pad(categorical, categorical.prepare(symbols))
    model = jaxem.models.gaussian_hmm(2)
    long = np.tile(geyser, (120, 1))  # 35 880 steps: past MAX_BUCKETED_STEPS
    assert not sequence_buckets.can_pad(model, model.prepare(long))
    data, weight = sequence_buckets.pad_sequences(model, model.prepare(long), None)
    assert data.features.stats.shape[1] == long.shape[0] and weight is None
