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
