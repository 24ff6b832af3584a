"""Starts: jaxem's best-of-R restarts against the peers' best-of-R seeds, on real data.

    PYTHONPATH=. python benchmarks/starts.py [--restarts 8 16] [--iters 300] [--only NAME]

For each data set and family, both sides fit R times from their default starts
(jaxem: ``jaxem.fit(model, x, key=0, n_restarts=R)``, the R restarts vmapped in one
program; the peer: R fits with ``random_state = 0 .. R-1``) with the same EM
stopping rule (at most ``--iters`` iterations, a change below 1e-6 nats per
observation), and the script prints the best mean log-likelihood per observation
of each side, their difference (jaxem minus peer; >= 0 means jaxem's best start is
at least as good) and the fraction of jaxem's restarts ending within 1e-3
nats/observation of the best of both sides. Every final log-likelihood is rescored
in float64 by jaxem's ``log_likelihood`` on each side's fitted params.

Data: scikit-learn's bundled iris, wine, breast cancer (standardized), diabetes
features (standardized), digits (binarized at 8: Bernoulli mixture); jaxem's
faithful, geyser (in time order: a Gaussian HMM), Nile (Gaussian HMM) and
discoveries (Poisson HMM); and text: lowercase letters and space of the
docstrings of installed packages' modules, one sequence per line (categorical HMM,
27 symbols). Peers: scikit-learn's ``GaussianMixture`` (its default k-means
start) and hmmlearn's ``GaussianHMM`` / ``PoissonHMM`` / ``CategoricalHMM``; the
Bernoulli mixture has no installed peer (jaxem's numbers only).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import re
import time
import warnings

import jax
import numpy as np

import jaxem
from benchmarks._common import machine

TOL = 1e-6


def _standardized(x):
    return (x - x.mean(axis=0)) / x.std(axis=0)


def text_sequences(max_lines: int = 200, max_len: int = 80):
    """Symbols ``[N]`` (a-z -> 0..25, space -> 26) and lengths of lines of the
    docstrings of a few installed modules (one sequence per non-empty line)."""
    import json, numpy, scipy.stats, sklearn.cluster  # noqa: E401  (the texts)

    lines = []
    for module in (json, numpy, scipy.stats, sklearn.cluster):
        for line in (inspect.getdoc(module) or "").splitlines():
            line = re.sub(r"[^a-z ]", "", line.lower()).strip()
            line = re.sub(r" +", " ", line)[:max_len]
            if len(line) >= 10:
                lines.append(line)
    lines = lines[:max_lines]
    codes = [np.array([26 if c == " " else ord(c) - ord("a") for c in line]) for line in lines]
    return np.concatenate(codes), np.array([len(c) for c in codes])


def cases():
    """``(name, family, jaxem model, jaxem data, peer fit(seed) -> jaxem params | None, n_obs)``."""
    from hmmlearn import hmm
    from sklearn import datasets
    from sklearn.mixture import GaussianMixture

    out = []

    def gmm_case(name, x, k):
        model = jaxem.models.gaussian_mixture(k, covariance_type="full")

        def peer(seed):
            g = GaussianMixture(k, covariance_type="full", max_iter=ITERS, tol=TOL, random_state=seed).fit(x)
            return jaxem.models.gaussian_mixture_params(g.weights_, g.means_, g.covariances_, "full")

        out.append((name, f"gaussian mixture K={k}", model, x, peer, len(x)))

    gmm_case("iris", datasets.load_iris().data, 3)
    gmm_case("wine (std)", _standardized(datasets.load_wine().data), 3)
    gmm_case("breast cancer (std)", _standardized(datasets.load_breast_cancer().data), 2)
    gmm_case("diabetes (std)", _standardized(datasets.load_diabetes().data), 3)
    gmm_case("faithful", jaxem.load_dataset("faithful")[0], 2)
    digits = (datasets.load_digits().data >= 8).astype(np.float64)
    out.append(("digits (binary)", "bernoulli mixture K=10", jaxem.models.bernoulli_mixture(10), digits, None, len(digits)))

    def gaussian_hmm_case(name, x, k):
        model = jaxem.models.gaussian_hmm(k, covariance_type="diag")

        def peer(seed):
            h = hmm.GaussianHMM(k, "diag", n_iter=ITERS, tol=TOL * len(x), random_state=seed).fit(x)
            return jaxem.models.gaussian_hmm_params(h.startprob_, h.transmat_, h.means_, h._covars_, "diag")

        out.append((name, f"gaussian HMM K={k}", model, x, peer, len(x)))

    gaussian_hmm_case("geyser", jaxem.load_dataset("geyser")[0], 3)
    gaussian_hmm_case("Nile", jaxem.load_dataset("Nile")[0][:, 1:], 2)
    counts = jaxem.load_dataset("discoveries")[0][:, 1:].astype(np.int64)

    def poisson_peer(seed):
        h = hmm.PoissonHMM(2, n_iter=ITERS, tol=TOL * len(counts), random_state=seed).fit(counts)
        return jaxem.models.poisson_hmm_params(h.startprob_, h.transmat_, h.lambdas_)

    out.append(("discoveries", "poisson HMM K=2", jaxem.models.poisson_hmm(2), counts, poisson_peer, len(counts)))
    symbols, lengths = text_sequences()

    def text_peer(seed):
        h = hmm.CategoricalHMM(4, n_iter=ITERS, tol=TOL * len(symbols), random_state=seed, n_features=27)
        h.fit(symbols[:, None], lengths)
        return jaxem.models.categorical_hmm_params(h.startprob_, h.transmat_, h.emissionprob_)

    text = jaxem.Sequences.from_concatenated(symbols, lengths)
    out.append(("text (27 symbols)", "categorical HMM K=4", jaxem.models.categorical_hmm(4, 27), text, text_peer, len(symbols)))
    return out


ITERS = 300


def main():
    global ITERS
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--only", default=None, help="run only the cases whose name contains this")
    args = parser.parse_args()
    ITERS = args.iters
    jax.config.update("jax_enable_x64", True)
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    print(machine())
    print(f"at most {ITERS} EM iterations, tol {TOL} nats/observation; mean log-likelihood per observation (float64)")
    print("| data | family | R | jaxem best | peer best | jaxem − peer | jaxem restarts within 1e-3 of best | load | s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, family, model, data, peer, n_obs in cases():
        if args.only and args.only not in name:
            continue
        peer_scores = []  # the peer's seed s is the same fit at every R: fitted once
        for r in args.restarts:
            started = time.perf_counter()
            result = jaxem.fit(model, data, key=0, n_restarts=r, max_iter=ITERS, tol=TOL)
            ours = np.asarray(result.all_log_likelihoods) / n_obs
            if peer is None:
                theirs = np.nan
            else:
                for seed in range(len(peer_scores), r):
                    peer_scores.append(float(jaxem.log_likelihood(model, peer(seed), data)) / n_obs)
                theirs = max(peer_scores[:r])
            best = np.nanmax(np.append(ours, theirs))
            within = np.mean(ours >= best - 1e-3)
            peer_text = "—" if np.isnan(theirs) else f"{theirs:.4f}"
            diff = "—" if np.isnan(theirs) else f"{np.nanmax(ours) - theirs:+.4f}"
            seconds = time.perf_counter() - started
            print(
                f"| {name} | {family} | {r} | {np.nanmax(ours):.4f} | {peer_text} | {diff} | {within:.2f} "
                f"| {os.getloadavg()[0]:.1f} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
