"""Peer libraries timed beside jaxem: pomegranate and gmmx (GMM), dynamax (HMM).

None of them is a dependency of jaxem; they come with the ``bench`` extra::

    pip install torch==2.13.0        # first: the CPU wheel (an unpinned torch pulls CUDA)
    pip install -e ".[bench]"

Each runner takes the same data and starting parameters as the jaxem and reference
runs of ``benchmarks/gmm.py`` / ``benchmarks/hmm.py``, runs exactly ``iters`` EM
iterations (the peer's own initialization and convergence test switched off), and
returns a ``PeerRun``: ms per iteration (minimum over ``repeats`` timed runs, after
one untimed warm-up run that also pays any compilation) and its log-likelihood trace
where the peer gives one. What is timed:

- pomegranate (torch, CPU): the loop ``GeneralMixtureModel.fit`` runs, one
  ``summarize`` (E-step and statistics) and one ``from_summaries`` (M-step) per
  iteration, on a fresh model built from copies of the start (pomegranate updates
  its parameter tensors in place). Building the model is not timed.
- gmmx (JAX, float32 only): its jitted ``EMFitter.fit`` with ``tol=-inf``.
- dynamax (JAX): ``DiagonalGaussianHMM.fit_em`` wrapped in ``jax.jit`` (it builds a
  fresh jitted closure, so unwrapped it recompiles on every call). Its default
  conjugate priors make it a MAP fit: its trace is log-likelihood + log-prior, so
  only speed is compared; the log-likelihood at the start checks the data and start.

The scripts enable ``jax_enable_x64``; the float32 JAX peers run inside
``jax.enable_x64(False)`` (gmmx rejects float64 arrays, and dynamax's float32 scan
carry would otherwise be promoted to float64).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import NamedTuple, Optional

import numpy as np

from benchmarks._common import best_time

GMM_PEERS = ("pomegranate", "gmmx")
HMM_PEERS = ("dynamax",)
INSTALL = 'pip install torch==2.13.0 && pip install -e ".[bench]"'


class PeerRun(NamedTuple):
    """One peer's timing on one case.

    Attributes:
      library: name, version and dtype, e.g. ``"pomegranate 1.1.2 f32"``.
      seconds_per_iter: minimum over the timed runs of (run time / iterations).
      start_log_likelihood: log-likelihood of the starting parameters as the peer
        computed it (GMM: mean per sample; HMM: total), to check that the peer saw
        the same data and start as jaxem.
      trace: ``[iters]`` log-likelihoods before each update, in the units of
        ``start_log_likelihood``, or ``None`` where the peer's objective differs
        (dynamax: log-likelihood + log-prior).
      check: how the iteration count was verified, in words.
    """

    library: str
    seconds_per_iter: float
    start_log_likelihood: float
    trace: Optional[np.ndarray]
    check: str


def version(name: str) -> Optional[str]:
    """Installed version of distribution ``name``, or ``None`` when it does not import."""
    try:
        importlib.import_module(name)
    except Exception:  # an ImportError, or a broken install of the peer's own dependencies
        return None
    return importlib.metadata.version(name)


def missing(names) -> list:
    """The peers among ``names`` that are not importable."""
    return [name for name in names if version(name) is None]


def describe(names) -> str:
    """One line: the peers' versions, or which are missing and how to install them."""
    absent = missing(names)
    present = [f"{name} {version(name)}" + (" (float32 only)" if name == "gmmx" else "")
               for name in names if name not in absent]
    if "pomegranate" in names and "pomegranate" not in absent:
        present.append(f"torch {version('torch')} ({_torch_threads()} threads)")
    line = "peers: " + (", ".join(present) if present else "none installed")
    if absent:
        line += f"; not installed, skipped: {', '.join(absent)} (install with: {INSTALL})"
    return line


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _jax_dtype_scope(dtype: str):
    """Context in which JAX creates arrays of ``dtype`` by default."""
    import jax

    return jax.enable_x64(np.dtype(dtype) == np.float64)


# ----------------------------------------------------------------------------- GMM


def gmm_start(params, covariance_type: str):
    """float64 ``(weights [K], means [K, D], covariances)`` of jaxem mixture params;
    covariances ``[K, D, D]`` (full) or ``[K, D]`` (diag)."""
    import jaxem

    covariances = np.asarray(jaxem.models.covariances(params, covariance_type), np.float64)
    if covariance_type == "diag":
        covariances = np.diagonal(covariances, axis1=1, axis2=2).copy()
    return np.asarray(params.weights, np.float64), np.asarray(params.means, np.float64), covariances


