"""The data of tests/test_multiprocess.py: every process builds it all and keeps its slice."""

import numpy as np

from tests.helpers import blobs


def mixture_rows():
    return blobs(11, n=480)[0] + np.array([30.0, -10.0, 5.0])


def hmm_sequences():
    rng = np.random.default_rng(12)
    means = np.array([[-3.0, 0.0], [0.0, 3.0], [3.0, -1.0]])
    out = []
    for _ in range(11):
        states = np.cumsum(rng.random(int(rng.integers(12, 36))) < 0.15) % 3
        out.append(means[states] + rng.normal(size=(states.size, 2)))
    return out
