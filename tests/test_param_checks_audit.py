"""Issue 12, parameter checks for every family: bad params given to
``log_likelihood``, ``sample``, ``viterbi`` (HMMs) and ``fit(init_params=...)``
(a batch whose bad restart is not restart 0) raise a ``ValueError`` naming the
field: a NaN, a negative rate/variance, probabilities summing to 3, a wrong
number of components, a non-symmetric covariance."""

import jax
import numpy as np
import pytest

import jaxem
from jaxem import models

_RNG = np.random.default_rng(0)
_X = {
    "gaussian": _RNG.normal(size=(30, 2)),
    "binary": (_RNG.random((30, 3)) < 0.5).astype(float),
    "counts": _RNG.multinomial(5, [0.2, 0.3, 0.5], size=30).astype(float),
    "poisson": _RNG.poisson(3.0, size=(30, 2)).astype(float),
    "symbols": _RNG.integers(0, 3, size=30),
}
CASES = {
    "gaussian_mixture(full)": (lambda: models.gaussian_mixture(2), "gaussian"),
    "gaussian_mixture(diag)": (lambda: models.gaussian_mixture(2, covariance_type="diag"), "gaussian"),
    "bernoulli_mixture": (lambda: models.bernoulli_mixture(2), "binary"),
    "categorical_mixture": (lambda: models.categorical_mixture(2), "counts"),
    "poisson_mixture": (lambda: models.poisson_mixture(2), "poisson"),
    "gaussian_hmm": (lambda: models.gaussian_hmm(2), "gaussian"),
    "categorical_hmm": (lambda: models.categorical_hmm(2, n_symbols=3), "symbols"),
    "poisson_hmm": (lambda: models.poisson_hmm(2), "poisson"),
    "bernoulli_hmm": (lambda: models.bernoulli_hmm(2), "binary"),
    "multinomial_hmm": (lambda: models.multinomial_hmm(2, n_trials=5), "counts"),
}
SIMPLEX = ("weights", "initial_probs", "transition_matrix", "emission_probs")
POSITIVE = ("rates",)


def _corrupt(value, kind):
    v = np.array(value, dtype=np.float64)
    if kind == "nan":
        v.flat[0] = np.nan
    elif kind == "shape":  # one component (state) too many
        v = np.concatenate([v, v[:1]], axis=0)
    elif kind == "negative":
        v.flat[0] = -abs(v.flat[0]) - 0.5
    elif kind == "sums to 3":
        v = 3.0 * v
    return v


def _corruptions(name, params):
    for field in params._fields:
        value = np.asarray(getattr(params, field))
        kinds = ["nan", "shape"]
        if field in SIMPLEX or (field == "probs" and "categorical" in name):
            kinds.append("sums to 3")
        if field in POSITIVE:
            kinds.append("negative")
        for kind in kinds:
            yield field, kind, params._replace(**{field: _corrupt(value, kind)})


def _entry_points(model, data, bad, good, is_hmm):
    calls = {
        "log_likelihood": lambda: jaxem.log_likelihood(model, bad, data),
        "sample": lambda: jaxem.sample(model, bad, 0, 5),
    }
    if is_hmm:
        calls["viterbi"] = lambda: jaxem.viterbi(model, bad, data)
    if all(np.shape(a) == np.shape(b) for a, b in zip(good, bad)):
        # restart 0 is good, restart 1 bad: every restart is checked
        batch = jax.tree_util.tree_map(lambda a, b: np.stack([np.asarray(a, np.float64), np.asarray(b, np.float64)]), good, bad)
        calls["fit(init_params)"] = lambda: jaxem.fit(model, data, key=0, n_restarts=2, init_params=batch, max_iter=2)
    return calls


@pytest.mark.parametrize("name", list(CASES))
def test_bad_params_raise_a_value_error_naming_the_field(name):
    factory, kind = CASES[name]
    model, data = factory(), _X[CASES[name][1]]
    good = jaxem.init(model, 0, data)
    is_hmm = "hmm" in name
    failures = []
    for field, corruption, bad in _corruptions(name, good):
        for entry, call in _entry_points(model, data, bad, good, is_hmm).items():
            try:
                call()
                failures.append(f"{field} {corruption} {entry}: no error")
            except ValueError as error:
                # a wrong number of components may be reported on the whole params
                message = str(error)
                if field not in message and not (corruption == "shape" and ("n_components" in message or "n_states" in message)):
                    failures.append(f"{field} {corruption} {entry}: {error}")
    assert not failures, "\n".join(failures)


ASYMMETRIC = "asymmetric"


@pytest.mark.parametrize("build", ["mixture", "hmm"])
@pytest.mark.parametrize("kind", ["negative", "nan", ASYMMETRIC])
def test_gaussian_covariances_negative_nan_or_asymmetric_are_refused(build, kind):
    # Gaussian params hold precision factors; covariances enter through the constructors
    covariances, covariance_type = {
        "negative": (np.array([[1.0, -1.0], [1.0, 2.0]]), "diag"),
        "nan": (np.array([1.0, np.nan]), "spherical"),
        "asymmetric": (np.array([[[1.0, 0.3], [0.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]]]), "full"),
    }[kind]
    means = [[0.0, 0.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="covariances"):
        if build == "mixture":
            models.gaussian_mixture_params([0.5, 0.5], means, covariances, covariance_type)
        else:
            models.gaussian_hmm_params([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], means, covariances, covariance_type)


def test_additive_m_step_accepts_a_two_argument_statistics():
    # jaxem.AdditiveMStep's statistics gained an optional params argument; a user's
    # statistics(data, posterior) written before it must keep working
    from jaxem import AdditiveMStep

    two = AdditiveMStep(lambda d, p: d * p, lambda s, d, params: s, None, ("x",), None)
    three = AdditiveMStep(lambda d, p, params=None: d * p + (0 if params is None else params), lambda s, d, params: s, None, ("x",), None)
    assert two(2.0, 3.0, 100.0) == 6.0
    assert three(2.0, 3.0, 100.0) == 106.0
