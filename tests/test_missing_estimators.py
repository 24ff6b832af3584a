"""``missing=`` passed through the scikit-learn estimator and the command line:
the estimator's fit equals ``jaxem.fit`` of ``gaussian_mixture(missing="marginalize")``
with the same seed; NaN is still rejected by default; ``jaxem fit --family poisson
--missing marginalize`` fits a CSV with empty cells."""

import numpy as np
import pytest

import jaxem
from jaxem._src.cli import main

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402

from jaxem.sklearn import GaussianMixture  # noqa: E402


def _faithful_with_gaps():
    x, _ = jaxem.load_dataset("faithful")
    x = np.array(x, dtype=np.float64)
    x[np.random.default_rng(0).uniform(size=x.shape) < 0.15] = np.nan
    return x


def test_gaussian_mixture_estimator_passes_missing_through():
    x = _faithful_with_gaps()
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(2).fit(x)
    estimator = GaussianMixture(2, covariance_type="diag", n_init=2, init_params="k-means++", random_state=0, missing="marginalize")
    assert clone(estimator).get_params()["missing"] == "marginalize"
    assert estimator.__sklearn_tags__().input_tags.allow_nan and not GaussianMixture(2).__sklearn_tags__().input_tags.allow_nan
    estimator.fit(x)
    model = jaxem.models.gaussian_mixture(2, covariance_type="diag", init="kmeans++", missing="marginalize")
    result = jaxem.fit(model, x, key=0, n_restarts=2, tol=1e-3)
    np.testing.assert_allclose(estimator.means_, np.asarray(result.params.means), rtol=1e-6)
    np.testing.assert_allclose(estimator.score(x), float(jaxem.log_likelihood(model, result.params, x)) / len(x), rtol=1e-9)
    resp = estimator.predict_proba(x)
    np.testing.assert_allclose(resp, np.asarray(jaxem.posterior(model, result.params, x)), atol=1e-8)
    assert np.all(np.isfinite(resp))


def test_cli_fit_poisson_with_empty_cells(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.poisson([1.0, 6.0], size=(60, 2)), rng.poisson([7.0, 1.0], size=(60, 2))]).astype(float)
    x[rng.uniform(size=x.shape) < 0.1] = np.nan
    path = tmp_path / "counts.csv"
    path.write_text("a,b\n" + "".join(",".join("" if np.isnan(v) else f"{int(v)}" for v in row) + "\n" for row in x))
    status = main(["fit", str(path), "-k", "2", "--family", "poisson", "--no-progress", "--restarts", "2"])
    _, err = capsys.readouterr()
    assert status == 2 and "--missing marginalize" in err
    labels = tmp_path / "labels.csv"
    status = main(["fit", str(path), "-k", "2", "--family", "poisson", "--missing", "marginalize", "--restarts", "2",
                   "--no-progress", "--labels", str(labels)])
    out, err = capsys.readouterr()
    assert status == 0, err
    got = np.loadtxt(labels, skiprows=1, dtype=int)
    assert len(set(got[:60])) == 1 or np.mean(got[:60] == got[0]) > 0.9
    assert np.mean(got[60:] != got[0]) > 0.9


def _doc_blocks():
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "missing.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_doc_blocks())))
def test_docs_page_blocks_run_as_pasted(index, tmp_path, monkeypatch):
    import jax

    monkeypatch.chdir(tmp_path)
    with jax.enable_x64(False), jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        exec(compile(_doc_blocks()[index], "<docs/missing.md>", "exec"), {"__name__": "__main__"})
