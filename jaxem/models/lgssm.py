"""Linear-Gaussian state-space models (Kalman filter E-step by autodiff).

The math is in ``jaxem/_src/lgssm.py`` (potentials, closed-form M-step) and
``jaxem/_src/kalman.py`` (the chain's log-partition); this factory checks options.
"""

from __future__ import annotations

from jaxem._src import validation
from jaxem._src.base import Model
from jaxem._src.lgssm import LGSSMParams, lgssm_model
from jaxem._src.registry import register_model

__all__ = ["LGSSMParams", "lgssm"]


@register_model("lgssm")
def lgssm(n_states: int, *, n_inputs: int = 0, reg_covar: float = 1e-6, parallel: bool = False) -> Model:
    """A linear-Gaussian state-space model fitted by EM.

    ``z_0 ~ N(m_0, P_0)``, ``z_t = F z_{t-1} + B u_t + w_t`` (``w_t ~ N(0, Q)``),
    ``x_t = H z_t + D u_t + v_t`` (``v_t ~ N(0, R)``). The E-step is the gradient of
    a square-root (Cholesky) information filter's log-partition in ``lax.scan``
    (``jaxem.gaussian_chain_latent``), so the RTS smoother comes from autodiff; the
    M-step is closed form.

    Data: one sequence ``[T, D]`` (``[T]`` means D = 1) or
    ``jaxem.Sequences(obs [B, T_max, D], lengths [B])``; with ``n_inputs > 0`` a pair
    ``(obs, inputs)`` with inputs ``[T, U]`` (or ``[B, T_max, U]``). NaN entries
    are missing and marginalized exactly: a step all NaN has no emission term, a
    step partly NaN the likelihood of its observed coordinates (its rows of ``H``,
    ``D`` and of ``R``); the M-step imputes the missing coordinates' moments given
    ``z_t`` and the observed ones (EM with them as latents).

    Args:
      n_states: latent dimension L.
      n_inputs: number of inputs U (0: none).
      reg_covar: added to the diagonal of every covariance the M-step estimates
        (data units for R), so none becomes singular.
      parallel: compute the log-partition (and its gradient, the smoother) in
        parallel-in-time form, depth ``⌈log₂ T⌉`` instead of ``T``
        (``jaxem.gaussian_chain_latent(parallel=True)``): for a GPU and long
        sequences (it compiles much longer; see docs/continuous_latents.md). Same
        results.

    Returns:
      A ``Model`` with ``LGSSMParams``. ``jaxem.posterior`` gives a
      ``GaussianChainPosterior`` (smoothed means ``[B, T, L]``, covariances,
      lag-one cross-covariances), ``jaxem.predict`` the smoothed means,
      ``sample(key, params, n)`` one sequence ``(x [n, D], z [n, L])`` (no inputs).

    Examples:
      >>> import jax, jaxem, numpy as np
      >>> x = np.cumsum(np.random.default_rng(0).normal(size=200)) + np.random.default_rng(1).normal(size=200)
      >>> result = jaxem.fit(jaxem.models.lgssm(1), x, key=0, max_iter=50)
      >>> result.params.dynamics.shape
      (1, 1)
    """
    n_states = validation.check_positive_int(n_states, "n_states")
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or n_inputs < 0:
        raise ValueError(f"n_inputs must be a non-negative integer, got {n_inputs!r}")
    reg_covar = validation.check_nonnegative_float(reg_covar, "reg_covar")
    if not isinstance(parallel, bool):
        raise TypeError(f"parallel must be a bool, got {type(parallel).__name__}")
    return lgssm_model(n_states, n_inputs=n_inputs, reg_covar=reg_covar, parallel=parallel)
