"""MAP-EM against hmmlearn 0.3.3 (float64): with hmmlearn's priors mapped by
``jaxem.priors.hmmlearn_*``, one ``em_step`` equals one hmmlearn iteration
(``_do_mstep``) with the same priors, to 1e-6 relative.

jaxem runs with ``reg_covar=0`` (hmmlearn adds no ``min_covar`` in its M-step);
the only remaining difference is jaxem's 10·eps pseudo-count (~1e-12 relative).
"""

import warnings

import jax
import numpy as np
import pytest
from hmmlearn import hmm as hmmlearn_hmm

import jaxem
from jaxem import priors

LENGTHS = [60, 35, 48, 12]
RTOL = 1e-6
START = np.array([0.6, 0.3, 0.1])
TRANSITIONS = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
# Priors far from no-ops, so that every pseudo-statistic matters.
STARTPROB_PRIOR = np.array([3.0, 1.5, 2.0])
TRANSMAT_PRIOR = np.array([[4.0, 1.0, 2.0], [1.5, 6.0, 1.0], [2.0, 2.0, 3.0]])
MEANS_PRIOR = np.array([[1.0, -1.0], [2.0, 2.0], [-1.0, 3.0]])


def _split(x):
    return np.split(np.asarray(x), np.cumsum(LENGTHS)[:-1])


def _gaussian_data(seed):
    truth = hmmlearn_hmm.GaussianHMM(3, covariance_type="diag", init_params="")
    truth.startprob_, truth.transmat_ = START, TRANSITIONS
    truth.means_ = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]])
    truth.covars_ = np.array([[1.0, 0.5], [0.5, 1.5], [2.0, 0.7]])
    x, _ = truth.sample(sum(LENGTHS), random_state=seed)
    return _split(x)


def _hmmlearn_covars(params, covariance_type):
    u = np.asarray(params.precisions_cholesky)
    if covariance_type == "full":
        return np.linalg.inv(np.einsum("kij,klj->kil", u, u))
    if covariance_type == "tied":
        return np.linalg.inv(u @ u.T)
    if covariance_type == "spherical":
        return np.tile((1.0 / (u * u))[:, None], (1, 2))
    return 1.0 / (u * u)


COVARS_PRIORS = {  # hmmlearn's shapes for each type, with a scalar case for full
    "diag": np.array([[0.5, 0.2], [0.3, 0.4], [0.1, 0.6]]),
    "spherical": np.array([[0.5, 0.2], [0.3, 0.4], [0.1, 0.6]]),
    "full": 0.3,
    "tied": np.array([[0.8, 0.1], [0.1, 0.5]]),
}


def _fit_one_iteration(reference, sequences):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(np.concatenate(sequences), np.asarray(LENGTHS))
    return reference


@pytest.mark.parametrize(
    "covariance_type",
    ["diag", "full", pytest.param("spherical", marks=pytest.mark.slow), pytest.param("tied", marks=pytest.mark.slow)],
)
def test_gaussian_map_em_step_matches_hmmlearn(covariance_type):
    sequences = _gaussian_data(0)
    data = jaxem.Sequences.from_list(sequences)
    options = dict(
        startprob_prior=STARTPROB_PRIOR,
        transmat_prior=TRANSMAT_PRIOR,
        means_prior=MEANS_PRIOR,
        means_weight=2.5,
        covars_prior=COVARS_PRIORS[covariance_type],
        covars_weight=4.0,
    )
    prior = priors.hmmlearn_gaussian(3, 2, covariance_type, **options)
    model = jaxem.models.gaussian_hmm(3, covariance_type=covariance_type, reg_covar=0.0, prior=prior)
    params = jaxem.init(model, jax.random.key(1), data)
    assert params.means.dtype == np.float64

    new, log_lik = jaxem.em_step(model, params, data)

    reference = hmmlearn_hmm.GaussianHMM(
        3, covariance_type=covariance_type, init_params="", params="stmc", n_iter=1, **options
    )
    reference.startprob_ = np.asarray(params.initial_probs)
    reference.transmat_ = np.asarray(params.transition_matrix)
    reference.means_ = np.asarray(params.means)
    reference.covars_ = _hmmlearn_covars(params, covariance_type)
    # em_step reports the log-likelihood (not the log posterior), as hmmlearn's score
    np.testing.assert_allclose(float(log_lik), reference.score(np.concatenate(sequences), LENGTHS), rtol=RTOL)
    _fit_one_iteration(reference, sequences)

    np.testing.assert_allclose(np.asarray(new.initial_probs), reference.startprob_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), reference.transmat_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.means), reference.means_, rtol=RTOL)
    ours = np.asarray(jaxem.models.covariances(new, covariance_type))
    if covariance_type == "spherical":  # hmmlearn's covars_ getter mis-shapes this type
        theirs = np.stack([np.eye(2) * v for v in reference._covars_[:, 0]])
    else:
        theirs = reference.covars_
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-12 * np.abs(ours).max())