def run_pomegranate_gmm(x: np.ndarray, start, covariance_type: str, iters: int, repeats: int) -> PeerRun:
    """pomegranate ``GeneralMixtureModel`` of ``Normal`` components on ``x: [N, D]``
    (float32 or float64, torch on the CPU), ``iters`` EM iterations from ``start``."""
    import torch
    from pomegranate.distributions import Normal
    from pomegranate.gmm import GeneralMixtureModel

    torch_dtype = {np.float32: torch.float32, np.float64: torch.float64}[x.dtype.type]
    data = torch.from_numpy(np.array(x, copy=True))
    weights, means, covariances = start

    def fresh_model():
        components = [
            Normal(torch.tensor(means[k], dtype=torch_dtype), torch.tensor(covariances[k], dtype=torch_dtype),
                   covariance_type=covariance_type, check_data=False)
            for k in range(len(weights))
        ]
        model = GeneralMixtureModel(components, priors=torch.tensor(weights), max_iter=iters, tol=-np.inf,
                                    check_data=False)
        return model.to(torch_dtype)  # pomegranate's dtype is that of its first parameter tensor

    trace = []

    def em_loop(model):
        trace.clear()
        with torch.no_grad():
            for _ in range(iters):  # what GeneralMixtureModel.fit does per iteration (its tol test aside)
                trace.append(float(model.summarize(data)) / len(data))
                model.from_summaries()

    models = [fresh_model() for _ in range(repeats + 1)]
    em_loop(models.pop())  # warm-up
    seconds = best_time(lambda: em_loop(models.pop()), repeats)
    check = f"{len(trace)} summarize/from_summaries rounds, check_data=False"
    name = f"pomegranate {version('pomegranate')} {_short(x.dtype)}"
    return PeerRun(name, seconds / iters, trace[0], np.array(trace), check)


def run_gmmx_gmm(x: np.ndarray, start, covariance_type: str, iters: int, repeats: int) -> PeerRun:
    """gmmx ``EMFitter.fit`` (float32 only) on ``x: [N, D]``, ``iters`` iterations from
    ``start``, ``reg_covar=1e-6`` (scikit-learn's and jaxem's default)."""
    import jax
    import jax.numpy as jnp
    from gmmx import EMFitter, GaussianMixtureModelJax

    weights, means, covariances = (np.asarray(a, np.float32) for a in start)
    with _jax_dtype_scope("float32"):
        data = jnp.asarray(x, jnp.float32)
        gmm = GaussianMixtureModelJax.from_squeezed(means=jnp.asarray(means), covariances=jnp.asarray(covariances),
                                                    weights=jnp.asarray(weights), covariance_type=covariance_type)
        fitter = EMFitter(max_iter=iters, tol=-np.inf, reg_covar=1e-6)
        result = jax.block_until_ready(fitter.fit(data, gmm))  # compiles
        seconds = best_time(lambda: jax.block_until_ready(fitter.fit(data, gmm)), repeats)
        trace = _gmmx_trace(fitter, data, gmm, iters)
    if int(result.n_iter) != iters:
        raise RuntimeError(f"gmmx ran {int(result.n_iter)} iterations, not {iters}")
    final = float(result.log_likelihood)
    check = f"n_iter={int(result.n_iter)}; fit's last mean loglik {final:.6f} vs stepped trace {trace[-1]:.6f}"
    return PeerRun(f"gmmx {version('gmmx')} f32", seconds / iters, float(trace[0]), trace, check)


def _gmmx_trace(fitter, data, gmm, iters: int) -> np.ndarray:
    """``[iters]`` mean log-likelihoods from gmmx's own ``e_step``/``m_step``, stepped
    one by one (the steps its ``fit`` loops over; ``fit`` returns only the last)."""
    import jax

    @jax.jit
    def step(gmm):
        log_likelihood, log_resp = fitter.e_step(data, gmm)
        return fitter.m_step(data, gmm, log_resp), log_likelihood

    trace = []
    for _ in range(iters):
        gmm, log_likelihood = step(gmm)
        trace.append(float(log_likelihood))
    return np.array(trace)


