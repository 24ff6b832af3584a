"""GMM-HMM (``jaxem.models.gmm_hmm``): one em_step against one hmmlearn ``GMMHMM``
iteration (float64), recovery, float32 against float64, validation, save/load.

hmmlearn's priors are set to no-ops: its defaults are no-ops for ``full``, ``diag``
and ``tied``; for ``spherical`` its default ``covars_prior = -(n_mix + 2) / 2`` is
not (the no-op is ``-(n_features + 2) / 2``), so that one is passed. jaxem runs
with ``reg_covar=0``; hmmlearn's ``min_covar`` is used only by its initialization.
hmmlearn's covariance update centres the data at the *previous* means, so its
``covars_`` is jaxem's maximum-likelihood covariance plus ``δ δᵀ`` (δ the change
of each mean; for ``tied`` the count-weighted sum over the state's components, for
``spherical`` ``|δ|² / D``): the tests compare jaxem's covariances with hmmlearn's
minus that exact term. Everything else (log-likelihood, Viterbi path, initial,
transition, weights, means) is compared directly.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hmmlearn import hmm as hmmlearn_hmm

import jaxem

LENGTHS = [50, 30, 40]
RTOL = 1e-6
K, M, D = 2, 2, 2

TRUE_MEANS = np.array([[[0.0, 0.0], [2.5, 2.5]], [[8.0, -3.0], [5.0, -6.0]]])
TRUE_WEIGHTS = np.array([[0.4, 0.6], [0.7, 0.3]])
TRUE_START = np.array([0.6, 0.4])
TRUE_TRANSITIONS = np.array([[0.9, 0.1], [0.15, 0.85]])
TRUE_DIAG = np.array([[[1.0, 0.5], [0.6, 0.8]], [[0.7, 1.2], [0.5, 0.5]]])


def _split(x):
    return np.split(np.asarray(x), np.cumsum(LENGTHS)[:-1])


def _sequences(seed=0):
    truth = hmmlearn_hmm.GMMHMM(K, M, covariance_type="diag", init_params="")
    truth.startprob_, truth.transmat_ = TRUE_START, TRUE_TRANSITIONS
    truth.weights_, truth.means_, truth.covars_ = TRUE_WEIGHTS, TRUE_MEANS, TRUE_DIAG
    x, _ = truth.sample(sum(LENGTHS), random_state=seed)
    return _split(x)


def _expected_covars(theirs, old_means, new_means, counts, covariance_type):
    """jaxem's ML covariances from hmmlearn's (centred at the old means)."""
    delta = new_means - old_means  # [K, M, D]
    outer = delta[..., :, None] * delta[..., None, :]
    if covariance_type == "full":
        return theirs - outer
    if covariance_type == "diag":
        return theirs - delta**2
    if covariance_type == "spherical":
        return theirs - np.sum(delta**2, axis=-1) / D
    weights = counts / counts.sum(axis=1, keepdims=True)  # tied: per state
    return theirs - np.einsum("km,kmij->kij", weights, outer)


@pytest.mark.parametrize(
    "covariance_type",
    ["diag", "full", pytest.param("spherical", marks=pytest.mark.slow), pytest.param("tied", marks=pytest.mark.slow)],
)
def test_em_step_matches_hmmlearn(covariance_type):
    sequences = _sequences(0)
    data = jaxem.Sequences.from_list(sequences)
    concatenated, lengths = np.concatenate(sequences), np.asarray(LENGTHS)
    model = jaxem.models.gmm_hmm(K, M, covariance_type=covariance_type, reg_covar=0.0)
    params = jaxem.init(model, jax.random.key(1), data)
    assert params.means.dtype == np.float64
    new, log_lik = jaxem.em_step(model, params, data)

    priors = {"covars_prior": -(D + 2) / 2} if covariance_type == "spherical" else {}
    reference = hmmlearn_hmm.GMMHMM(
        K, M, covariance_type=covariance_type, init_params="", params="stmcw", n_iter=1, **priors
    )
    reference.startprob_ = np.asarray(params.initial_probs)
    reference.transmat_ = np.asarray(params.transition_matrix)
    reference.weights_ = np.asarray(params.weights)
    reference.means_ = np.asarray(params.means)
    reference.covars_ = np.asarray(jaxem.models.gmm_hmm_covariances(params, covariance_type))
    np.testing.assert_allclose(float(log_lik), reference.score(concatenated, lengths), rtol=RTOL)
    _, reference_path = reference.decode(concatenated, lengths, algorithm="viterbi")
    paths = np.asarray(jaxem.viterbi(model, params, data))
    np.testing.assert_array_equal(paths[paths >= 0], reference_path)

    # the state marginals jaxem reports are the within-state sums of the joint posterior
    marginals = np.asarray(jaxem.posterior(model, params, data))
    _, reference_posterior = reference.score_samples(concatenated, lengths)
    mask = np.arange(max(LENGTHS))[None, :] < lengths[:, None]
    np.testing.assert_allclose(marginals[mask], reference_posterior, rtol=RTOL, atol=1e-10)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(concatenated, lengths)
    np.testing.assert_allclose(np.asarray(new.initial_probs), reference.startprob_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.transition_matrix), reference.transmat_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.weights), reference.weights_, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.means), reference.means_, rtol=RTOL, atol=1e-12)
    counts = np.asarray(new.weights) * 1.0  # only the within-state proportions matter for tied
    expected = _expected_covars(reference.covars_, np.asarray(params.means), reference.means_, counts, covariance_type)
    ours = np.asarray(jaxem.models.gmm_hmm_covariances(new, covariance_type))
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=1e-10)


def _well_separated_params(covariance_type="diag"):
    covars = {
        "diag": TRUE_DIAG,
        "full": np.stack([[np.diag(v) for v in state] for state in TRUE_DIAG]),
        "tied": np.array([np.eye(D) * 0.8, np.eye(D) * 0.5]),
        "spherical": TRUE_DIAG.mean(axis=-1),
    }[covariance_type]
    return jaxem.models.gmm_hmm_params(TRUE_START, TRUE_TRANSITIONS, TRUE_WEIGHTS, TRUE_MEANS, covars, covariance_type)


def test_fit_recovers_sampled_params_and_is_monotone():
    model = jaxem.models.gmm_hmm(K, M, covariance_type="diag")
    truth = _well_separated_params("diag")
    x, z = jaxem.sample(model, truth, jax.random.key(3), 1000)
    assert x.shape == (1000, D) and z.shape == (1000,)
    result = jaxem.fit(model, x, key=0, n_restarts=2, max_iter=100)
    history = np.asarray(result.history)
    for trace in history:
        trace = trace[~np.isnan(trace)]
        assert np.all(np.diff(trace) >= -1e-8 * np.abs(trace[1:]))
    # match states (by the mean of their means) and components within states
    order = np.argsort(np.asarray(result.params.means).mean(axis=(1, 2)))[::-1]
    truth_order = np.argsort(TRUE_MEANS.mean(axis=(1, 2)))[::-1]
    for ours_k, true_k in zip(order, truth_order):
        means = np.asarray(result.params.means)[ours_k]
        mix = np.argsort(means[:, 0])
        true_mix = np.argsort(TRUE_MEANS[true_k][:, 0])
        np.testing.assert_allclose(means[mix], TRUE_MEANS[true_k][true_mix], atol=0.25)
        np.testing.assert_allclose(np.asarray(result.params.weights)[ours_k][mix], TRUE_WEIGHTS[true_k][true_mix], atol=0.08)
    np.testing.assert_allclose(
        np.asarray(result.params.transition_matrix)[np.ix_(order, order)],
        TRUE_TRANSITIONS[np.ix_(truth_order, truth_order)],
        atol=0.05,
    )


@pytest.mark.parametrize("covariance_type", ["tied", pytest.param("full", marks=pytest.mark.slow)])
def test_float32_matches_float64(covariance_type):
    data64 = jaxem.Sequences.from_list(_sequences(2))
    data32 = jaxem.Sequences(data64.obs.astype(np.float32), data64.lengths)
    model = jaxem.models.gmm_hmm(K, M, covariance_type=covariance_type)
    start = jaxem.init(model, jax.random.key(4), data64)
    start32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), start)
    fit64 = jaxem.fit(model, data64, key=0, init_params=start, max_iter=15, tol=0.0)
    fit32 = jaxem.fit(model, data32, key=0, init_params=start32, max_iter=15, tol=0.0)
    assert fit32.params.means.dtype == np.float32
    np.testing.assert_allclose(float(fit32.log_likelihood), float(fit64.log_likelihood), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fit32.params.means), np.asarray(fit64.params.means), atol=1e-3)
    np.testing.assert_allclose(np.asarray(fit32.params.weights), np.asarray(fit64.params.weights), atol=1e-3)


def test_n_parameters_and_identity():
    model = jaxem.models.gmm_hmm(K, M, covariance_type="full")
    assert jaxem.models.gmm_hmm(K, M, covariance_type="full") is model
    params = _well_separated_params("full")
    # (K - 1) + K (K - 1) + K (M - 1) weights + K M D means + K M D (D + 1) / 2 covariances
    assert jaxem.n_parameters(model, params) == 1 + 2 + 2 + 8 + 12


def test_save_load_round_trip(tmp_path):
    model = jaxem.models.gmm_hmm(K, M, covariance_type="tied", reg_covar=1e-4)
    params = _well_separated_params("tied")
    jaxem.save(tmp_path / "gmm_hmm.npz", model, params)
    loaded_model, loaded = jaxem.load(tmp_path / "gmm_hmm.npz")
    assert loaded_model is model
    assert isinstance(loaded, jaxem.models.GMMHMMParams)
    for a, b in zip(loaded, params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_validation():
    with pytest.raises(ValueError, match="n_mix"):
        jaxem.models.gmm_hmm(2, 0)
    with pytest.raises(ValueError, match="covariance_type"):
        jaxem.models.gmm_hmm(2, 2, covariance_type="banded")
    with pytest.raises(ValueError, match="weights"):
        jaxem.models.gmm_hmm_params(TRUE_START, TRUE_TRANSITIONS, [[0.5, 0.6], [0.5, 0.5]], TRUE_MEANS, TRUE_DIAG)
    with pytest.raises(ValueError, match="covariances"):
        jaxem.models.gmm_hmm_params(TRUE_START, TRUE_TRANSITIONS, TRUE_WEIGHTS, TRUE_MEANS, TRUE_DIAG[:, :, 0])
    with pytest.raises(ValueError, match="positive definite"):
        jaxem.models.gmm_hmm_params(TRUE_START, TRUE_TRANSITIONS, TRUE_WEIGHTS, TRUE_MEANS, -TRUE_DIAG)
    model = jaxem.models.gmm_hmm(K, 3)
    x = np.zeros((10, D))
    with pytest.raises(ValueError, match="weights"):
        jaxem.em_step(model, _well_separated_params("diag"), x)
    with pytest.raises(TypeError, match="GMMHMMParams"):
        jaxem.em_step(jaxem.models.gmm_hmm(K, M), jaxem.models.gaussian_hmm_params(TRUE_START, TRUE_TRANSITIONS, [[0.0], [1.0]], [[1.0], [1.0]]), x)
    with pytest.raises(ValueError, match="means"):
        jaxem.em_step(jaxem.models.gmm_hmm(K, M), _well_separated_params("diag"), np.zeros((10, 3)))
