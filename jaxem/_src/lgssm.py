"""The linear-Gaussian state-space model (LGSSM) as Gaussian chain potentials.

    z_0 ~ N(m_0, P_0),  z_t = F z_{t-1} + B u_t + w_t,  w_t ~ N(0, Q),
    x_t = H z_t + D u_t + v_t,  v_t ~ N(0, R),

with optional inputs ``u_t ∈ R^U``. ``log_joint`` writes ``log p(x, z)`` as
``GaussianChainPotentials`` (``kalman.py``), using the parameter-sized precisions
``Q⁻¹``, ``P_0⁻¹`` (Cholesky solves) and, per step, a Cholesky factor of ``R``; a step whose observation is missing
(all NaN) simply has no emission term, so it is marginalized exactly. A step with
only some coordinates missing has the emission term of its observed sub-vector
``x_o ~ N(H_o z + D_o u, R_oo)``: with a mask ``m_t`` the shapes stay static, the
missing rows of ``H`` and of the residual are zeroed and ``R``'s missing rows and
columns replaced by the identity's, whose Cholesky factor is ``R_oo``'s plus an
identity block (no inverse). The M-step then treats the missing coordinates as
latent too: given ``z_t`` and ``x_o`` they are Gaussian (mean linear in ``z_t``),
so their expected sums follow from the smoothed moments (Shumway & Stoffer 1982).
The E-step
(the gradient of the Kalman filter's log-partition) gives the smoothed moments;
the M-step is closed form (Ghahramani & Hinton 1996, with inputs): two
regressions, ``z_t`` on ``[z_{t-1}, u_t]`` and ``x_t`` on ``[z_t, u_t]``, from
expected sums, and the initial mean and covariance.

Observations are divided by a per-coordinate scale (the root mean square of the
observed values) once in ``prepare``; the model runs in those units and the
parameters are converted at the boundary (the Jacobian is added to ``c``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxem._src import sequences as seqs_lib
from jaxem._src import small_linalg, validation
from jaxem._src.base import Array, Model
from jaxem._src.display import params_repr
from jaxem._src.gaussian_latent import symmetric
from jaxem._src.kalman import GaussianChainPotentials, gaussian_chain_latent
from jaxem._src.sequences import Sequences


class LGSSMParams(NamedTuple):
    """Parameters of a linear-Gaussian state-space model (L states, D outputs, U inputs).

    Attributes:
      initial_mean: ``[L]`` m_0.
      initial_covariance: ``[L, L]`` P_0.
      dynamics: ``[L, L]`` F.
      dynamics_input: ``[L, U]`` B.
      dynamics_covariance: ``[L, L]`` Q.
      emission: ``[D, L]`` H.
      emission_input: ``[D, U]`` D.
      emission_covariance: ``[D, D]`` R.
    """

    initial_mean: Array
    initial_covariance: Array
    dynamics: Array
    dynamics_input: Array
    dynamics_covariance: Array
    emission: Array
    emission_input: Array
    emission_covariance: Array

    __repr__ = params_repr


class LGSSMData(NamedTuple):
    """Prepared LGSSM data.

    Attributes:
      obs: ``[B, T, D]`` observations divided by ``scale``, 0 where missing or padded.
      observed: ``[B, T, D]`` 1 where an entry is inside its sequence and observed;
        ``[B, T, 1]`` when every step is observed whole or not at all (then each
        observed step shares one factor of ``R``, as when nothing is missing).
      inputs: ``[B, T, U]`` (``U`` may be 0).
      lengths: ``[B]`` int32.
      scale: ``[D]``.
    """

    obs: Array
    observed: Array
    inputs: Array
    lengths: Array
    scale: Array


def _split(data, n_inputs: int):
    if n_inputs:
        if not (isinstance(data, tuple) and not isinstance(data, Sequences) and len(data) == 2):
            raise TypeError("with n_inputs > 0, data must be a pair (obs, inputs)")
        return data
    return data, None


def check_data(data, n_inputs: int):
    """Validates raw data: ``[T, D]`` / ``Sequences``; NaN marks missing entries."""
    obs, inputs = _split(data, n_inputs)
    seqs = seqs_lib.as_sequences(obs if isinstance(obs, Sequences) else validation.as_real_array(obs, "obs"), 1)
    filled = Sequences(jnp.nan_to_num(validation.to_float(seqs.obs), nan=0.0), seqs.lengths)
    if isinstance(obs, Sequences):
        seqs_lib.check_sequences(Sequences(filled.obs, obs.lengths), 1)
    else:
        seqs_lib.check_sequences(filled.obs[0], 1)
    if validation.is_concrete(seqs.obs):
        values = seqs_lib.valid_values(Sequences(np.asarray(validation.to_float(seqs.obs)), seqs.lengths))
        if np.any(np.isinf(values)):
            raise ValueError("obs contains infinite values (NaN marks a missing value)")
        missing = np.isnan(values)
        if missing.all():
            raise ValueError("obs has no observed step")
        if np.any(missing.all(axis=0)):
            raise ValueError(f"obs has coordinates never observed (all NaN): {np.flatnonzero(missing.all(axis=0)).tolist()}")
    if n_inputs:
        u = validation.as_float_array(inputs, "inputs")
        u = u[None] if u.ndim == 2 else u
        want = seqs.obs.shape[:2] + (n_inputs,)
        if u.shape != want:
            raise ValueError(f"inputs must have shape {want[1:] if not isinstance(obs, Sequences) else want}, got {u.shape}")
    return seqs


def prepare(data, n_inputs: int) -> LGSSMData:
    if isinstance(data, LGSSMData):
        return data
    obs, inputs = _split(data, n_inputs)
    seqs = seqs_lib.as_sequences(obs, 1)
    x = validation.to_float(seqs.obs)
    dtype = x.dtype
    b, t_max, d = x.shape
    inside = seqs_lib.step_mask(seqs.lengths, t_max)
    entries = inside[..., None] & ~jnp.isnan(x)  # [B, T, D]
    x = jnp.where(entries, x, jnp.zeros_like(x))
    count = jnp.maximum(jnp.sum(entries.astype(dtype), axis=(0, 1)), 1.0)
    rms = jnp.sqrt(jnp.sum(x * x, axis=(0, 1)) / count)
    scale = jnp.where(rms > 0, rms, jnp.ones_like(rms))
    if n_inputs:
        u = validation.to_float(inputs).astype(dtype)
        u = u[None] if u.ndim == 2 else u
        u = jnp.where(inside[..., None], u, jnp.zeros_like(u))
    else:
        u = jnp.zeros((b, t_max, 0), dtype)
    if validation.is_concrete(entries):
        whole = np.asarray(entries)
        if np.array_equal(whole.all(axis=-1), whole.any(axis=-1)):  # no partly observed step
            entries = entries[..., :1]
    return LGSSMData(x / scale[None, None], entries.astype(dtype), u, seqs.lengths, scale)


def _scaled(params: LGSSMParams, scale: Array) -> LGSSMParams:
    """Parameters for observations divided by ``scale`` (or multiplied, inverted)."""
    return params._replace(
        emission=params.emission / scale[:, None],
        emission_input=params.emission_input / scale[:, None],
        emission_covariance=params.emission_covariance / (scale[:, None] * scale[None, :]),
    )


def _precision(covariance):
    factor = jnp.linalg.cholesky(symmetric(covariance))
    eye = jnp.eye(covariance.shape[-1], dtype=covariance.dtype)
    return jax.scipy.linalg.cho_solve((factor, True), eye), 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor)))


def _masked_noise_factor(covariance: Array, mask: Array) -> Array:
    """``[..., D, D]`` Cholesky factors of ``covariance`` with the rows and columns of
    the missing coordinates (``mask [..., D]`` 0) replaced by the identity's: ``R_oo``'s
    factor and an identity block, in place (``small_linalg``: one per step)."""
    both = mask[..., :, None] * mask[..., None, :]
    eye = jnp.eye(covariance.shape[-1], dtype=covariance.dtype)
    kept = both * jnp.broadcast_to(symmetric(covariance), both.shape)
    return small_linalg.cholesky(kept + jnp.broadcast_to(eye, both.shape) * (1.0 - mask)[..., None, :])


def _emission_potentials(p: LGSSMParams, data: LGSSMData, residual: Array):
    """``(h [B, T, L], J [B, T, L, L], c [B, T])`` of the emissions (scaled units)."""
    m = data.observed
    log_2pi = math.log(2 * math.pi)
    if m.shape[-1] == 1:  # whole steps: one factor of R for every observed step
        factor = jnp.linalg.cholesky(symmetric(p.emission_covariance))
        white_h = jax.scipy.linalg.solve_triangular(factor, p.emission, lower=True)  # [D, L]
        white_r = jax.scipy.linalg.solve_triangular(factor, residual.reshape(-1, residual.shape[-1]).T, lower=True)
        white_r = white_r.T.reshape(residual.shape)  # [B, T, D]
        h = m * jnp.einsum("dl,btd->btl", white_h, white_r)
        j = m[..., None] * (white_h.T @ white_h)[None, None]
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor)))
        quad = jnp.sum(white_r * white_r, axis=-1)
        c = m[..., 0] * (-0.5 * (quad + log_det + residual.shape[-1] * log_2pi) - jnp.sum(jnp.log(data.scale)))
        return h, j, c
    # Per step, the observed sub-vector: rows of H and of the residual masked, R_oo.
    factor = _masked_noise_factor(p.emission_covariance, m)  # [B, T, D, D]
    masked_h = m[..., None] * jnp.broadcast_to(p.emission, m.shape + p.emission.shape[-1:])
    rhs = jnp.concatenate([masked_h, (m * residual)[..., None]], axis=-1)
    white = small_linalg.solve_lower(factor, rhs)
    white_h, white_r = white[..., :-1], white[..., -1]  # [B, T, D, L], [B, T, D]
    h = jnp.einsum("btdl,btd->btl", white_h, white_r)
    j = jnp.einsum("btdl,btdk->btlk", white_h, white_h)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
    quad = jnp.sum(white_r * white_r, axis=-1)
    c = -0.5 * (quad + log_det + jnp.sum(m, axis=-1) * log_2pi) - m @ jnp.log(data.scale)
    return h, j, c


def potentials(params: LGSSMParams, data: LGSSMData) -> GaussianChainPotentials:
    p = _scaled(params, data.scale)
    size = p.dynamics.shape[0]
    q_inv, q_logdet = _precision(p.dynamics_covariance)
    p0_inv, p0_logdet = _precision(p.initial_covariance)
    t_max = data.obs.shape[1]
    steps = jnp.arange(t_max, dtype=data.lengths.dtype)
    inside = (steps[None, :] < data.lengths[:, None]).astype(data.obs.dtype)  # [B, T]
    has_next = (steps[None, :] + 1 < data.lengths[:, None]).astype(data.obs.dtype)
    is_first = (steps == 0).astype(data.obs.dtype)[None, :]
    transition = inside * (1.0 - is_first)  # steps with a dynamics term

    residual = data.obs - jnp.einsum("du,btu->btd", p.emission_input, data.inputs)  # [B, T, D]
    drive = jnp.einsum("lu,btu->btl", p.dynamics_input, data.inputs)  # B u_t
    emit_h, emit_j, emit_c = _emission_potentials(p, data, residual)
    ft_q = p.dynamics.T @ q_inv  # [L, L]
    q_drive = jnp.einsum("lk,btk->btl", q_inv, drive)
    next_drive = jnp.concatenate([q_drive[:, 1:], jnp.zeros_like(q_drive[:, :1])], axis=1)
    h = (
        emit_h
        + is_first[..., None] * (p0_inv @ p.initial_mean)[None, None]
        + transition[..., None] * q_drive
        - has_next[..., None] * jnp.einsum("lk,btk->btl", p.dynamics.T, next_drive)
    )
    j = (
        emit_j
        + is_first[..., None, None] * p0_inv[None, None]
        + transition[..., None, None] * q_inv[None, None]
        + has_next[..., None, None] * (ft_q @ p.dynamics)[None, None]
    )
    cross = transition[..., None, None] * (-ft_q)[None, None]
    log_2pi = math.log(2 * math.pi)
    dynamics_terms = -0.5 * (jnp.einsum("btl,btl->bt", drive, q_drive) + q_logdet + size * log_2pi)
    initial = -0.5 * (p.initial_mean @ p0_inv @ p.initial_mean + p0_logdet + size * log_2pi)
    c = emit_c + transition * dynamics_terms + is_first * initial
    return GaussianChainPotentials(h, j, cross, c)


def _solve(gram, moments):
    """``moments @ gram⁻¹`` by a Cholesky factor (``gram`` symmetric PSD, a tiny ridge)."""
    size = gram.shape[-1]
    ridge = 16 * jnp.finfo(gram.dtype).eps * (jnp.trace(gram) / size + 1.0)
    factor = jnp.linalg.cholesky(symmetric(gram) + ridge * jnp.eye(size, dtype=gram.dtype))
    return jax.scipy.linalg.cho_solve((factor, True), moments.T).T


def _completed_sums(p: LGSSMParams, data: LGSSMData, weight: Array, first: Array, second: Array, observed: Array):
    """Expected sums of the observations with their missing coordinates as latents:
    ``(Σ x zᵀ [D, L], Σ x uᵀ [D, U], Σ x xᵀ [D, D])`` over the steps with an
    observation (``observed [B, T]``), weighted, in scaled units.

    Given ``z_t`` and ``x_o``, ``x_t = a_t + C_t z_t + ε_t``: ``a, C`` zero the
    missing part of ``x`` and add ``H_m z + D_m u + G (x_o − H_o z − D_o u)`` with
    ``G = R_mo R_oo⁻¹`` (a Cholesky solve), ``Cov ε = R_mm − G R_om``; ``first`` and
    ``second`` are the weighted ``E[z_t]``, ``E[z_t z_tᵀ]``."""
    m = data.observed
    x, u = data.obs, data.inputs
    if m.shape[-1] == 1:  # whole steps: nothing to impute
        w = weight * observed
        return (
            jnp.einsum("btd,btl->dl", x * observed[..., None], first),
            jnp.einsum("btd,btu->du", w[..., None] * x, u),
            jnp.einsum("btd,bte->de", w[..., None] * x, x),
        )
    r = symmetric(p.emission_covariance)
    size_d = r.shape[0]
    missing = 1.0 - m
    factor = _masked_noise_factor(r, m)
    # Gᵀ = R_oo⁻¹ R_om, embedded (rows: observed coordinates, columns: missing ones).
    observed_to_missing = m[..., :, None] * jnp.broadcast_to(r, factor.shape) * missing[..., None, :]
    gain = jnp.swapaxes(small_linalg.cho_solve(factor, observed_to_missing), -1, -2)
    fill = jnp.broadcast_to(jnp.eye(size_d, dtype=r.dtype), gain.shape) * missing[..., None, :] - gain  # E_m − G  [B, T, D, D]
    coef = jnp.einsum("btde,el->btdl", fill, p.emission)  # C_t [B, T, D, L]
    drive = jnp.einsum("du,btu->btd", p.emission_input, u)
    offset = x + jnp.einsum("btde,bte->btd", gain, x) + jnp.einsum("btde,bte->btd", fill, drive)  # a_t
    noise = symmetric(jnp.einsum("btde,ef->btdf", fill, r) * missing[..., None, :])  # Cov ε_t
    w = weight * observed
    mean_part = jnp.einsum("btdl,btl->btd", coef, first) * observed[..., None]  # w C E[z]
    xz = jnp.einsum("btd,btl->dl", offset * observed[..., None], first) + jnp.einsum(
        "btdl,btlk->dk", coef * observed[..., None, None], second
    )
    xu = jnp.einsum("btd,btu->du", w[..., None] * offset + mean_part, u)
    cross = jnp.einsum("btd,bte->de", offset, mean_part)
    xx = (
        jnp.einsum("btd,bte->de", w[..., None] * offset, offset)
        + cross
        + cross.T
        + jnp.einsum("btdl,btlk,btek->de", coef * observed[..., None, None], second, coef)
        + jnp.einsum("bt,btde->de", w, noise)
    )
    return xz, xu, xx


def m_step(data: LGSSMData, gradient: GaussianChainPotentials, params: LGSSMParams, reg_covar: float) -> LGSSMParams:
    """The closed-form M-step from the gradient of the log-partition (in scaled units;
    ``params``, the current ones, give the missing coordinates' conditional moments)."""
    dtype = data.obs.dtype
    size = gradient.h.shape[-1]
    weight = gradient.c  # [B, T] the sequence's weight on its steps, 0 on padding
    first = gradient.h  # w E[z_t]
    second = -2.0 * symmetric(gradient.J)  # w E[z_t z_tᵀ]
    lagged = -gradient.cross  # w E[z_{t-1} z_tᵀ]
    u = data.inputs
    steps = jnp.arange(data.obs.shape[1], dtype=data.lengths.dtype)
    inside = (steps[None, :] < data.lengths[:, None]).astype(dtype)
    transition = inside * (steps > 0).astype(dtype)[None, :]
    wu = weight[..., None] * u  # [B, T, U]
    eye = jnp.eye(size, dtype=dtype)

    # Initial state.
    n_seq = jnp.sum(weight[:, 0])
    mean0 = jnp.sum(first[:, 0], axis=0) / n_seq
    cov0 = jnp.sum(second[:, 0], axis=0) / n_seq - jnp.outer(mean0, mean0)

    # Dynamics: z_t on [z_{t-1}, u_t] over steps t >= 1.
    tr = transition[..., None]
    prev_first = first[:, :-1]
    prev_second = second[:, :-1]
    trn = transition[:, 1:]
    zz = jnp.einsum("bt,btij->ij", trn, prev_second)
    zu = jnp.einsum("btl,btu->lu", prev_first * trn[..., None], u[:, 1:])
    uu = jnp.einsum("btu,btv->uv", wu[:, 1:] * trn[..., None], u[:, 1:])
    gram = jnp.block([[zz, zu], [zu.T, uu]])
    target_z = jnp.einsum("btij->ji", lagged[:, 1:] * trn[..., None, None])  # Σ E[z_t z_{t-1}ᵀ]
    target_u = jnp.einsum("btl,btu->lu", first[:, 1:] * trn[..., None], u[:, 1:])
    target = jnp.concatenate([target_z, target_u], axis=1)  # [L, L + U]
    coefficients = _solve(gram, target)
    n_trans = jnp.sum(weight * transition)
    current = jnp.einsum("btij->ij", second * tr[..., None])
    dyn_cov = (current - coefficients @ target.T) / jnp.maximum(n_trans, 1.0)
    dynamics, dynamics_input = coefficients[:, :size], coefficients[:, size:]

    # Emissions: x_t on [z_t, u_t] over observed steps (missing coordinates imputed).
    m = jnp.max(data.observed, axis=-1)  # steps with an observation
    xz, xu, xx = _completed_sums(_scaled(params, data.scale), data, weight, first, second, m)
    ezz = jnp.einsum("bt,btij->ij", m, second)
    ezu = jnp.einsum("btl,btu->lu", first * m[..., None], u)
    euu = jnp.einsum("btu,btv->uv", wu * m[..., None], u)
    gram_e = jnp.block([[ezz, ezu], [ezu.T, euu]])
    target_e = jnp.concatenate([xz, xu], axis=1)
    coefficients_e = _solve(gram_e, target_e)
    n_obs = jnp.sum(weight * m)
    emission_cov = (xx - coefficients_e @ target_e.T) / jnp.maximum(n_obs, 1.0)

    scaled = LGSSMParams(
        mean0,
        symmetric(cov0) + reg_covar * eye,
        dynamics,
        dynamics_input,
        symmetric(dyn_cov) + reg_covar * eye,
        coefficients_e[:, :size],
        coefficients_e[:, size:],
        symmetric(emission_cov) + jnp.diag(reg_covar / (data.scale * data.scale)),
    )
    return _scaled(scaled, 1.0 / data.scale)


def init(key: Array, data: LGSSMData, n_states: int) -> LGSSMParams:
    """Random emissions, ``F = 0.9 I``, unit covariances (in scaled units)."""
    dtype = data.obs.dtype
    d, u = data.obs.shape[-1], data.inputs.shape[-1]
    eye = jnp.eye(n_states, dtype=dtype)
    emission = jax.random.normal(key, (d, n_states), dtype) / math.sqrt(n_states)
    scaled = LGSSMParams(
        jnp.zeros((n_states,), dtype),
        eye,
        0.9 * eye,
        jnp.zeros((n_states, u), dtype),
        0.1 * eye,
        emission,
        jnp.zeros((d, u), dtype),
        0.5 * jnp.eye(d, dtype=dtype),
    )
    return _scaled(scaled, 1.0 / data.scale)


def sample(key: Array, params: LGSSMParams, n: int):
    """One sequence of ``n`` steps without inputs: ``(x [n, D], z [n, L])``."""
    dtype = params.dynamics.dtype
    key0, key_w, key_v = jax.random.split(key, 3)
    size, d = params.dynamics.shape[0], params.emission.shape[0]
    z0 = params.initial_mean + jnp.linalg.cholesky(params.initial_covariance) @ jax.random.normal(key0, (size,), dtype)
    noise_w = jax.random.normal(key_w, (n - 1, size), dtype) @ jnp.linalg.cholesky(params.dynamics_covariance).T

    def step(z, w):
        z = params.dynamics @ z + w
        return z, z

    _, rest = jax.lax.scan(step, z0, noise_w)
    z = jnp.concatenate([z0[None], rest])
    noise_v = jax.random.normal(key_v, (n, d), dtype) @ jnp.linalg.cholesky(params.emission_covariance).T
    return z @ params.emission.T + noise_v, z


def n_free_parameters(n_states: int, d: int, u: int) -> int:
    """Free parameters up to the latent basis (an invertible L × L change of basis
    leaves the likelihood unchanged, so ``L²`` are subtracted)."""
    tri = n_states * (n_states + 1) // 2
    total = n_states + tri + n_states * n_states + n_states * u + tri + d * n_states + d * u + d * (d + 1) // 2
    return total - n_states * n_states


def lgssm_model(n_states: int, *, n_inputs: int, reg_covar: float, parallel: bool = False) -> Model:
    """The LGSSM as a ``jaxem.Model`` (options checked by ``jaxem.models.lgssm``)."""

    def check(data, params=None):
        seqs = check_data(data, n_inputs) if not isinstance(data, LGSSMData) else data
        if params is None:
            return
        if not isinstance(params, LGSSMParams):
            raise TypeError(f"params must be LGSSMParams, got {type(params).__name__}")
        d = seqs.obs.shape[-1]
        want = LGSSMParams(
            (n_states,), (n_states, n_states), (n_states, n_states), (n_states, n_inputs),
            (n_states, n_states), (d, n_states), (d, n_inputs), (d, d),
        )  # fmt: skip
        for name, got, expected in zip(LGSSMParams._fields, params, want):
            if tuple(jnp.shape(got)) != expected:
                raise ValueError(f"params.{name} must have shape {expected}, got {tuple(jnp.shape(got))}")
        with validation.on_values():
            for name in ("initial_covariance", "dynamics_covariance", "emission_covariance"):
                value = getattr(params, name)
                if validation.is_concrete(value):
                    a = np.asarray(value, np.float64)
                    if not (np.all(np.isfinite(a)) and np.allclose(a, a.T) and np.all(np.linalg.eigvalsh(a) > 0)):
                        raise ValueError(f"params.{name} must be symmetric positive definite")

    def n_parameters(params):
        return n_free_parameters(n_states, params.emission.shape[0], n_inputs)

    return Model(
        init=lambda key, data: init(key, data, n_states),
        log_joint=potentials,
        latent=gaussian_chain_latent(parallel),
        m_step=lambda data, posterior, params: m_step(data, posterior, params, reg_covar),
        prepare=lambda data: prepare(data, n_inputs),
        check=check,
        sample=None if n_inputs else sample,
        n_parameters=n_parameters,
    )
