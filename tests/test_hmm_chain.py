"""The chain latent: forward recursion and its gradient against brute-force
enumeration of all K^T state paths (float64), Viterbi against brute-force argmax."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from scipy.special import logsumexp

import jaxem
from jaxem._src import chain

chain_log_marginal = jax.jit(chain.chain_log_marginal)
chain_viterbi = jax.jit(chain.chain_viterbi)


def _random_potentials(seed, k, lengths, t_max, per_sequence):
    rng = np.random.default_rng(seed)
    b = len(lengths)
    # Arbitrary (unnormalized) log-potentials: the latent must not assume probabilities.
    init_shape = (b, k) if per_sequence else (k,)
    trans_shape = (b, k, k) if per_sequence else (k, k)
    return jaxem.ChainPotentials(
        jnp.asarray(rng.normal(size=init_shape) * 1.5),
        jnp.asarray(rng.normal(size=trans_shape) * 1.5),
        jnp.asarray(rng.normal(size=(b, t_max, k)) * 3.0),
    )


def _brute_force(potentials, lengths, per_sequence):
    """log Z, initial counts, transition counts, marginals and best path by enumeration."""
    init = np.asarray(potentials.log_initial)
    trans = np.asarray(potentials.log_transition)
    emis = np.asarray(potentials.log_emission)
    b, t_max, k = emis.shape
    log_z = np.zeros(b)
    initial_counts = np.zeros(init.shape)
    transition_counts = np.zeros(trans.shape)
    marginals = np.zeros((b, t_max, k))
    paths = np.full((b, t_max), -1)
    for s, length in enumerate(lengths):
        a = init[s] if per_sequence else init
        m = trans[s] if per_sequence else trans
        all_paths = np.asarray(list(itertools.product(range(k), repeat=length)))
        scores = a[all_paths[:, 0]] + emis[s, np.arange(length)[None, :], all_paths].sum(axis=1)
        if length > 1:
            scores = scores + m[all_paths[:, :-1], all_paths[:, 1:]].sum(axis=1)
        log_z[s] = logsumexp(scores)
        weights = np.exp(scores - log_z[s])
        init_target = initial_counts[s] if per_sequence else initial_counts
        trans_target = transition_counts[s] if per_sequence else transition_counts
        for path, w in zip(all_paths, weights):
            init_target[path[0]] += w
            marginals[s, np.arange(length), path] += w
            for i, j in zip(path[:-1], path[1:]):
                trans_target[i, j] += w
        paths[s, :length] = all_paths[np.argmax(scores)]
    return log_z, initial_counts, transition_counts, marginals, paths


@pytest.mark.parametrize("per_sequence", [False, True])
@pytest.mark.parametrize("k, lengths", [(2, [6, 3, 1, 5]), (3, [4, 6, 2]), (1, [3, 5])])
def test_gradient_of_forward_recursion_equals_enumeration(k, lengths, per_sequence):
    t_max = max(lengths) + 1  # one extra padded step everywhere
    potentials = _random_potentials(7 * k + len(lengths), k, lengths, t_max, per_sequence)
    lengths_arr = jnp.asarray(lengths, jnp.int32)

    def total(p):
        return jnp.sum(chain_log_marginal(p, lengths_arr))

    per_sequence_log_z = chain_log_marginal(potentials, lengths_arr)
    value, grad = jax.jit(jax.value_and_grad(total))(potentials)
    log_z, initial_counts, transition_counts, marginals, paths = _brute_force(potentials, lengths, per_sequence)

    np.testing.assert_allclose(np.asarray(per_sequence_log_z), log_z, rtol=1e-12)
    np.testing.assert_allclose(float(value), log_z.sum(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad.log_initial), initial_counts, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad.log_transition), transition_counts, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad.log_emission), marginals, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(chain_viterbi(potentials, lengths_arr)), paths)


@pytest.mark.parametrize("elementwise", [False, True])
@pytest.mark.parametrize("per_sequence", [False, True])
def test_both_forward_step_forms_equal_enumeration(elementwise, per_sequence):
    """The matrix-product and the elementwise forward step (chosen by batch size in
    ``chain_log_marginal``), each against enumeration, with a structural zero."""
    lengths = [5, 1, 4, 2]
    potentials = _random_potentials(5, 3, lengths, 6, per_sequence)
    potentials = potentials._replace(log_transition=potentials.log_transition.at[..., 1, 0].set(-jnp.inf))
    lengths_arr = jnp.asarray(lengths, jnp.int32)
    forward = functools.partial(chain.forward_log_marginal, elementwise=elementwise)

    def total(p):
        return jnp.sum(chain._vmap_sequences(forward, p, lengths_arr))

    value, grad = jax.jit(jax.value_and_grad(total))(potentials)
    log_z, initial_counts, transition_counts, marginals, _ = _brute_force(potentials, lengths, per_sequence)
    np.testing.assert_allclose(float(value), log_z.sum(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad.log_initial), initial_counts, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad.log_transition), transition_counts, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad.log_emission), marginals, atol=1e-12)


def test_float32_posterior_of_a_long_chain_matches_float64():
    """T = 100 000, K = 8: the float32 log-partition and its gradient (all three
    posterior fields) stay finite and close to float64."""
    rng = np.random.default_rng(2)
    k, t = 8, 100_000
    transitions = rng.dirichlet(np.ones(k) * 0.3, size=k) * 0.5 + np.eye(k) * 0.5
    potentials = jaxem.ChainPotentials(
        jnp.log(jnp.asarray(rng.dirichlet(np.ones(k)))),
        jnp.log(jnp.asarray(transitions)),
        jnp.asarray(rng.normal(size=(1, t, k)) * 4.0 - 50.0),
    )
    lengths = jnp.asarray([t - 3], jnp.int32)  # and three padded steps
    grad = jax.jit(jax.value_and_grad(lambda p: jnp.sum(chain.chain_log_marginal(p, lengths))))
    value64, grad64 = grad(potentials)
    value32, grad32 = grad(jax.tree_util.tree_map(lambda leaf: leaf.astype(jnp.float32), potentials))
    assert value32.dtype == jnp.float32
    np.testing.assert_allclose(float(value32), float(value64), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad32.log_initial), np.asarray(grad64.log_initial), atol=1e-4)
    np.testing.assert_allclose(np.asarray(grad32.log_transition), np.asarray(grad64.log_transition), rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(np.asarray(grad32.log_emission), np.asarray(grad64.log_emission), atol=1e-3)
    # The expected transition counts are a running float32 sum over the steps of the
    # backward pass (as before this recursion was rewritten): ~1e-4 relative here.
    np.testing.assert_allclose(np.asarray(grad32.log_transition).sum(), t - 4, rtol=3e-4)


def test_padding_values_are_never_read():
    lengths = [3, 5]
    potentials = _random_potentials(0, 3, lengths, 6, False)
    poisoned = potentials._replace(
        log_emission=potentials.log_emission.at[0, 3:].set(jnp.nan).at[1, 5:].set(jnp.inf)
    )
    lengths_arr = jnp.asarray(lengths, jnp.int32)
    grad = jax.jit(jax.value_and_grad(lambda p: jnp.sum(chain_log_marginal(p, lengths_arr))))
    clean, dirty = grad(potentials), grad(poisoned)
    for a, b in zip(jax.tree_util.tree_leaves(clean), jax.tree_util.tree_leaves(dirty)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(
        np.asarray(chain_viterbi(potentials, lengths_arr)), np.asarray(chain_viterbi(poisoned, lengths_arr))
    )


def _gaussian_params(k=3):
    return jaxem.models.gaussian_hmm_params(
        initial_probs=np.array([0.5, 0.3, 0.2])[:k] / np.array([0.5, 0.3, 0.2])[:k].sum(),
        transition_matrix=np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])[:k, :k]
        / np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])[:k, :k].sum(axis=1, keepdims=True),
        means=np.array([[0.0, 1.0], [2.0, -1.0], [-2.0, 0.5]])[:k],
        covariances=np.array([[1.0, 0.5], [0.7, 1.2], [2.0, 0.3]])[:k],
        covariance_type="diag",
    )


def test_model_e_step_equals_enumeration_of_the_joint():
    """Through the whole Gaussian HMM: log_joint + e_step versus p(x, z) summed by hand."""
    params = _gaussian_params()
    model = jaxem.models.gaussian_hmm(3)
    rng = np.random.default_rng(3)
    sequences = [rng.normal(size=(length, 2)) * 1.5 for length in (5, 2, 4)]
    data = jaxem.Sequences.from_list(sequences)
    covs = np.asarray(jaxem.models.covariances(params, "diag"))
    log_emission = np.zeros((3, 5, 3))
    for s, x in enumerate(sequences):
        for k in range(3):
            log_emission[s, : len(x), k] = scipy.stats.multivariate_normal.logpdf(x, np.asarray(params.means[k]), covs[k])
    reference = jaxem.ChainPotentials(
        jnp.log(params.initial_probs), jnp.log(params.transition_matrix), jnp.asarray(log_emission)
    )
    log_z, initial_counts, transition_counts, marginals, paths = _brute_force(reference, [5, 2, 4], False)

    log_lik, posterior = jax.jit(jaxem.e_step, static_argnums=0)(model, params, model.prepare(data))
    np.testing.assert_allclose(float(log_lik), log_z.sum(), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(posterior.log_initial), initial_counts, atol=1e-12)
    np.testing.assert_allclose(np.asarray(posterior.log_transition), transition_counts, atol=1e-12)
    np.testing.assert_allclose(np.asarray(jaxem.posterior(model, params, data)), marginals, atol=1e-12)
    np.testing.assert_allclose(np.asarray(jaxem.score_samples(model, params, data)), log_z, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(jaxem.viterbi(model, params, data)), paths)


def test_parallel_log_partition_matches_sequential():
    lengths = jnp.asarray([6, 3, 1, 5], jnp.int32)
    potentials = _random_potentials(11, 3, [6, 3, 1, 5], 7, False)
    # A structural zero in the transitions, as in a left-to-right chain.
    potentials = potentials._replace(log_transition=potentials.log_transition.at[2, 0].set(-jnp.inf))

    def total(p, parallel):
        return jnp.sum(chain.chain_log_marginal(p, lengths, parallel))

    grad = jax.jit(jax.value_and_grad(total), static_argnums=1)
    sequential, parallel = grad(potentials, False), grad(potentials, True)
    for a, b in zip(jax.tree_util.tree_leaves(sequential), jax.tree_util.tree_leaves(parallel)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_parallel_model_matches_sequential_on_a_long_float32_sequence():
    params = _gaussian_params()
    x, _ = jaxem.sample(jaxem.models.gaussian_hmm(3), params, jax.random.key(0), 20_000)
    x = jnp.asarray(x, jnp.float32)
    params32 = jax.tree_util.tree_map(lambda leaf: leaf.astype(jnp.float32), params)
    sequential = jaxem.models.gaussian_hmm(3)
    parallel = jaxem.models.gaussian_hmm(3, parallel=True)
    np.testing.assert_allclose(
        float(jaxem.log_likelihood(parallel, params32, x)), float(jaxem.log_likelihood(sequential, params32, x)), rtol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(jaxem.posterior(parallel, params32, x)), np.asarray(jaxem.posterior(sequential, params32, x)), atol=1e-4
    )
