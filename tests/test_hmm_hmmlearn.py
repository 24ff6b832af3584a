"""HMMs against hmmlearn (float64): one em_step equals one Baum–Welch iteration,
the log-likelihood equals ``score`` and ``viterbi`` equals ``decode``.

hmmlearn's priors are set so that its M-step is plain maximum likelihood
(``covars_prior=0``; its other priors default to no-ops), and jaxem runs with
``reg_covar=0``; jaxem's only remaining difference is its 10·eps pseudo-count, so
the results agree to ~1e-12 relative. The tests assert 1e-6.
"""

import warnings

import jax
import numpy as np
import pytest
from hmmlearn import hmm as hmmlearn_hmm

import jaxem

LENGTHS = [60, 35, 48, 12]
RTOL = 1e-6


def _split(x):
    return np.split(np.asarray(x), np.cumsum(LENGTHS)[:-1])


def _reference_sample(reference, seed):
    """Sequences of LENGTHS drawn with hmmlearn (NumPy: nothing to compile)."""
    x, _ = reference.sample(sum(LENGTHS), random_state=seed)
    return _split(x)


START = np.array([0.6, 0.3, 0.1])
TRANSITIONS = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])


def _gaussian_data(seed):
    truth = hmmlearn_hmm.GaussianHMM(3, covariance_type="diag", init_params="")
    truth.startprob_, truth.transmat_ = START, TRANSITIONS
    truth.means_ = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]])
    truth.covars_ = np.array([[1.0, 0.5], [0.5, 1.5], [2.0, 0.7]])
    return _reference_sample(truth, seed)


def _hmmlearn_covars(params, covariance_type):
    u = np.asarray(params.precisions_cholesky)
    if covariance_type == "full":
        return np.linalg.inv(np.einsum("kij,klj->kil", u, u))
    if covariance_type == "tied":
        return np.linalg.inv(u @ u.T)
    return 1.0 / (u * u)


@pytest.mark.parametrize(
    "covariance_type",
    ["diag", "full", pytest.param("spherical", marks=pytest.mark.slow), pytest.param("tied", marks=pytest.mark.slow)],
)
def test_gaussian_em_step_matches_hmmlearn(covariance_type):
    sequences = _gaussian_data(0)
    data = jaxem.Sequences.from_list(sequences)
    concatenated, lengths = np.concatenate(sequences), np.asarray(LENGTHS)
    model = jaxem.models.gaussian_hmm(3, covariance_type=covariance_type, reg_covar=0.0)
    params = jaxem.init(model, jax.random.key(1), data)
    assert params.means.dtype == np.float64

    new, log_lik = jaxem.em_step(model, params, data)

    reference = hmmlearn_hmm.GaussianHMM(
        3, covariance_type=covariance_type, covars_prior=0.0, init_params="", params="stmc", n_iter=1
    )
    reference.startprob_ = np.asarray(params.initial_probs)
    reference.transmat_ = np.asarray(params.transition_matrix)
    reference.means_ = np.asarray(params.means)
    reference.covars_ = _hmmlearn_covars(params, covariance_type)
    np.testing.assert_allclose(float(log_lik), reference.score(concatenated, lengths), rtol=RTOL)
    _, reference_path = reference.decode(concatenated, lengths, algorithm="viterbi")
    paths = np.asarray(jaxem.viterbi(model, params, data))
    np.testing.assert_array_equal(paths[paths >= 0], reference_path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(concatenated, lengths)
    np.testing.assert_allclose(np.asarray(new.initial_probs), reference.startprob_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), reference.transmat_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.means), reference.means_, rtol=RTOL)
    ours = np.asarray(jaxem.models.covariances(new, covariance_type))
    if covariance_type == "spherical":  # hmmlearn's covars_ getter mis-shapes this type
        theirs = np.stack([np.eye(2) * v for v in reference._covars_[:, 0]])
    else:
        theirs = reference.covars_
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-12 * np.abs(ours).max())


def test_categorical_em_step_matches_hmmlearn():
    truth = hmmlearn_hmm.CategoricalHMM(3, n_features=4, init_params="")
    truth.startprob_, truth.transmat_ = START, TRANSITIONS
    truth.emissionprob_ = np.array([[0.6, 0.3, 0.05, 0.05], [0.05, 0.15, 0.4, 0.4], [0.25, 0.25, 0.25, 0.25]])
    sequences = [x[:, 0] for x in _reference_sample(truth, 5)]
    model = jaxem.models.categorical_hmm(3, 4)
    data = jaxem.Sequences.from_list(sequences)
    params = jaxem.init(model, jax.random.key(2), data)
    new, log_lik = jaxem.em_step(model, params, data)

    concatenated, lengths = np.concatenate(sequences)[:, None], np.asarray(LENGTHS)
    reference = hmmlearn_hmm.CategoricalHMM(3, n_features=4, init_params="", params="ste", n_iter=1)
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
def test_poisson_em_step_matches_hmmlearn():
    truth = hmmlearn_hmm.PoissonHMM(2, init_params="")
    truth.startprob_, truth.transmat_ = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]])
    truth.lambdas_ = np.array([[1.0, 4.0], [6.0, 0.5]])
    sequences = _reference_sample(truth, 6)
    model = jaxem.models.poisson_hmm(2)
    data = jaxem.Sequences.from_list(sequences)
    params = jaxem.init(model, jax.random.key(3), data)
    new, log_lik = jaxem.em_step(model, params, data)

    concatenated, lengths = np.concatenate(sequences), np.asarray(LENGTHS)
    reference = hmmlearn_hmm.PoissonHMM(2, init_params="", params="stl", n_iter=1, lambdas_prior=0.0, lambdas_weight=0.0)
    reference.startprob_ = np.asarray(params.initial_probs)
    reference.transmat_ = np.asarray(params.transition_matrix)
    reference.lambdas_ = np.asarray(params.rates)
    np.testing.assert_allclose(float(log_lik), reference.score(concatenated, lengths), rtol=RTOL)
    _, reference_path = reference.decode(concatenated, lengths, algorithm="viterbi")
    paths = np.asarray(jaxem.viterbi(model, params, data))
    np.testing.assert_array_equal(paths[paths >= 0], reference_path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(concatenated, lengths)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), reference.transmat_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.rates), reference.lambdas_, rtol=RTOL)
