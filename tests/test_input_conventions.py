"""Input conventions of the functional API: every form of raw data and seed that
NumPy users pass works, converted once at the public boundary.

The four forms of data: a NumPy array, a list (and a pandas DataFrame when pandas
is installed), prepared features (``model.prepare(x)``), and a concrete
``jax.Array`` closed over inside the user's own ``jax.jit`` / ``lax.scan``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxem


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2.0, 1.0, (60, 2)), rng.normal(2.0, 0.5, (40, 2))])
    model = jaxem.models.gaussian_mixture(2, covariance_type="diag")
    params = jaxem.init(model, jax.random.key(0), x)
    return model, x, params


def _results(model, data, params):
    return (
        jaxem.fit(model, data, key=0, max_iter=5).log_likelihood,
        jaxem.em_step(model, params, data)[1],
        jaxem.posterior(model, params, data),
        jaxem.log_likelihood(model, params, data),
        jaxem.predict(model, params, data),
    )


def _assert_same(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-10)


def test_list_is_accepted_wherever_an_array_is(setup):
    model, x, params = setup
    _assert_same(_results(model, x.tolist(), params), _results(model, x, params))
    assert jaxem.init(model, 0, x.tolist()).means.shape == (2, 2)


def test_dataframe_is_accepted_wherever_an_array_is(setup):
    pd = pytest.importorskip("pandas")
    model, x, params = setup
    frame = pd.DataFrame(x, columns=["a", "b"])
    _assert_same(_results(model, frame, params), _results(model, x, params))


def test_array_like_object_is_converted_once_and_passed_on(setup):
    # A non-array object with __array__ (what a DataFrame is to jaxem): before, the
    # check converted it but the original object went on to the compiled function.
    model, x, params = setup

    class ArrayLike:
        def __init__(self, values):
            self.values = values

        def __array__(self, dtype=None, copy=None):
            return np.asarray(self.values, dtype=dtype)

    _assert_same(_results(model, ArrayLike(x), params), _results(model, x, params))


def test_prepared_features_give_the_same_results(setup):
    model, x, params = setup
    _assert_same(_results(model, model.prepare(x), params), _results(model, x, params))


@pytest.mark.parametrize("seed", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_any_integer_seed_is_a_key(setup, seed):
    model, x, _ = setup
    got = jaxem.fit(model, x, key=seed, max_iter=3).log_likelihood
    want = jaxem.fit(model, x, key=jax.random.key(3), max_iter=3).log_likelihood
    assert float(got) == float(want)
    assert jaxem.init(model, seed, x).means.shape == (2, 2)


def test_concrete_data_closed_over_inside_users_jit(setup):
    model, x, params = setup
    data = jnp.asarray(x)  # concrete, closed over (not an argument) below

    @jax.jit
    def in_jit(p):
        return (
            jaxem.fit(model, data, key=0, max_iter=5).log_likelihood,
            jaxem.em_step(model, p, data)[1],
            jaxem.posterior(model, p, data),
            jaxem.log_likelihood(model, p, data),
            jaxem.predict(model, p, data),
        )

    _assert_same(in_jit(params), _results(model, x, params))


def test_concrete_data_closed_over_inside_lax_scan(setup):
    model, x, params = setup
    data = jnp.asarray(x)

    def step(p, _):
        p, log_lik = jaxem.em_step(model, p, data)
        return p, log_lik

    _, scanned = jax.lax.scan(step, params, length=3)
    p, looped = params, []
    for _ in range(3):
        p, log_lik = jaxem.em_step(model, p, x)
        looped.append(log_lik)
    np.testing.assert_allclose(np.asarray(scanned), np.asarray(looped), rtol=1e-10)


def test_checks_still_reject_bad_concrete_data_inside_jit(setup):
    model, x, params = setup
    bad = jnp.asarray(x).at[0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="NaN"):
        jax.jit(lambda p: jaxem.em_step(model, p, bad)[1])(params)


def test_ragged_list_is_still_a_type_error(setup):
    model, _, params = setup
    with pytest.raises(TypeError):
        jaxem.posterior(model, params, [[1.0, 2.0], [3.0]])