def test_categorical_map_em_step_matches_hmmlearn():
    truth = hmmlearn_hmm.CategoricalHMM(3, n_features=4, init_params="")
    truth.startprob_, truth.transmat_ = START, TRANSITIONS
    truth.emissionprob_ = np.array([[0.6, 0.3, 0.05, 0.05], [0.05, 0.15, 0.4, 0.4], [0.25, 0.25, 0.25, 0.25]])
    x, _ = truth.sample(sum(LENGTHS), random_state=5)
    sequences = [s[:, 0] for s in _split(x)]
    emission_prior = np.array([[2.0, 1.0, 1.0, 3.0], [1.0, 1.5, 1.0, 1.0], [4.0, 1.0, 2.0, 1.0]])
    options = dict(startprob_prior=STARTPROB_PRIOR, transmat_prior=TRANSMAT_PRIOR, emissionprob_prior=emission_prior)
    model = jaxem.models.categorical_hmm(3, 4, prior=priors.hmmlearn_categorical(3, 4, **options))
    data = jaxem.Sequences.from_list(sequences)
    params = jaxem.init(model, jax.random.key(2), data)
    new, log_lik = jaxem.em_step(model, params, data)

    concatenated = np.concatenate(sequences)[:, None]
    reference = hmmlearn_hmm.CategoricalHMM(3, n_features=4, init_params="", params="ste", n_iter=1, **options)
    reference.startprob_ = np.asarray(params.initial_probs)
    reference.transmat_ = np.asarray(params.transition_matrix)
    reference.emissionprob_ = np.asarray(params.emission_probs)
    np.testing.assert_allclose(float(log_lik), reference.score(concatenated, LENGTHS), rtol=RTOL)
    _fit_one_iteration(reference, [concatenated])
    np.testing.assert_allclose(np.asarray(new.initial_probs), reference.startprob_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), reference.transmat_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.emission_probs), reference.emissionprob_, rtol=RTOL, atol=1e-12)


def test_poisson_map_em_step_matches_hmmlearn_for_one_state():
    """hmmlearn 0.3.3's lambdas update uses the total count of all states where the
    Gamma posterior needs the state's own (``hmmlearn_poisson``); with one state
    they agree, and that is checked here (K > 1: against SciPy in test_priors.py)."""
    rng = np.random.default_rng(6)
    sequences = [rng.poisson([2.0, 5.0], size=(n, 2)) for n in LENGTHS]
    options = dict(lambdas_prior=3.0, lambdas_weight=0.7)
    model = jaxem.models.poisson_hmm(1, prior=priors.hmmlearn_poisson(1, **options))
    data = jaxem.Sequences.from_list(sequences)
    params = jaxem.models.poisson_hmm_params([1.0], [[1.0]], [[1.0, 1.0]])
    new, log_lik = jaxem.em_step(model, params, data)

    reference = hmmlearn_hmm.PoissonHMM(1, init_params="", params="stl", n_iter=1, **options)
    reference.startprob_, reference.transmat_ = np.array([1.0]), np.array([[1.0]])
    reference.lambdas_ = np.asarray(params.rates)
    np.testing.assert_allclose(float(log_lik), reference.score(np.concatenate(sequences), LENGTHS), rtol=RTOL)
    _fit_one_iteration(reference, sequences)
    np.testing.assert_allclose(np.asarray(new.rates), reference.lambdas_, rtol=RTOL)
