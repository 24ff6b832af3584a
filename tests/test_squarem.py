"""SQUAREM (``fit(..., accelerate="squarem")``): same optimum as EM, monotone ascent."""

import jax
import numpy as np
import pytest

import jaxem


def _overlapping(seed, n=600, d=2, gap=1.0):
    """Two heavily overlapping Gaussians: EM converges slowly."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.0, 1.0, (n // 2, d)), rng.normal(gap, 1.0, (n - n // 2, d))])


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_squarem_reaches_the_em_optimum_in_fewer_steps(covariance_type):
    x = _overlapping(0)
    model = jaxem.models.gaussian_mixture(2, covariance_type=covariance_type)
    start = jaxem.init(model, 0, x)
    optimum = jaxem.fit(model, x, key=0, init_params=start, max_iter=20000, tol=1e-13)
    plain = jaxem.fit(model, x, key=0, init_params=start, max_iter=20000, tol=1e-10)
    fast = jaxem.fit(model, x, key=0, init_params=start, max_iter=20000, tol=1e-10, accelerate="squarem")
    assert bool(optimum.converged[0]) and bool(fast.converged[0])
    np.testing.assert_allclose(float(fast.log_likelihood), float(optimum.log_likelihood), rtol=1e-9)
    for a, b in zip(jax.tree_util.tree_leaves(fast.params), jax.tree_util.tree_leaves(optimum.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-3)
    # fewer EM-step evaluations than plain EM to the same tolerance, and not worse
    assert int(fast.n_iter[0]) < int(plain.n_iter[0]) / 2
    assert float(fast.log_likelihood) >= float(plain.log_likelihood) - 1e-9 * abs(float(plain.log_likelihood))


@pytest.mark.parametrize("seed, covariance_type, k", [(0, "full", 3), (1, "diag", 4), (2, "tied", 2), (3, "full", 2)])
def test_squarem_never_lowers_the_log_likelihood(seed, covariance_type, k):
    x = _overlapping(seed, n=300, d=3, gap=1.5)
    model = jaxem.models.gaussian_mixture(k, covariance_type=covariance_type)
    result = jaxem.fit(model, x, key=seed, n_restarts=3, max_iter=300, tol=0.0, accelerate="squarem")
    for trace in np.asarray(result.history):
        trace = trace[np.isfinite(trace)]
        assert trace.size > 10
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), np.diff(trace).min()
    # the reported log-likelihood is that of the returned params, at least the last trace value
    np.testing.assert_allclose(float(jaxem.log_likelihood(model, result.params, x)), float(result.log_likelihood), rtol=1e-12)
    best = int(result.best_restart)
    assert float(result.log_likelihood) >= np.nanmax(np.asarray(result.history[best])) - 1e-9


def test_squarem_with_chunks_equals_without():
    x = _overlapping(4, n=501)
    model = jaxem.models.gaussian_mixture(2, covariance_type="full")
    a = jaxem.fit(model, x, key=0, max_iter=60, tol=0.0, accelerate="squarem")
    b = jaxem.fit(model, x, key=0, max_iter=60, tol=0.0, accelerate="squarem", chunk_size=128)
    np.testing.assert_allclose(np.asarray(b.history), np.asarray(a.history), rtol=1e-9)


def test_accelerate_validation():
    x = _overlapping(0, n=20)
    with pytest.raises(ValueError, match="accelerate"):
        jaxem.fit(jaxem.models.gaussian_mixture(2), x, key=0, accelerate="anderson")
