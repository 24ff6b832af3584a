"""Streaming fit over chunks (a NumPy memmap) and online EM (float64)."""

import jax
import numpy as np
import pytest

import jaxem
from tests.helpers import blobs


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_streaming_fit_over_memmap_equals_in_memory_fit(tmp_path, covariance_type):
    x, *_ = blobs(5, n=1003)
    x = x + np.array([100.0, -50.0, 7.0])  # offsets: the first chunk's standardization differs
    np.save(tmp_path / "x.npy", x)
    disk = np.load(tmp_path / "x.npy", mmap_mode="r")
    model = jaxem.models.gaussian_mixture(3, covariance_type=covariance_type)
    start = jaxem.init(model, 0, x)
    chunks = lambda: (disk[i : i + 250] for i in range(0, disk.shape[0], 250))  # noqa: E731
    streamed = jaxem.fit_streaming(model, chunks, init_params=start, max_iter=15, tol=0.0)
    memory = jaxem.fit(model, x, key=0, init_params=start, max_iter=15, tol=0.0)
    np.testing.assert_allclose(np.asarray(streamed.history), np.asarray(memory.history), rtol=1e-11)
    np.testing.assert_allclose(float(streamed.log_likelihood), float(memory.log_likelihood), rtol=1e-11)
    for a, b in zip(jax.tree_util.tree_leaves(streamed.params), jax.tree_util.tree_leaves(memory.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-11)
    assert int(streamed.n_iter[0]) == 15


def test_streaming_fit_from_key_with_inner_chunks_converges():
    x, *_ = blobs(6, n=900)
    model = jaxem.models.gaussian_mixture(3, covariance_type="diag")
    pieces = np.array_split(x, 3)
    result = jaxem.fit_streaming(model, pieces, key=1, max_iter=200, tol=1e-6, chunk_size=128)
    assert bool(result.converged[0])
    trace = np.asarray(result.history[0])
    trace = trace[np.isfinite(trace)]
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    np.testing.assert_allclose(float(jaxem.log_likelihood(model, result.params, x)), float(result.log_likelihood), rtol=1e-11)


@pytest.mark.slow
def test_online_em_approaches_the_batch_fit():
    x, labels, weights, means, _ = blobs(7, n=30000)
    model = jaxem.models.gaussian_mixture(3, covariance_type="full")
    batch = jaxem.fit(model, x, key=0, max_iter=200)
    rng = np.random.default_rng(0)
    stream = np.concatenate([x[rng.permutation(x.shape[0])] for _ in range(3)])  # three epochs
    batches = (stream[i : i + 500] for i in range(0, stream.shape[0], 500))
    online = jaxem.fit_online(model, batches, init_params=jaxem.init(model, 0, x[:500]))
    assert online.n_batches == 180
    order_batch = np.argsort(np.asarray(batch.params.means)[:, 0])
    order_online = np.argsort(np.asarray(online.params.means)[:, 0])
    np.testing.assert_allclose(
        np.asarray(online.params.means)[order_online], np.asarray(batch.params.means)[order_batch], atol=0.05
    )
    np.testing.assert_allclose(
        np.asarray(online.params.weights)[order_online], np.asarray(batch.params.weights)[order_batch], atol=0.02
    )
    mean_ll = float(batch.log_likelihood) / x.shape[0]
    assert np.mean(np.asarray(online.mean_log_likelihoods)[-10:]) > mean_ll - 0.05


def test_streaming_validation():
    model = jaxem.models.gaussian_mixture(2)
    with pytest.raises(ValueError, match="no data"):
        jaxem.fit_streaming(model, [], key=0)
    with pytest.raises(ValueError, match="kappa"):
        jaxem.fit_online(model, [np.zeros((4, 2))], key=0, kappa=0.3)
    generic = model._replace(m_step=lambda data, posterior, params: params)
    with pytest.raises(ValueError, match="streaming"):
        jaxem.fit_streaming(generic, [np.zeros((4, 2))], key=0)


@pytest.mark.filterwarnings("ignore::jaxem.ConvergenceWarning")
def test_streaming_convergence_is_fit_rule_a_small_fall_is_not_convergence(monkeypatch):
    # fit_streaming stopped on |change| < tol, so a fall of the objective (an
    # oscillation: EM never lowers it) smaller than tol counted as convergence;
    # jaxem.fit's rule (loop.met_tol) needs a rise below tol or a fall within rounding.
    from jaxem._src import streaming

    x, *_ = blobs(5, n=600)
    model = jaxem.models.gaussian_mixture(3, covariance_type="diag")
    good = jaxem.fit(model, x, key=0, max_iter=300, tol=1e-12).params
    worse = good._replace(means=good.means + 0.02)
    drop = (float(jaxem.log_likelihood(model, good, x)) - float(jaxem.log_likelihood(model, worse, x))) / x.shape[0]
    tol = 1e-2
    assert 1e-8 < drop < tol  # a real fall, well beyond rounding, below tol
    replies = iter([worse, good, good, good])  # the M-step's answers, in turn
    monkeypatch.setattr(streaming, "_maximize", lambda *args: next(replies))
    result = jaxem.fit_streaming(model, [x[:300], x[300:]], init_params=good, max_iter=10, tol=tol)
    # good -> worse: a fall, not convergence; worse -> good: a rise below tol, converged
    assert bool(result.converged[0])
    assert int(result.n_iter[0]) == 3  # before: 2, stopped on the fall
    trace = np.asarray(result.history[0])[:3]
    assert trace[1] < trace[0] and trace[2] > trace[1]
