"""Multinomial HMM (``jaxem.models.multinomial_hmm``) against hmmlearn's
``MultinomialHMM`` (float64): one em_step equals one iteration, the
log-likelihood equals ``score`` (the full multinomial log-pmf) and ``viterbi``
equals ``decode``; recovery, float32 against float64, validation, save/load.
hmmlearn's Dirichlet priors default to no-ops; jaxem's only difference is its
10·eps pseudo-count."""

import logging
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hmmlearn import hmm as hmmlearn_hmm

import jaxem

LENGTHS = [40, 25, 30]
N_TRIALS = 6
START = np.array([0.5, 0.3, 0.2])
TRANSITIONS = np.array([[0.8, 0.1, 0.1], [0.15, 0.8, 0.05], [0.1, 0.2, 0.7]])
EMISSIONS = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4], [0.1, 0.6, 0.2, 0.1]])
RTOL = 1e-6


def _reference(**kwargs):
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)  # "MultinomialHMM has undergone major changes"
    return hmmlearn_hmm.MultinomialHMM(3, n_trials=N_TRIALS, init_params="", **kwargs)


def _sequences(seed):
    truth = _reference()
    truth.startprob_, truth.transmat_, truth.emissionprob_ = START, TRANSITIONS, EMISSIONS
    x, _ = truth.sample(sum(LENGTHS), random_state=seed)
    return np.split(x, np.cumsum(LENGTHS)[:-1])


def test_em_step_matches_hmmlearn():
    sequences = _sequences(0)
    data = jaxem.Sequences.from_list(sequences)
    model = jaxem.models.multinomial_hmm(3, n_trials=N_TRIALS)
    params = jaxem.init(model, jax.random.key(2), data)
    new, log_lik = jaxem.em_step(model, params, data)

    concatenated, lengths = np.concatenate(sequences), np.asarray(LENGTHS)
    reference = _reference(params="ste", n_iter=1)
    reference.startprob_ = np.asarray(params.initial_probs)
    reference.transmat_ = np.asarray(params.transition_matrix)
    reference.emissionprob_ = np.asarray(params.emission_probs)
    np.testing.assert_allclose(float(log_lik), reference.score(concatenated, lengths), rtol=RTOL)
    _, reference_path = reference.decode(concatenated, lengths, algorithm="viterbi")
    paths = np.asarray(jaxem.viterbi(model, params, data))
    np.testing.assert_array_equal(paths[paths >= 0], reference_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(concatenated, lengths)
    np.testing.assert_allclose(np.asarray(new.initial_probs), reference.startprob_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), reference.transmat_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.emission_probs), reference.emissionprob_, rtol=RTOL, atol=1e-12)


@pytest.mark.slow
def test_fit_recovers_sampled_params_float32_matches_float64():
    model = jaxem.models.multinomial_hmm(3, n_trials=N_TRIALS)
    truth = jaxem.models.multinomial_hmm_params(START, TRANSITIONS, EMISSIONS)
    x, _ = jaxem.sample(model, truth, jax.random.key(1), 1000)
    np.testing.assert_array_equal(np.asarray(x).sum(axis=1), N_TRIALS)
    result = jaxem.fit(model, x, key=0, n_restarts=2)
    order = [int(np.argmin(np.abs(np.asarray(result.params.emission_probs) - row).sum(axis=1))) for row in EMISSIONS]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(np.asarray(result.params.emission_probs)[order], EMISSIONS, atol=0.05)
    np.testing.assert_allclose(np.asarray(result.params.transition_matrix)[np.ix_(order, order)], TRANSITIONS, atol=0.08)

    x64 = np.asarray(x, np.float64)
    params64 = jaxem.init(model, jax.random.key(5), x64)
    params32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params64)
    for _ in range(10):
        params64, ll64 = jaxem.em_step(model, params64, x64)
        params32, ll32 = jaxem.em_step(model, params32, x64.astype(np.float32))
    assert params32.emission_probs.dtype == np.float32
    np.testing.assert_allclose(float(ll32), float(ll64), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(params32.emission_probs), np.asarray(params64.emission_probs), atol=1e-4)


def test_validation_and_save_load(tmp_path):
    model = jaxem.models.multinomial_hmm(3, n_trials=N_TRIALS)
    params = jaxem.models.multinomial_hmm_params(START, TRANSITIONS, EMISSIONS)
    with pytest.raises(ValueError, match="n_trials=6"):
        jaxem.em_step(model, params, np.array([[1, 2, 3, 0], [1, 1, 1, 1]]))
    with pytest.raises(ValueError, match="non-negative"):
        jaxem.em_step(model, params, np.array([[7, -1, 0, 0]]))
    with pytest.raises(ValueError, match="n_trials"):
        jaxem.models.multinomial_hmm(3, n_trials=0)
    with pytest.raises(ValueError, match="n_trials"):
        jaxem.sample(jaxem.models.multinomial_hmm(3), params, jax.random.key(0), 5)
    with pytest.raises(ValueError, match="emission_probs"):
        jaxem.models.multinomial_hmm_params(START, TRANSITIONS, EMISSIONS * 2)
    # free parameters as hmmlearn counts them: (K - 1) + K (K - 1) + K (S - 1)
    assert jaxem.n_parameters(model, params) == 2 + 6 + 9
    jaxem.save(tmp_path / "m.npz", model, params)
    loaded_model, loaded = jaxem.load(tmp_path / "m.npz")
    assert loaded_model is model and isinstance(loaded, jaxem.models.MultinomialHMMParams)
    np.testing.assert_array_equal(np.asarray(loaded.emission_probs), np.asarray(params.emission_probs))