def gmm_peer_runs(x: np.ndarray, params, covariance_type: str, iters: int, repeats: int) -> list:
    """Every installed GMM peer on this case (gmmx only in float32)."""
    start = gmm_start(params, covariance_type)
    runs = []
    if version("pomegranate") is not None:
        runs.append(run_pomegranate_gmm(x, start, covariance_type, iters, repeats))
    if version("gmmx") is not None and x.dtype == np.float32:
        runs.append(run_gmmx_gmm(x, start, covariance_type, iters, repeats))
    return runs


# ----------------------------------------------------------------------------- HMM


def run_dynamax_hmm(sequences, start, dtype: str, iters: int, repeats: int) -> PeerRun:
    """dynamax ``DiagonalGaussianHMM.fit_em`` (default priors: MAP), jitted, on a
    list of ``[T, D]`` sequences of equal length, ``iters`` iterations from
    ``start = (initial [K], transition [K, K], means [K, D], variances [K, D])``."""
    import jax
    import jax.numpy as jnp
    from dynamax.hidden_markov_model import DiagonalGaussianHMM

    if len({len(s) for s in sequences}) != 1:
        raise ValueError("dynamax batches sequences of one length only")
    initial, transition, means, variances = start
    k, d = means.shape
    with _jax_dtype_scope(dtype):
        emissions = jnp.asarray(np.stack(sequences), dtype)  # [B, T, D]
        hmm = DiagonalGaussianHMM(k, d)
        params, props = hmm.initialize(
            initial_probs=jnp.asarray(initial, dtype), transition_matrix=jnp.asarray(transition, dtype),
            emission_means=jnp.asarray(means, dtype), emission_scale_diags=jnp.sqrt(jnp.asarray(variances, dtype)),
        )
        fit = jax.jit(lambda params, emissions: hmm.fit_em(params, props, emissions, num_iters=iters, verbose=False))
        _, log_probs = jax.block_until_ready(fit(params, emissions))  # compiles
        seconds = best_time(lambda: jax.block_until_ready(fit(params, emissions)), repeats)
        start_prior = float(hmm.log_prior(params))
    log_probs = np.asarray(log_probs, np.float64)
    if log_probs.shape != (iters,):
        raise RuntimeError(f"dynamax returned {log_probs.shape} log-probabilities, not ({iters},)")
    rises = bool(np.all(np.diff(log_probs) >= -1e-6 * np.abs(log_probs[1:])))
    check = f"{len(log_probs)} steps, MAP (default priors): log-likelihood + log-prior rises at every step: {rises}"
    name = f"dynamax {version('dynamax')} {_short(np.dtype(dtype))}"
    return PeerRun(name, seconds / iters, log_probs[0] - start_prior, None, check)


def hmm_peer_runs(sequences, start, dtype: str, iters: int, repeats: int) -> list:
    """Every installed HMM peer on this case."""
    if version("dynamax") is None:
        return []
    return [run_dynamax_hmm(sequences, start, dtype, iters, repeats)]


# ----------------------------------------------------------------------------- output


def _short(dtype) -> str:
    return {np.float32: "f32", np.float64: "f64"}[np.dtype(dtype).type]


def print_runs(runs, jaxem_seconds: float, jaxem_trace: np.ndarray, reference_seconds: float, reference: str,
               indent: int = 14) -> None:
    """Print each run: ms/iter, its speed relative to ``reference`` and how many
    times faster jaxem is (``*_seconds`` per iteration, measured in the same run),
    then its checks: the relative difference of its starting log-likelihood from
    jaxem's (``jaxem_trace[0]``, same units) and, for a comparable trace, the
    largest difference from ``jaxem_trace`` over the iterations."""
    for run in runs:
        ms = run.seconds_per_iter * 1e3
        ratio = run.seconds_per_iter / jaxem_seconds
        verdict = f"jaxem is {ratio:.2f}x faster" if ratio >= 1 else f"jaxem is {1 / ratio:.2f}x SLOWER"
        print(f"{'':<{indent}} peer {run.library:<21} {ms:9.1f} ms/iter = {reference_seconds / run.seconds_per_iter:5.2f}x "
              f"{reference}; {verdict} (same run)")
        start_diff = abs(run.start_log_likelihood - jaxem_trace[0]) / abs(jaxem_trace[0])
        check = f"{run.check}; start loglik rel. diff to jaxem {start_diff:.1e}"
        if run.trace is not None:
            check += f"; max |Δ loglik| to jaxem's trace {np.max(np.abs(run.trace - jaxem_trace)):.1e}"
        print(f"{'':<{indent}}      [{check}]")
