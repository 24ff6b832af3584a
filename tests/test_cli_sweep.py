"""``jaxem fit --components 1..3``: every K in one ``jaxem.fit_models`` call, K
picked by BIC. Reference: ``jaxem.fit`` + ``jaxem.bic`` per K in float64 (the
printed BIC to its two decimals, the same K); run in-process (``cli.main``)."""

import numpy as np
import pytest

import jaxem
from jaxem._src import cli


@pytest.fixture(scope="module")
def faithful_csv(tmp_path_factory):
    x, names = jaxem.load_dataset("faithful")
    path = tmp_path_factory.mktemp("sweep") / "faithful.csv"
    np.savetxt(path, np.asarray(x, np.float64), delimiter=",", header=",".join(names), comments="")
    return path, np.asarray(x, np.float64)


def _table(out: str) -> dict:
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            rows[int(parts[0])] = float(parts[1])
    return rows


@pytest.mark.slow
def test_components_range_picks_k_by_bic(faithful_csv, capsys, tmp_path):
    path, x = faithful_csv
    out = tmp_path / "best.npz"
    status = cli.main(["fit", str(path), "--components", "1..3", "--restarts", "3", "--max-iter", "60",
                       "--tol", "1e-8", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    table = _table(printed)
    assert sorted(table) == [1, 2, 3]
    separate = {}
    for k in (1, 2, 3):
        model = jaxem.models.gaussian_mixture(k)
        result = jaxem.fit(model, x, key=0, n_restarts=3, max_iter=60, tol=1e-8)
        separate[k] = float(jaxem.bic(model, result.params, x))
        assert abs(table[k] - separate[k]) <= 0.006  # printed with two decimals
    best = min(separate, key=separate.get)
    assert f"BIC prefers K={best}:" in printed
    model, params = jaxem.load(str(out))
    assert params.means.shape[0] == best


def test_components_list_and_errors(faithful_csv, capsys):
    path, _ = faithful_csv
    assert cli._components("1,2,4") == (1, 2, 4) and cli._components("3") == (3,) and cli._components("2..4") == (2, 3, 4)
    for bad in ("3..1", "0,1", "2,2", "a..b", ""):
        with pytest.raises(Exception, match="must be"):
            cli._components(bad)
    status = cli.main(["fit", str(path), "--components", "1..2", "--init", "nothing.npz", "--no-progress"])
    assert status == 2 and "--init starts one model" in capsys.readouterr().err
