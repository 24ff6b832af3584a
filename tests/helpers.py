"""Shared test helpers: reference conversions and small synthetic data."""

import numpy as np


def sklearn_precisions(params, covariance_type):
    """scikit-learn's ``precisions_init`` from jaxem params (P = U Uᵀ)."""
    u = np.asarray(params.precisions_cholesky)
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", u, u)
    if covariance_type == "tied":
        return u @ u.T
    return u * u


def as_full_covariances(covariances, covariance_type, k, d):
    """scikit-learn's ``covariances_`` of any type as ``[K, D, D]``."""
    c = np.asarray(covariances)
    if covariance_type == "full":
        return c
    if covariance_type == "tied":
        return np.broadcast_to(c, (k, d, d))
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in c])
    return np.stack([np.eye(d) * v for v in c])


def blobs(seed, n=600, means=((-4.0, 0.0, 1.0), (3.0, 3.0, -2.0), (0.0, -4.0, 4.0)), scale=(1.0, 0.6, 1.3)):
    """Well-separated Gaussian blobs ``[N, D]`` with their labels and true parameters."""
    rng = np.random.default_rng(seed)
    means = np.asarray(means, dtype=np.float64)
    k, d = means.shape
    weights = np.arange(1, k + 1, dtype=np.float64)
    weights /= weights.sum()
    labels = rng.choice(k, size=n, p=weights)
    covs = []
    for j in range(k):
        a = rng.normal(size=(d, d)) * 0.3
        covs.append(scale[j] ** 2 * (np.eye(d) + a @ a.T))
    covs = np.asarray(covs)
    x = np.stack([rng.multivariate_normal(means[z], covs[z]) for z in labels])
    return x, labels, weights, means, covs
