"""Bernoulli HMM (``jaxem.models.bernoulli_hmm``; hmmlearn has none): one em_step
against a brute-force enumeration of all K^T paths (float64, short sequences),
the Viterbi path likewise, recovery from sampled data, float32 against float64,
validation and save/load."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem
from brute_force_hmm import best_path, expected_counts

START = np.array([0.6, 0.4])
TRANSITIONS = np.array([[0.8, 0.2], [0.3, 0.7]])
PROBS = np.array([[0.1, 0.8, 0.3], [0.7, 0.2, 0.9]])


def _log_emission(x, probs):
    return x @ np.log(probs).T + (1 - x) @ np.log1p(-probs).T


def test_em_step_matches_brute_force():
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, 2, size=(t, 3)).astype(float) for t in (7, 5, 6)]
    data = jaxem.Sequences.from_list(sequences)
    model = jaxem.models.bernoulli_hmm(2)
    params = jaxem.models.bernoulli_hmm_params(START, TRANSITIONS, PROBS)
    new, log_lik = jaxem.em_step(model, params, data)

    tables = [_log_emission(x, PROBS) for x in sequences]
    total, gammas, xi, first = expected_counts(START, TRANSITIONS, tables)
    np.testing.assert_allclose(float(log_lik), total, rtol=1e-10)
    gamma = np.concatenate(gammas)
    x = np.concatenate(sequences)
    np.testing.assert_allclose(np.asarray(new.probs), (gamma.T @ x) / gamma.sum(axis=0)[:, None], rtol=1e-9)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), xi / xi.sum(axis=1, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(new.initial_probs), first / first.sum(), rtol=1e-9)
    paths = np.asarray(jaxem.viterbi(model, params, data))
    for b, table in enumerate(tables):
        np.testing.assert_array_equal(paths[b, : len(table)], best_path(np.log(START), np.log(TRANSITIONS), table))


@pytest.mark.slow
def test_fit_recovers_sampled_params_float32_matches_float64():
    model = jaxem.models.bernoulli_hmm(2)
    truth = jaxem.models.bernoulli_hmm_params(START, TRANSITIONS, PROBS)
    x, _ = jaxem.sample(model, truth, jax.random.key(1), 2000)
    result = jaxem.fit(model, x, key=0, n_restarts=2)
    order = np.argsort(np.asarray(result.params.probs)[:, 0])
    np.testing.assert_allclose(np.asarray(result.params.probs)[order], PROBS, atol=0.05)
    np.testing.assert_allclose(np.asarray(result.params.transition_matrix)[np.ix_(order, order)], TRANSITIONS, atol=0.05)
    for trace in np.asarray(result.history):
        trace = trace[~np.isnan(trace)]
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))

    # float32 from the same start: the same steps to float32 rounding
    x64 = np.asarray(x, np.float64)
    params64 = jaxem.models.bernoulli_hmm_params([0.5, 0.5], [[0.6, 0.4], [0.4, 0.6]], [[0.3, 0.6, 0.4], [0.6, 0.3, 0.6]])
    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params64)
    for _ in range(10):
        params64, ll64 = jaxem.em_step(model, params64, x64)
        params32, ll32 = jaxem.em_step(model, params32, x64.astype(np.float32))
    assert params32.probs.dtype == np.float32
    np.testing.assert_allclose(float(ll32), float(ll64), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(params32.probs), np.asarray(params64.probs), atol=1e-4)


def test_validation_and_save_load(tmp_path):
    with pytest.raises(ValueError, match="probs"):
        jaxem.models.bernoulli_hmm_params(START, TRANSITIONS, [[0.0, 0.5, 0.5], [0.5, 0.5, 1.0]])
    with pytest.raises(ValueError, match="initial_probs"):
        jaxem.models.bernoulli_hmm_params([0.5, 0.6], TRANSITIONS, PROBS)
    model = jaxem.models.bernoulli_hmm(2)
    params = jaxem.models.bernoulli_hmm_params(START, TRANSITIONS, PROBS)
    with pytest.raises(ValueError, match="binary"):
        jaxem.em_step(model, params, np.full((5, 3), 2.0))
    with pytest.raises(ValueError, match="probs"):
        jaxem.em_step(model, params, np.zeros((5, 4)))
    assert jaxem.n_parameters(model, params) == 1 + 2 + 6
    jaxem.save(tmp_path / "b.npz", model, params)
    loaded_model, loaded = jaxem.load(tmp_path / "b.npz")
    assert loaded_model is model and isinstance(loaded, jaxem.models.BernoulliHMMParams)
    np.testing.assert_array_equal(np.asarray(loaded.probs), np.asarray(params.probs))
