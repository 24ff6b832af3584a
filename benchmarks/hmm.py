"""Gaussian diag HMM EM: jaxem vs hmmlearn (``implementation="scaling"``).

    PYTHONPATH=. python benchmarks/hmm.py [--iters 5]

K=8 states, D=4, diag covariances; (a) one sequence of T=100 000 steps, (b) 100
sequences of 1 000; then a GMM-HMM case against hmmlearn's ``GMMHMM``
(``gmm_case``; ``--gmm-only`` runs just that one). Both libraries run ``--iters`` Baum–Welch iterations from the
same parameters, in this process. Per iteration: the whole ``fit`` call (compiled,
for jaxem) divided by ``--iters``, minimum of ``--repeats`` runs (a shared machine).
hmmlearn runs on float64 data (its float32 fit computes in float64 anyway); jaxem
in float32 and float64. Also printed: the relative difference between jaxem's
float32 and float64 log-likelihood traces (target < 1e-5), and between jaxem
float64 and hmmlearn's final score.
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxem  # noqa: E402
from benchmarks import _peers  # noqa: E402
from benchmarks._common import best_time, machine  # noqa: E402

K, D = 8, 4


def sample_hmm(lengths, seed=0):
    rng = np.random.default_rng(seed)
    transition = np.full((K, K), 0.05 / (K - 1)) + np.eye(K) * (0.95 - 0.05 / (K - 1))
    means = rng.normal(size=(K, D)) * 2.0
    scales = rng.uniform(0.5, 1.5, size=(K, D))
    sequences = []
    for length in lengths:
        z = np.empty(length, int)
        z[0] = rng.integers(K)
        u = rng.uniform(size=length)
        cumulative = np.cumsum(transition, axis=1)
        for t in range(1, length):
            z[t] = min(np.searchsorted(cumulative[z[t - 1]], u[t]), K - 1)
        sequences.append(means[z] + scales[z] * rng.normal(size=(length, D)) + 100.0)
    return sequences


def start_params(sequences):
    x = np.concatenate(sequences)
    rng = np.random.default_rng(1)
    means = x[rng.choice(len(x), K, replace=False)]
    variances = np.tile(x.var(axis=0), (K, 1))
    transition = np.full((K, K), 0.2 / (K - 1)) + np.eye(K) * (0.8 - 0.2 / (K - 1))
    return np.full(K, 1.0 / K), transition, means, variances


def run_hmmlearn(sequences, start, iters, repeats):
    from hmmlearn import hmm

    x, lengths = np.concatenate(sequences), [len(s) for s in sequences]
    initial, transition, means, variances = start

    def make():
        m = hmm.GaussianHMM(K, covariance_type="diag", n_iter=iters, tol=-np.inf, init_params="",
                            params="stmc", implementation="scaling", covars_prior=0.0)
        m.startprob_, m.transmat_, m.means_, m.covars_ = initial, transition, means, variances
        return m

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make().fit(x, lengths)

    seconds = best_time(fit, repeats)
    fitted = fit()
    return seconds / iters, fitted.score(x, lengths)


def run_jaxem(sequences, start, dtype, iters, repeats):
    data = sequences[0] if len(sequences) == 1 else jaxem.Sequences.from_list(sequences)
    if isinstance(data, np.ndarray):
        data = jnp.asarray(data.astype(dtype))
    else:
        data = jaxem.Sequences(jnp.asarray(np.asarray(data.obs).astype(dtype)), data.lengths)
    model = jaxem.models.gaussian_hmm(K, covariance_type="diag", reg_covar=0.0)
    initial, transition, means, variances = start
    params = jaxem.models.gaussian_hmm_params(initial, transition, means, variances, covariance_type="diag")
    params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), params)

    def fit():
        return jax.block_until_ready(jaxem.fit(model, data, key=0, init_params=params, max_iter=iters, tol=0.0))

    result = fit()
    seconds = best_time(fit, repeats)
    return seconds / iters, np.asarray(result.history[0], np.float64), float(result.log_likelihood)


GMM_K, GMM_M, GMM_D = 4, 3, 3


def gmm_case(iters: int, repeats: int, lengths=(1_000,) * 20):
    """GMM-HMM (diag, K=4 states of M=3 components, D=3): jaxem vs hmmlearn's
    ``GMMHMM`` (``implementation="scaling"``), ``iters`` iterations from the same
    params. hmmlearn's ``fit`` runs its k-means initialization even when
    ``init_params=""``, so its per-iteration time is the difference of a fit of
    ``iters + 1`` and of 1 iteration, divided by ``iters``."""
    from hmmlearn import hmm

    rng = np.random.default_rng(2)
    k, m, d = GMM_K, GMM_M, GMM_D
    truth = hmm.GMMHMM(k, m, covariance_type="diag", init_params="")
    truth.startprob_ = np.full(k, 1.0 / k)
    truth.transmat_ = np.full((k, k), 0.05 / (k - 1)) + np.eye(k) * (0.95 - 0.05 / (k - 1))
    truth.weights_ = rng.dirichlet(np.ones(m) * 3.0, size=k)
    truth.means_ = rng.normal(size=(k, m, d)) * 3.0
    truth.covars_ = rng.uniform(0.5, 1.5, size=(k, m, d))
    x, _ = truth.sample(sum(lengths), random_state=3)
    sequences = np.split(x, np.cumsum(lengths)[:-1])
    start_means = truth.means_ + rng.normal(size=(k, m, d))
    start = (np.full(k, 1.0 / k), np.full((k, k), 1.0 / k), np.full((k, m), 1.0 / m), start_means, np.ones((k, m, d)))

    def reference_fit(n_iter):
        model = hmm.GMMHMM(k, m, covariance_type="diag", n_iter=n_iter, tol=-np.inf, init_params="",
                           params="stmcw", implementation="scaling")
        model.startprob_, model.transmat_, model.weights_, model.means_, model.covars_ = (a.copy() for a in start)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(x, np.asarray(lengths))

    full, one = best_time(lambda: reference_fit(iters + 1), repeats), best_time(lambda: reference_fit(1), repeats)
    ref_time = max(full - one, 1e-9) / iters
    ref_score = reference_fit(iters).score(x, np.asarray(lengths))
    print(f"\nGMM-HMM diag, K={k}, M={m}, D={d}, {len(lengths)} x T={lengths[0]}, {iters} iterations from the same start\n")
    print(f"{'library':<16} {'ms/iter':>9} {'speed-up':>9} {'note':>44}")
    print(f"{'hmmlearn scaling':<16} {ref_time * 1e3:9.1f} {1.0:9.2f}")
    model = jaxem.models.gmm_hmm(k, m, covariance_type="diag", reg_covar=0.0)
    traces = {}
    for dtype in ("float32", "float64"):
        data = jaxem.Sequences(jnp.asarray(np.stack(sequences).astype(dtype)), jnp.asarray(lengths, jnp.int32))
        params = jaxem.models.gmm_hmm_params(*start, covariance_type="diag")
        params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype), params)

        def fit():
            return jax.block_until_ready(jaxem.fit(model, data, key=0, init_params=params, max_iter=iters, tol=0.0))

        result = fit()
        seconds = best_time(fit, repeats) / iters
        traces[dtype] = np.asarray(result.history[0], np.float64)
        note = ""
        if dtype == "float64":
            final = float(result.log_likelihood)
            note = f"final loglik rel. diff to hmmlearn {abs(final - ref_score) / abs(ref_score):.1e}"
        print(f"{'jaxem ' + dtype:<16} {seconds * 1e3:9.1f} {ref_time / seconds:9.2f} {note:>44}")
    rel = np.max(np.abs(traces["float32"] - traces["float64"]) / np.abs(traces["float64"]))
    print(f"float32 vs float64 log-likelihood traces: max rel. diff {rel:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peers", action="store_true", help="also time dynamax (the bench extra)")
    parser.add_argument("--gmm-only", action="store_true", help="only the GMM-HMM case")
    args = parser.parse_args()
    print(machine())
    if args.gmm_only:
        gmm_case(args.iters, args.repeats)
        return
    if args.peers:
        print(_peers.describe(_peers.HMM_PEERS))
    print(f"Gaussian diag HMM, K={K}, D={D}, {args.iters} Baum-Welch iterations from the same start\n")
    header = f"{'case':<22} {'library':<16} {'ms/iter':>9} {'speed-up':>9} {'note':>44}"
    print(header)
    print("-" * len(header))
    for name, lengths in [("1 x T=100 000", [100_000]), ("100 x T=1 000", [1_000] * 100)]:
        sequences = sample_hmm(lengths)
        start = start_params(sequences)
        ref_time, ref_score = run_hmmlearn(sequences, start, args.iters, max(1, args.repeats - 1))
        print(f"{name:<22} {'hmmlearn scaling':<16} {ref_time * 1e3:9.1f} {1.0:9.2f}")
        traces = {}
        for dtype in ("float32", "float64"):
            seconds, trace, final = run_jaxem(sequences, start, dtype, args.iters, args.repeats)
            traces[dtype] = trace
            if dtype == "float64":
                note = f"final loglik rel. diff to hmmlearn {abs(final - ref_score) / abs(ref_score):.1e}"
            else:
                note = ""
            print(f"{'':<22} {'jaxem ' + dtype:<16} {seconds * 1e3:9.1f} {ref_time / seconds:9.2f} {note:>44}")
            if args.peers:
                runs = _peers.hmm_peer_runs(sequences, start, dtype, args.iters, args.repeats)
                _peers.print_runs(runs, seconds, trace, ref_time, "hmmlearn", indent=22)
        rel = np.max(np.abs(traces["float32"] - traces["float64"]) / np.abs(traces["float64"]))
        print(f"{'':<22} float32 vs float64 log-likelihood traces: max rel. diff {rel:.1e}")
    gmm_case(args.iters, args.repeats)
    print(f"\n(finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
