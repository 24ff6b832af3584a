"""HMM bad input raises a clear error naming the argument, at the public boundary."""

import numpy as np
import pytest

import jaxem

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 10, 2))
LENGTHS = np.array([10, 6, 3], np.int32)
DATA = jaxem.Sequences(X, LENGTHS)
GAUSSIAN = jaxem.models.gaussian_hmm(2)
PARAMS = jaxem.models.gaussian_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]])
CATEGORICAL = jaxem.models.categorical_hmm(2, 3)
CAT_PARAMS = jaxem.models.categorical_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], [[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
POISSON = jaxem.models.poisson_hmm(2)
POISSON_PARAMS = jaxem.models.poisson_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], [1.0, 5.0])
SYMBOLS = jaxem.Sequences(np.array([[0, 1, 2, 2], [1, 1, 5, -1]]), np.array([4, 3], np.int32))


def _nan_inside():
    x = X.copy()
    x[1, 2, 0] = np.nan
    return jaxem.Sequences(x, LENGTHS)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: jaxem.fit(GAUSSIAN, jaxem.Sequences(X, np.array([10, 11, 3])), key=0), ValueError, "lengths must be <= the padded length"),
        (lambda: jaxem.fit(GAUSSIAN, jaxem.Sequences(X, np.array([10, 0, 3])), key=0), ValueError, "lengths must be >= 1"),
        (lambda: jaxem.fit(GAUSSIAN, jaxem.Sequences(X, np.array([10.0, 6.0, 3.0])), key=0), TypeError, "lengths must be an integer array"),
        (lambda: jaxem.fit(GAUSSIAN, jaxem.Sequences(X, np.array([10, 6])), key=0), ValueError, "lengths must have shape"),
        (lambda: jaxem.fit(GAUSSIAN, _nan_inside(), key=0), ValueError, "obs contains NaN"),
        (lambda: jaxem.fit(GAUSSIAN, np.full((5, 2), np.inf), key=0), ValueError, "obs contains NaN or infinite"),
        (lambda: jaxem.fit(GAUSSIAN, X, key=0), ValueError, r"obs must have shape \[T, D\] for one sequence"),
        (lambda: jaxem.fit(GAUSSIAN, np.zeros((0, 2)), key=0), ValueError, "at least one step"),
        (lambda: jaxem.fit(GAUSSIAN, [[1.0], [2.0, 3.0]], key=0), TypeError, "obs must be an array"),
        (lambda: jaxem.em_step(GAUSSIAN, PARAMS, X[0, :, :1]), ValueError, "obs has 1 features but params.means has 2"),
        (lambda: jaxem.em_step(GAUSSIAN, CAT_PARAMS, X[0]), TypeError, "params must be GaussianHMMParams"),
        (lambda: jaxem.em_step(jaxem.models.gaussian_hmm(3), PARAMS, X[0]), ValueError, r"initial_probs must have shape \(3,\)"),
        (lambda: jaxem.em_step(GAUSSIAN, PARAMS._replace(transition_matrix=PARAMS.transition_matrix[:1]), X[0]), ValueError, "transition_matrix must have shape"),
        (lambda: jaxem.fit(CATEGORICAL, SYMBOLS, key=0), ValueError, r"symbols in \[0, n_symbols=3\)"),
        (lambda: jaxem.fit(CATEGORICAL, np.array([0, 1, -1]), key=0), ValueError, "symbols"),
        (lambda: jaxem.fit(CATEGORICAL, np.array([0.0, 1.5]), key=0), ValueError, "integer symbols"),
        (lambda: jaxem.em_step(jaxem.models.categorical_hmm(2, 4), CAT_PARAMS, np.array([0, 1])), ValueError, "emission_probs must have shape"),
        (lambda: jaxem.fit(POISSON, np.array([1, 2, -3]), key=0), ValueError, "non-negative counts"),
        (lambda: jaxem.fit(POISSON, np.array([1.0, 2.5]), key=0), ValueError, "integer counts"),
        (lambda: jaxem.log_likelihood(POISSON, POISSON_PARAMS, np.ones((4, 2))), ValueError, "rates must have shape"),
        (lambda: jaxem.models.gaussian_hmm(0), ValueError, "n_states"),
        (lambda: jaxem.models.gaussian_hmm(2, covariance_type="banana"), ValueError, "covariance_type"),
        (lambda: jaxem.models.categorical_hmm(2, 0), ValueError, "n_symbols"),
        (lambda: jaxem.models.gaussian_hmm(2, transition_mask=np.ones((3, 3), bool)), ValueError, "transition_mask must be a bool array"),
        (lambda: jaxem.models.poisson_hmm(2, transition_mask=np.array([[True, True], [False, False]])), ValueError, "at least one transition"),
        (lambda: jaxem.models.gaussian_hmm_params([0.5, 0.6], [[1, 0], [0, 1]], [[0.0], [1.0]], [[1.0], [1.0]]), ValueError, "initial_probs must sum to one"),
        (lambda: jaxem.models.gaussian_hmm_params([0.5, 0.5], [[1, 0], [0.5, 0.6]], [[0.0], [1.0]], [[1.0], [1.0]]), ValueError, "transition_matrix must sum to one"),
        (lambda: jaxem.models.gaussian_hmm_params([0.5, 0.5], [[1, 0], [0, 1]], [[0.0], [1.0]], [[1.0], [-1.0]]), ValueError, "covariances must be symmetric positive definite"),
        (lambda: jaxem.models.gaussian_hmm_params([0.5, 0.5], [[1, 0], [0, 1]], [[0.0], [1.0]], [[1.0]]), ValueError, "covariances for covariance_type"),
        (lambda: jaxem.models.categorical_hmm_params([0.5, 0.5], [[1, 0], [0, 1]], [[0.5, 0.5], [-0.5, 1.5]]), ValueError, "emission_probs must be non-negative"),
        (lambda: jaxem.models.poisson_hmm_params([0.5, 0.5], [[1, 0], [0, 1]], [1.0, 0.0]), ValueError, "rates must be positive"),
        (lambda: jaxem.models.poisson_hmm_params([1.0], [[1.0]], [np.nan]), ValueError, "rates contains NaN"),
        (lambda: jaxem.Sequences.from_list([]), ValueError, "at least one sequence"),
        (lambda: jaxem.Sequences.from_list([np.zeros((3, 2)), np.zeros((3, 1))]), ValueError, "every sequence must have shape"),
        (lambda: jaxem.Sequences.from_concatenated(np.zeros((5, 2)), [2, 2]), ValueError, "lengths sum to 4"),
        (lambda: jaxem.fit(GAUSSIAN, DATA, key=0, sample_weight=np.ones(2)), ValueError, "sample_weight must have shape"),
    ],
)
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_nan_padding_is_accepted_and_ignored():
    x = X.copy()
    x[1, 6:] = np.nan
    x[2, 3:] = np.inf
    padded = jaxem.Sequences(x, LENGTHS)
    np.testing.assert_allclose(
        float(jaxem.log_likelihood(GAUSSIAN, PARAMS, padded)), float(jaxem.log_likelihood(GAUSSIAN, PARAMS, DATA)), rtol=1e-12
    )
    symbols = jaxem.Sequences(np.array([[0, 1, 2, 2], [1, 1, -7, 99]]), np.array([4, 2], np.int32))
    assert np.isfinite(float(jaxem.log_likelihood(CATEGORICAL, CAT_PARAMS, symbols)))
