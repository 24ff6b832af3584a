"""Small-data workflows, end to end: jaxem (fresh process, empty and filled
persistent cache; same process again) against scikit-learn / hmmlearn.

    PYTHONPATH=. python benchmarks/workflow.py [--workflows bic,grid,hmm] [--repeats 2]

Workflows (float64 for both libraries, so the answers are comparable):

- ``bic``: BIC sweep K = 1..8 on Old Faithful, full covariance, 8 restarts each
  (``jaxem.fit`` + ``jaxem.bic``; scikit-learn ``GaussianMixture(n_init=8).fit`` +
  ``.bic``).
- ``bic_many``: the same sweep as one ``jaxem.fit_models`` call (one compiled
  program for all K; the peer is the same scikit-learn loop).
- ``grid``: ``GridSearchCV`` over ``n_components`` 1..6, 3-fold, on iris
  (``jaxem.sklearn.GaussianMixture(n_init=4)`` vs scikit-learn's).
- ``hmm``: a Gaussian HMM sweep K = 2..4 on the Old Faithful geyser series (in time
  order, 2 features), 4 restarts each (``jaxem.fit`` + ``jaxem.bic`` vs hmmlearn
  ``GaussianHMM(K, "diag", n_iter=100)`` fitted 4 times with different seeds).

Each jaxem figure is a whole child process running the workflow (``python -c``),
minus that process's time to ``import jaxem`` (measured in the same child), so
import time is not counted on either side: "empty" with a fresh
``XDG_CACHE_HOME`` (nothing compiled yet), "filled" with the cache the empty run
left, and "same process" the workflow run a second time inside the filled
child. The peer runs in this process. Minimum over ``--repeats``; ratios are
jaxem / peer (lower is better). ``--compare CHECKOUT`` runs the same children from
another checkout too (before/after in one run, interleaved); ``--cpu`` adds the
children's CPU seconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKFLOWS = {
    "bic": """
x = np.asarray(jaxem.load_dataset("faithful")[0], np.float64)
def run():
    scores = []
    for k in range(1, 9):
        model = jaxem.models.gaussian_mixture(k)
        result = jaxem.fit(model, x, key=0, n_restarts=8)
        scores.append(float(jaxem.bic(model, result.params, x)))
    return scores
""",
    "bic_many": """
x = np.asarray(jaxem.load_dataset("faithful")[0], np.float64)
def run():
    models = [jaxem.models.gaussian_mixture(k) for k in range(1, 9)]
    return list(jaxem.fit_models(models, x, key=0, n_restarts=8).bic)
""",
    "grid": """
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from jaxem.sklearn import GaussianMixture
x = load_iris().data
def run():
    search = GridSearchCV(GaussianMixture(n_init=4, random_state=0), {"n_components": list(range(1, 7))}, cv=3)
    return search.fit(x).best_params_
""",
    "hmm": """
x = np.asarray(jaxem.load_dataset("geyser")[0], np.float64)
def run():
    scores = []
    for k in range(2, 5):
        model = jaxem.models.gaussian_hmm(k)
        result = jaxem.fit(model, x, key=0, n_restarts=4)
        scores.append(float(jaxem.bic(model, result.params, x)))
    return scores
""",
}

CHILD = """
import time, json, sys
start = time.perf_counter()
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import jaxem
imported = time.perf_counter()
{workflow}
cpu = time.process_time(); first = time.perf_counter(); run(); first = time.perf_counter() - first; first_cpu = time.process_time() - cpu
cpu = time.process_time(); again = time.perf_counter(); run(); again = time.perf_counter() - again; again_cpu = time.process_time() - cpu
print("RESULT" + json.dumps(dict(import_s=imported - start, first=first, again=again, first_cpu=first_cpu, again_cpu=again_cpu)))
"""


def child(workflow: str, cache_home: str, root: str = ROOT) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=cache_home, PYTHONPATH=root)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAXEM_COMPILATION_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(workflow=WORKFLOWS[workflow])], env=env, cwd=root,
        capture_output=True, text=True, timeout=1200,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.split("RESULT", 1)[1])


def peer(workflow: str) -> float:
    import numpy as np

    import jaxem

    start = time.perf_counter()
    if workflow in ("bic", "bic_many"):
        from sklearn.mixture import GaussianMixture

        x = np.asarray(jaxem.load_dataset("faithful")[0], np.float64)
        for k in range(1, 9):
            GaussianMixture(k, n_init=8, random_state=0).fit(x).bic(x)
    elif workflow == "grid":
        from sklearn.datasets import load_iris
        from sklearn.mixture import GaussianMixture
        from sklearn.model_selection import GridSearchCV

        x = load_iris().data
        GridSearchCV(GaussianMixture(n_init=4, random_state=0), {"n_components": list(range(1, 7))}, cv=3).fit(x)
    else:
        from hmmlearn.hmm import GaussianHMM

        x = np.asarray(jaxem.load_dataset("geyser")[0], np.float64)
        for k in range(2, 5):
            for seed in range(4):
                GaussianHMM(k, "diag", n_iter=100, random_state=seed).fit(x).score(x)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", default="bic,bic_many,grid,hmm")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compare", default=None, metavar="CHECKOUT",
                        help="also run the jaxem children from this other checkout (e.g. a `git worktree` of main), "
                             "interleaved with this one's, and print its rows too (marked 'other')")
    parser.add_argument("--cpu", action="store_true",
                        help="also print the children's CPU seconds (steadier than wall time on a loaded machine)")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from benchmarks._common import machine

    print(machine())
    roots = [("this", ROOT)] + ([("other", os.path.abspath(args.compare))] if args.compare else [])
    print(f"{'workflow':8} {'checkout':8} {'peer s':>8} {'empty s':>8} {'filled s':>9} {'same s':>8} {'empty/peer':>11} {'filled/peer':>12} {'same/peer':>10} {'load 1-min (start, end)':>24}"
          + (f" {'empty cpu':>10} {'filled cpu':>11} {'same cpu':>9}" if args.cpu else ""))
    for workflow in args.workflows.split(","):
        load_start = os.getloadavg()[0]
        runs = {name: collections.defaultdict(list) for name, _ in roots}
        theirs = []
        for _ in range(args.repeats):
            for name, root in roots:
                with tempfile.TemporaryDirectory() as cache_home:
                    empty = child(workflow, cache_home, root)
                    warm = child(workflow, cache_home, root)
                for field, value in (("empty", empty["first"]), ("filled", warm["first"]), ("same", warm["again"]),
                                     ("empty_cpu", empty["first_cpu"]), ("filled_cpu", warm["first_cpu"]), ("same_cpu", warm["again_cpu"])):
                    runs[name][field].append(value)
            theirs.append(peer(workflow))
        p = min(theirs)
        for name, _ in roots:
            e, f, s = (min(runs[name][field]) for field in ("empty", "filled", "same"))
            row = f"{workflow:8} {name:8} {p:8.2f} {e:8.2f} {f:9.2f} {s:8.3f} {e / p:11.2f} {f / p:12.2f} {s / p:10.3f} {load_start:11.1f} {os.getloadavg()[0]:11.1f}"
            if args.cpu:
                row += " " + " ".join(f"{min(runs[name][field]):{w}.2f}" for field, w in (("empty_cpu", 10), ("filled_cpu", 11), ("same_cpu", 9)))
            print(row, flush=True)


if __name__ == "__main__":
    main()
