"""Streaming and online EM for HMMs over batches of sequences (float64)."""

import jax
import numpy as np
import pytest

import jaxem


def gaussian_sequences(seed, n_sequences, offset=(0.0, 0.0)):
    rng = np.random.default_rng(seed)
    means = np.array([[-2.0, 0.0], [2.0, 1.0]]) + np.asarray(offset)
    lengths = rng.integers(10, 30, size=n_sequences)
    states = np.concatenate([np.cumsum(rng.random(n) < 0.1) % 2 for n in lengths])
    return means[states] + rng.normal(size=(states.size, 2)), lengths


def symbol_sequences(seed, n_sequences, length=40):
    rng = np.random.default_rng(seed)
    emission = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    sequences = []
    for _ in range(n_sequences):
        states = np.cumsum(rng.random(length) < 0.1) % 2
        sequences.append(np.array([rng.choice(3, p=emission[s]) for s in states]))
    return jaxem.Sequences.from_list(sequences)


@pytest.mark.slow
def test_streaming_hmm_over_a_memmap_equals_the_in_memory_fit(tmp_path):
    obs, lengths = gaussian_sequences(0, 23, offset=(50.0, -20.0))  # first batch's standardization differs
    np.save(tmp_path / "obs.npy", obs)
    disk = np.load(tmp_path / "obs.npy", mmap_mode="r")
    model = jaxem.models.gaussian_hmm(2)
    data = jaxem.Sequences.from_concatenated(obs, lengths)
    start = jaxem.init(model, 0, data)
    streamed = jaxem.fit_streaming(model, jaxem.sequence_chunks(disk, lengths, 5), init_params=start, max_iter=8, tol=0.0)
    memory = jaxem.fit(model, data, key=0, init_params=start, max_iter=8, tol=0.0)
    np.testing.assert_allclose(np.asarray(streamed.history), np.asarray(memory.history), rtol=1e-11)
    np.testing.assert_allclose(float(streamed.log_likelihood), float(memory.log_likelihood), rtol=1e-11)
    for a, b in zip(jax.tree_util.tree_leaves(streamed.params), jax.tree_util.tree_leaves(memory.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-11)


def test_streaming_categorical_hmm_from_a_key_converges_monotonically():
    data = symbol_sequences(1, 12)
    model = jaxem.models.categorical_hmm(2, n_symbols=3)
    batches = [jaxem.Sequences(data.obs[i : i + 4], data.lengths[i : i + 4]) for i in range(0, 12, 4)]
    result = jaxem.fit_streaming(model, batches, key=2, max_iter=60, tol=1e-7)
    trace = np.asarray(result.history[0])
    trace = trace[np.isfinite(trace)]
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    np.testing.assert_allclose(float(jaxem.log_likelihood(model, result.params, data)), float(result.log_likelihood), rtol=1e-12)


def test_online_em_for_an_hmm_approaches_the_batch_fit():
    data = symbol_sequences(3, 240)
    model = jaxem.models.categorical_hmm(2, n_symbols=3)
    # hmmlearn-like starts (Dirichlet(1/K) rows) can be near-symmetric, where 10 epochs of
    # stepwise EM do not break the symmetry: both fits start after 3 batch iterations.
    start = jaxem.fit(model, data, key=0, max_iter=3, tol=0.0).params
    batch = jaxem.fit(model, data, key=0, max_iter=100, tol=1e-8, init_params=start)
    rng = np.random.default_rng(0)
    order = np.concatenate([rng.permutation(240) for _ in range(10)])  # ten epochs (HMM EM itself is slow)
    batches = (jaxem.Sequences(data.obs[order[i : i + 12]], data.lengths[order[i : i + 12]]) for i in range(0, order.size, 12))
    online = jaxem.fit_online(model, batches, init_params=start)
    assert online.n_batches == 200
    flip = np.argsort(np.asarray(online.params.emission_probs)[:, 0]) != np.argsort(np.asarray(batch.params.emission_probs)[:, 0])
    perm = np.array([1, 0]) if flip[0] else np.array([0, 1])
    np.testing.assert_allclose(np.asarray(online.params.emission_probs)[perm], np.asarray(batch.params.emission_probs), atol=0.03)
    np.testing.assert_allclose(
        np.asarray(online.params.transition_matrix)[np.ix_(perm, perm)], np.asarray(batch.params.transition_matrix), atol=0.03
    )
    batch_mean = float(batch.log_likelihood) / float(np.sum(data.lengths))
    assert np.mean(np.asarray(online.mean_log_likelihoods)[-10:]) > batch_mean - 0.02


@pytest.mark.slow
def test_bad_chunks_are_refused_naming_the_chunk():
    model = jaxem.models.categorical_hmm(2, n_symbols=3)
    data = symbol_sequences(4, 6)
    good = [jaxem.Sequences(data.obs[i : i + 2], data.lengths[i : i + 2]) for i in range(0, 6, 2)]
    out_of_range = good[:1] + [jaxem.Sequences(np.where(good[1].obs == 2, 3, good[1].obs), good[1].lengths)] + good[2:]
    with pytest.raises(ValueError, match=r"chunk 1: .*n_symbols=3"):
        jaxem.fit_streaming(model, out_of_range, key=0, max_iter=2)
    gaussian = jaxem.models.gaussian_hmm(2)
    obs, lengths = gaussian_sequences(5, 6)
    chunks = list(jaxem.sequence_chunks(obs, lengths, 2)())
    nan = chunks[2].obs.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"chunk 2: .*NaN"):
        jaxem.fit_streaming(gaussian, chunks[:2] + [jaxem.Sequences(nan, chunks[2].lengths)], key=0, max_iter=2)
    wide = jaxem.Sequences(np.concatenate([chunks[1].obs, chunks[1].obs[..., :1]], axis=-1), chunks[1].lengths)
    with pytest.raises(ValueError, match=r"chunk 1: obs has 3 features"):
        jaxem.fit_online(gaussian, iter([chunks[0], wide]), key=0)
    mixture = jaxem.models.gaussian_mixture(2)
    x = np.random.default_rng(0).normal(size=(30, 3))
    with pytest.raises(ValueError, match=r"chunk 1: .*features"):
        jaxem.fit_streaming(mixture, [x[:10], x[10:20, :2], x[20:]], key=0, max_iter=2)
