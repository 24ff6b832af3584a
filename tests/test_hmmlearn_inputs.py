"""Input conventions of the hmmlearn-compatible estimators: a list, an array-like
object (what a pandas DataFrame is to NumPy), a DataFrame (when pandas is installed)
and a concrete ``jax.Array`` fit exactly as the NumPy array does."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxem.hmmlearn import GaussianHMM

LENGTHS = [50, 30]


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.0, 1.0, (40, 2)), rng.normal(4.0, 0.5, (40, 2))])
    model = GaussianHMM(2, "diag", n_iter=3, random_state=0).fit(x, LENGTHS)
    return x, model


class _ArrayLike:
    """Not an array, but has ``__array__`` (as a DataFrame)."""

    def __init__(self, values):
        self.values = values

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.values, dtype=dtype)


def _assert_same_fit(data, reference):
    x, want = reference
    got = GaussianHMM(2, "diag", n_iter=3, random_state=0).fit(data, LENGTHS)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-10, atol=1e-12, err_msg=name)
    assert got.score(data, LENGTHS) == pytest.approx(want.score(x, LENGTHS), rel=1e-12)
    np.testing.assert_array_equal(got.predict(data, LENGTHS), want.predict(x, LENGTHS))


def test_list_and_array_like_fit_as_the_array(reference):
    x, _ = reference
    _assert_same_fit(x.tolist(), reference)
    _assert_same_fit(_ArrayLike(x), reference)


def test_dataframe_fits_as_the_array(reference):
    pd = pytest.importorskip("pandas")
    x, _ = reference
    _assert_same_fit(pd.DataFrame(x, columns=["a", "b"]), reference)


def test_concrete_jax_array_fits_as_the_array(reference):
    x, _ = reference
    _assert_same_fit(jnp.asarray(x), reference)
