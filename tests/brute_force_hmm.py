"""Brute-force HMM references (NumPy float64): every one of the K^T state paths of
a short sequence enumerated, so no forward-backward recursion is trusted."""

import itertools

import numpy as np
from scipy.special import logsumexp


def path_posteriors(log_initial, log_transition, log_emission):
    """For one sequence with ``log_emission [T, K]``: ``(log p(x), gamma [T, K],
    xi [K, K], first [K])``, the smoothed marginals, the expected transition counts
    and the expected initial counts, by enumerating all K^T paths."""
    t_max, k = log_emission.shape
    paths = np.array(list(itertools.product(range(k), repeat=t_max)))  # [K^T, T]
    scores = log_initial[paths[:, 0]] + log_emission[np.arange(t_max), paths].sum(axis=1)
    scores = scores + log_transition[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    log_z = logsumexp(scores)
    weights = np.exp(scores - log_z)
    gamma = np.zeros((t_max, k))
    xi = np.zeros((k, k))
    for path, w in zip(paths, weights):
        gamma[np.arange(t_max), path] += w
        np.add.at(xi, (path[:-1], path[1:]), w)
    return log_z, gamma, xi, gamma[0]


def best_path(log_initial, log_transition, log_emission):
    """The most probable path of one sequence, by enumeration."""
    t_max, k = log_emission.shape
    paths = np.array(list(itertools.product(range(k), repeat=t_max)))
    scores = log_initial[paths[:, 0]] + log_emission[np.arange(t_max), paths].sum(axis=1)
    scores = scores + log_transition[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    return paths[np.argmax(scores)]


def expected_counts(initial_probs, transition_matrix, log_emissions):
    """Summed over sequences (``log_emissions``: a list of ``[T_b, K]``):
    ``(total log-likelihood, [gamma_b], xi [K, K], first [K])``."""
    log_initial, log_transition = np.log(initial_probs), np.log(transition_matrix)
    total, gammas = 0.0, []
    xi = np.zeros_like(transition_matrix)
    first = np.zeros_like(initial_probs)
    for table in log_emissions:
        log_z, gamma, xi_b, first_b = path_posteriors(log_initial, log_transition, table)
        total += log_z
        gammas.append(gamma)
        xi += xi_b
        first += first_b
    return total, gammas, xi, first
