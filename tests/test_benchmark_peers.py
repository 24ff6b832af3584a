"""`benchmarks/_peers.py` works without the peer libraries (CI installs only `.[test]`).

The peers are hidden from import (``sys.modules[name] = None`` makes ``import name``
raise ImportError) whether or not they are installed, so this runs the same way
everywhere. No timing is tested.
"""

import sys

import numpy as np
import pytest

import jaxem
from benchmarks import _peers

PEERS = _peers.GMM_PEERS + _peers.HMM_PEERS


@pytest.fixture
def no_peers(monkeypatch):
    for name in PEERS:
        monkeypatch.setitem(sys.modules, name, None)


def test_missing_peers_are_reported_with_the_install_command(no_peers):
    assert _peers.missing(PEERS) == list(PEERS)
    line = _peers.describe(PEERS)
    assert "none installed" in line
    assert "not installed, skipped: pomegranate, gmmx, dynamax" in line
    assert "torch==2.13.0" in line


def test_runs_are_skipped_not_crashed_without_peers(no_peers):
    params = jaxem.models.gaussian_mixture_params([0.5, 0.5], [[0.0, 0.0], [3.0, 1.0]], [[1.0, 2.0], [0.5, 1.0]],
                                                  covariance_type="diag")
    x = np.zeros((4, 2), np.float32)
    assert _peers.gmm_peer_runs(x, params, "diag", iters=2, repeats=1) == []
    assert _peers.hmm_peer_runs([np.zeros((3, 2))], None, "float32", iters=2, repeats=1) == []


def test_gmm_start_gives_the_covariances_the_peers_take():
    covariances = np.array([[[2.0, 0.3], [0.3, 1.0]], [[1.0, -0.2], [-0.2, 0.5]]])
    params = jaxem.models.gaussian_mixture_params([0.25, 0.75], [[0.0, 1.0], [2.0, 3.0]], covariances)
    weights, means, full = _peers.gmm_start(params, "full")
    np.testing.assert_allclose(full, covariances, rtol=1e-12)
    np.testing.assert_allclose(weights, [0.25, 0.75])
    np.testing.assert_allclose(means, [[0.0, 1.0], [2.0, 3.0]])
    diag = jaxem.models.gaussian_mixture_params([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [[2.0, 3.0], [4.0, 5.0]],
                                                covariance_type="diag")
    np.testing.assert_allclose(_peers.gmm_start(diag, "diag")[2], [[2.0, 3.0], [4.0, 5.0]], rtol=1e-12)
