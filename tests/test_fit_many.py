"""``jaxem.fit_models``: several K in one compiled program equals separate fits.

References: ``jaxem.fit`` of each model with the same key and restarts (float64,
relative 1e-9 on the log-likelihood, 1e-7 on the params), ``jaxem.bic``/``aic``
of those params; the compiled program is reused for an equal sweep.
"""

import jax
import numpy as np
import pytest

import jaxem
from jaxem._src import many

FIT = dict(key=3, n_restarts=2, max_iter=60, tol=1e-9)


@pytest.fixture(scope="module")
def faithful():
    return np.asarray(jaxem.load_dataset("faithful")[0], np.float64)


@pytest.fixture(scope="module")
def sweep(faithful):
    models = [
        jaxem.models.gaussian_mixture(1),
        jaxem.models.gaussian_mixture(3),
        jaxem.models.gaussian_mixture(2, covariance_type="diag"),
    ]
    return models, jaxem.fit_models(models, faithful, **FIT)


def test_equals_separate_fits(faithful, sweep):
    models, result = sweep
    assert len(result.results) == 3
    for i, model in enumerate(models):
        alone = jaxem.fit(model, faithful, **FIT)
        got = result.results[i]
        np.testing.assert_allclose(float(got.log_likelihood), float(alone.log_likelihood), rtol=1e-9)
        np.testing.assert_array_equal(np.asarray(got.n_iter), np.asarray(alone.n_iter))
        for name in alone.params._fields:
            a, b = np.asarray(getattr(got.params, name)), np.asarray(getattr(alone.params, name))
            assert a.shape == b.shape, name
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9, err_msg=name)
        assert np.asarray(got.all_params.weights).shape == (FIT["n_restarts"], model.spec.as_dict()["n_components"])
        np.testing.assert_allclose(result.bic[i], float(jaxem.bic(model, alone.params, faithful)), rtol=1e-9)
        np.testing.assert_allclose(result.aic[i], float(jaxem.aic(model, alone.params, faithful)), rtol=1e-9)
        # EM never decreases its objective, also with padded components
        history = np.asarray(got.history)
        for trace in history:
            trace = trace[np.isfinite(trace)]
            assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    assert result.best == int(np.argmin(result.bic))


def test_one_program_reused(faithful, sweep):
    models, first = sweep
    compiled = many.fit_group._cache_size()
    again = jaxem.fit_models([jaxem.models.gaussian_mixture(k) for k in (1, 3)] + [models[2]], faithful, **FIT)
    assert many.fit_group._cache_size() == compiled  # rebuilt models: the same programs
    np.testing.assert_array_equal(again.bic, first.bic)


def test_padded_components_stay_zero(faithful):
    model = jaxem.models.gaussian_mixture(3)
    padded = many.held_components(model, model.init(jax.random.key(0), model.prepare(faithful))._replace(
        weights=True, means=True, precisions_cholesky=True))
    features = model.prepare(faithful)
    params = jaxem.init(model, 0, faithful)
    weights = np.asarray(params.weights)
    params = params._replace(weights=jax.numpy.asarray(np.r_[weights[:2] / weights[:2].sum(), 0.0]))
    for _ in range(3):
        new, _ = jaxem.em_step(padded, params, features)
        assert float(new.weights[2]) == 0.0
        np.testing.assert_array_equal(np.asarray(new.means[2]), np.asarray(params.means[2]))
        assert np.all(np.isfinite(np.asarray(new.precisions_cholesky)))
        params = new


def test_rejects_bad_models(faithful):
    with pytest.raises(TypeError, match="models"):
        jaxem.fit_models(jaxem.models.gaussian_mixture(2), faithful, key=0)
    with pytest.raises(TypeError, match=r"models\[1\]"):
        jaxem.fit_models([jaxem.models.gaussian_mixture(2), "k=3"], faithful, key=0)
    with pytest.raises(ValueError, match=r"models\[0\]"):
        jaxem.fit_models([jaxem.models.gaussian_hmm(2)], faithful, key=0)
    with pytest.raises(ValueError, match="n_restarts"):
        jaxem.fit_models([jaxem.models.gaussian_mixture(2)], faithful, key=0, n_restarts=0)
