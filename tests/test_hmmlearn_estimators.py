"""jaxem.hmmlearn against hmmlearn 0.3.3 on the same params: scores, posteriors and
decodings to 1e-6 (float64), one EM iteration with hmmlearn's priors and params
letters, restarts, float32 against float64."""

import logging

import numpy as np
import pytest
from hmmlearn import hmm as reference

from jaxem import hmmlearn as ours

LENGTHS = [40, 25, 35]
START = np.array([0.5, 0.3, 0.2])
TRANSMAT = np.array([[0.8, 0.1, 0.1], [0.15, 0.7, 0.15], [0.2, 0.2, 0.6]])


def _pair(cls_ours, cls_ref, attributes, **kwargs):
    models = []
    for cls in (cls_ref, cls_ours):
        model = cls(3, init_params="", **kwargs)
        model.startprob_, model.transmat_ = START, TRANSMAT
        for name, value in attributes.items():
            setattr(model, name, value)
        models.append(model)
    return models


def _gaussian_attributes(covariance_type):
    means = np.array([[0.0, 0.0], [3.0, 3.0], [-3.0, 2.0]])
    full = np.array([[[1.0, 0.3], [0.3, 0.8]], [[0.6, -0.2], [-0.2, 1.2]], [[1.0, 0.0], [0.0, 0.5]]])
    covars = {"full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2),
              "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1)}[covariance_type]
    return {"means_": means, "covars_": covars}


def _assert_same_scores(ref, est, x, lengths):
    assert est.score(x, lengths) == pytest.approx(ref.score(x, lengths), rel=1e-6, abs=1e-6)
    (log_prob, posteriors), (ref_log_prob, ref_posteriors) = est.score_samples(x, lengths), ref.score_samples(x, lengths)
    assert log_prob == pytest.approx(ref_log_prob, rel=1e-6)
    np.testing.assert_allclose(posteriors, ref_posteriors, atol=1e-6)
    for algorithm in ("viterbi", "map"):
        (got, path), (want, ref_path) = est.decode(x, lengths, algorithm=algorithm), ref.decode(x, lengths, algorithm=algorithm)
        assert got == pytest.approx(want, rel=1e-6)
        np.testing.assert_array_equal(path, ref_path)


def _assert_one_iteration_equal(ref, est, x, lengths, names):
    ref.n_iter = est.n_iter = 1
    ref.fit(x, lengths)
    est.fit(x, lengths)
    assert list(est.monitor_.history) == pytest.approx(list(ref.monitor_.history), rel=1e-9)
    for name in ("startprob_", "transmat_") + names:
        got, want = getattr(est, name), getattr(ref, name)
        if np.ndim(got) == 1 and np.ndim(want) == 2:  # hmmlearn keeps spherical variances tiled [K, D]
            want = want[:, 0]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("covariance_type", ["diag", *(pytest.param(c, marks=pytest.mark.slow) for c in ("full", "tied", "spherical"))])
def test_gaussian_matches_hmmlearn(covariance_type):
    ref, est = _pair(ours.GaussianHMM, reference.GaussianHMM, _gaussian_attributes(covariance_type),
                     covariance_type=covariance_type)
    x, _ = ref.sample(sum(LENGTHS), random_state=np.random.RandomState(0))
    _assert_same_scores(ref, est, x, LENGTHS)
    # hmmlearn's priors, and only some parameters updated. (Not 'c' without 'm': hmmlearn then
    # accumulates no posterior counts or means and its covariances are wrong; jaxem's are
    # around the current means.)
    priors = dict(startprob_prior=2.0, transmat_prior=1.5, means_prior=0.5, means_weight=2.0,
                  covars_prior=0.3, covars_weight=4.0)
    for params in ("stmc", "tm"):
        ref, est = _pair(ours.GaussianHMM, reference.GaussianHMM, _gaussian_attributes(covariance_type),
                         covariance_type=covariance_type, params=params, **priors)
        _assert_one_iteration_equal(ref, est, x, LENGTHS, ("means_", "_covars_"))


@pytest.mark.slow
def test_categorical_poisson_multinomial_match_hmmlearn():
    emission = np.array([[0.1, 0.4, 0.5], [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]])
    ref, est = _pair(ours.CategoricalHMM, reference.CategoricalHMM, {"emissionprob_": emission}, emissionprob_prior=1.5)
    x, _ = ref.sample(sum(LENGTHS), random_state=np.random.RandomState(1))
    _assert_same_scores(ref, est, x, LENGTHS)
    _assert_one_iteration_equal(ref, est, x, LENGTHS, ("emissionprob_",))

    lambdas = np.array([[1.0, 4.0], [5.0, 0.5], [2.0, 2.0]])
    ref, est = _pair(ours.PoissonHMM, reference.PoissonHMM, {"lambdas_": lambdas}, lambdas_prior=0.5, lambdas_weight=0.2)
    x, _ = ref.sample(sum(LENGTHS), random_state=np.random.RandomState(2))
    _assert_same_scores(ref, est, x, LENGTHS)
    _assert_one_iteration_equal(ref, est, x, LENGTHS, ("lambdas_",))

    logging.getLogger("hmmlearn").setLevel(logging.ERROR)  # its MultinomialHMM warns on construction
    ref, est = _pair(ours.MultinomialHMM, reference.MultinomialHMM, {"emissionprob_": emission}, n_trials=4)
    x, _ = ref.sample(sum(LENGTHS), random_state=np.random.RandomState(3))
    _assert_same_scores(ref, est, x, LENGTHS)
    _assert_one_iteration_equal(ref, est, x, LENGTHS, ("emissionprob_",))


@pytest.mark.slow
def test_fit_restarts_monotone_left_right_and_float32():
    attributes = _gaussian_attributes("diag")
    truth = ours.GaussianHMM(3, init_params="")
    truth.startprob_, truth.transmat_ = START, TRANSMAT
    for name, value in attributes.items():
        setattr(truth, name, value)
    x, _ = truth.sample(sum(LENGTHS), random_state=np.random.RandomState(4))
    # without priors (covars_prior=0) EM never decreases the log-likelihood
    one = ours.GaussianHMM(3, covars_prior=0.0, n_iter=30, random_state=0).fit(x, LENGTHS)
    history = np.asarray(one.monitor_.history)
    assert len(history) >= 2 and np.all(np.diff(history) > -1e-8 * np.abs(history[1:]))
    several = ours.GaussianHMM(3, n_iter=30, random_state=0, n_init=6).fit(x, LENGTHS)
    assert several.score(x, LENGTHS) > truth.score(x, LENGTHS) - 5.0  # the generating optimum (or better) found
    # a left-to-right chain keeps its structural zeros (it underflowed to -inf before the reachable-state shift)
    left_right = ours.GaussianHMM(3, params="tmc", init_params="mc", n_iter=10, random_state=0)
    left_right.startprob_ = np.array([1.0, 0.0, 0.0])
    left_right.transmat_ = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    left_right.fit(x.astype(np.float32), LENGTHS)
    assert np.all(left_right.transmat_[np.tril_indices(3, -1)] == 0) and np.isfinite(left_right.score(x, LENGTHS))
    # float32 data computes in float32, within float32 rounding of float64 on the same params
    assert left_right.score(x.astype(np.float32), LENGTHS) == pytest.approx(left_right.score(x, LENGTHS), rel=1e-4)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="covariance_type"):
        ours.GaussianHMM(2, "bad").covars_ = [1.0, 1.0]
    with pytest.raises(ValueError, match="implementation"):
        ours.CategoricalHMM(2, implementation="fast").fit(np.array([[0], [1], [1]]))
    with pytest.raises(ValueError, match="lengths"):
        ours.PoissonHMM(2).fit(np.ones((10, 1), int), [4, 4])
    model = ours.CategoricalHMM(2, init_params="")
    model.startprob_, model.transmat_, model.emissionprob_ = [0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], [[0.5, 0.6], [0.5, 0.5]]
    with pytest.raises(ValueError, match="emissionprob_ rows must sum to 1"):
        model.score(np.array([[0], [1]]))
    with pytest.raises(NotImplementedError, match="GMMHMM"):
        ours.GMMHMM(2)


def test_suite_harness_swaps_only_the_estimator_imports():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "peers"))
    import run_hmmlearn_suite

    files = run_hmmlearn_suite.suite_files()
    assert set(run_hmmlearn_suite.SUITE) < set(files) and "__init__.py" in files
    for name in run_hmmlearn_suite.SUITE:
        assert "from jaxem" in files[name] and "from hmmlearn import hmm\n" not in files[name]
    assert "from hmmlearn.utils import normalize" in files["__init__.py"]  # helpers stay hmmlearn's
    assert run_hmmlearn_suite.known_reason("p/test_gmm_hmm_new.py::TestX::test_y[diag]").startswith("GMMHMM")
