"""Command line: ``python -m jaxem demo`` and ``python -m jaxem fit FILE.csv``."""

from __future__ import annotations

import argparse
import csv
import sys
import time

import numpy as np


def _read_csv(path: str, columns: str | None) -> tuple[np.ndarray, list[str]]:
    """Reads a numeric CSV; a first row that is not numeric is a header.

    A leading column named ``""`` or ``"rownames"`` (R's row numbers) is dropped.
    """
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{path} is empty")

    def numeric(row):
        try:
            [float(cell) for cell in row]
            return True
        except ValueError:
            return False

    header = rows[0] if not numeric(rows[0]) else [f"x{i}" for i in range(len(rows[0]))]
    body = rows[1:] if not numeric(rows[0]) else rows
    if not body:
        raise ValueError(f"{path} has a header but no data rows")
    if any(len(row) != len(header) for row in body):
        raise ValueError(f"{path}: every row must have {len(header)} fields")
    try:
        values = np.asarray([[float(cell) for cell in row] for row in body])
    except ValueError as e:
        raise ValueError(f"{path}: non-numeric value ({e})") from None
    keep = list(range(len(header)))
    if header[0].strip().lower() in ("", "rownames"):
        keep = keep[1:]
    if columns:
        wanted = [c.strip() for c in columns.split(",")]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; columns are {header}")
        keep = [header.index(c) for c in wanted]
    if not keep:
        raise ValueError(f"{path}: no data columns")
    return values[:, keep], [header[i] for i in keep]


def _format_params(params, covariance_type: str, names: list[str]) -> str:
    from jaxem.models import covariances

    covs = np.asarray(covariances(params, covariance_type))
    lines = []
    for k in range(params.means.shape[0]):
        mean = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, np.asarray(params.means[k])))
        sd = ", ".join(f"{v:.3g}" for v in np.sqrt(np.diagonal(covs[k])))
        lines.append(f"  component {k}: weight={float(params.weights[k]):.3f}  mean: {mean}  sd: [{sd}]")
    return "\n".join(lines)


def _in_compute_dtype(x: np.ndarray, jax) -> np.ndarray:
    """The CSV's float64 values in JAX's float dtype (float32 unless x64 is on):
    the command line picks the precision, so jaxem's float64 warning is not for it."""
    return np.asarray(x, jax.dtypes.canonicalize_dtype(np.float64))


def _fit(x, n_components, covariance_type, restarts, seed, max_iter, tol, progress=False, init_params=None):
    import jax

    import jaxem

    x = _in_compute_dtype(x, jax)
    model = jaxem.models.gaussian_mixture(n_components, covariance_type=covariance_type)
    result = jaxem.fit(
        model, x, key=jax.random.key(seed), n_restarts=restarts, max_iter=max_iter, tol=tol,
        progress=progress, init_params=init_params,
    )
    return model, result


class _Checkpoint:
    """A ``fit`` progress callback that shows progress and keeps the last good params.

    After each chunk of EM iterations it remembers the best restart's current
    params, prints a progress line if asked, and writes them to ``path`` (atomically)
    at most every ``interval`` seconds; ``save()`` writes the latest on demand.
    """

    every = 10

    def __init__(self, model, path, show: bool, interval: float = 10.0):
        self.model, self.path, self.show, self.interval = model, path, show, interval
        self.last = None
        self._saved_at = time.monotonic()

    def __call__(self, info) -> None:
        from jaxem._src.progress import print_progress

        self.last = info
        if self.show:
            print_progress(info)
        if self.path and time.monotonic() - self._saved_at > self.interval:
            self.save()

    def save(self) -> bool:
        import jaxem

        if not self.path or self.last is None:
            return False
        jaxem.save(self.path, self.model, self.last.best_params)
        self._saved_at = time.monotonic()
        return True


def _report(model, result, x, covariance_type, names) -> str:
    import jaxem

    finals = np.asarray(result.all_log_likelihoods)
    best = int(result.best_restart)
    lines = [
        _format_params(result.params, covariance_type, names),
        f"  log-likelihood {float(result.log_likelihood):.4f}   BIC {float(jaxem.bic(model, result.params, x)):.2f}",
        "  restarts (final log-likelihood, EM steps, converged):",
    ]
    for r, (ll, it, conv) in enumerate(zip(finals, np.asarray(result.n_iter), np.asarray(result.converged))):
        mark = "  <- best" if r == best else ""
        lines.append(f"    {r:2d}: {ll:11.4f}  {int(it):4d}  {'yes' if conv else 'no'}{mark}")
    return "\n".join(lines)


def _plot(path, x, names, results):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from jaxem.models import covariances

    k_best = max(results, key=lambda k: results[k][2])
    covariance_type, result, _ = results[k_best]
    params = result.params
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax0.scatter(x[:, 0], x[:, 1], s=8, color="0.4")
    covs = np.asarray(covariances(params, covariance_type))
    angles = np.linspace(0, 2 * np.pi, 100)
    circle = np.stack([np.cos(angles), np.sin(angles)])
    for k in range(params.means.shape[0]):
        lower = np.linalg.cholesky(covs[k][:2, :2])
        for radius in (1.0, 2.0):
            ellipse = np.asarray(params.means[k][:2])[:, None] + radius * lower @ circle
            ax0.plot(ellipse[0], ellipse[1], lw=1.5, color=f"C{k}")
    ax0.set_xlabel(names[0])
    ax0.set_ylabel(names[1])
    ax0.set_title(f"Gaussian mixture, K={k_best} (1 and 2 sd ellipses)")
    history = np.asarray(result.history)
    for r in range(history.shape[0]):
        ax1.plot(np.arange(1, history.shape[1] + 1), history[r], lw=1, alpha=0.8)
    ax1.set_xlabel("EM iteration")
    ax1.set_ylabel("log-likelihood")
    ax1.set_title(f"{history.shape[0]} restarts (vmapped, one compiled program)")
    finite = history[np.isfinite(history)]
    if finite.size:
        top = finite.max()
        ax1.set_ylim(top - 0.1 * (top - finite.min()) - 5, top + 2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def demo(args) -> int:
    import jaxem

    x, names = jaxem.load_dataset("faithful")
    print(f"Old Faithful: {x.shape[0]} eruptions, columns {names} (Härdle 1991, R datasets::faithful)")
    results = {}
    for k in (2, 3):
        start = time.perf_counter()
        model, result = _fit(x, k, args.covariance, args.restarts, args.seed, 200, 1e-6, progress=args.progress)
        seconds = time.perf_counter() - start
        bic = float(jaxem.bic(model, result.params, x))
        print(f"\nK={k}, covariance={args.covariance}: {args.restarts} restarts in {seconds:.2f} s (including compilation)")
        print(_report(model, result, x, args.covariance, names))
        results[k] = (args.covariance, result, -bic)
    best_k = max(results, key=lambda k: results[k][2])
    print(f"\nBIC prefers K={best_k}.")
    if _plot(args.out, x, names, results):
        print(f"Wrote {args.out}")
    else:
        print("(install matplotlib for a plot: pip install -e '.[plot]')")
    return 0


def fit_command(args) -> int:
    x, names = _read_csv(args.file, args.columns)
    import jax

    import jaxem

    x = _in_compute_dtype(x, jax)

    model = jaxem.models.gaussian_mixture(args.components, covariance_type=args.covariance)
    init_params, restarts = None, args.restarts
    if args.init:
        model, init_params = jaxem.load(args.init, model=model)
        restarts = 1
    checkpoint = _Checkpoint(model, args.out, show=args.progress)
    try:
        result = jaxem.fit(
            model, x, key=jax.random.key(args.seed), n_restarts=restarts, max_iter=args.max_iter,
            tol=args.tol, init_params=init_params,
            progress=checkpoint if (args.progress or args.out) else False,
        )
    except KeyboardInterrupt:
        if checkpoint.save():
            print(
                f"jaxem: interrupted at iteration {checkpoint.last.iteration}; saved the last good params "
                f"to {args.out} (continue with --init {args.out})",
                file=sys.stderr,
            )
        else:
            print("jaxem: interrupted", file=sys.stderr)
        return 130
    print(f"{args.file}: {x.shape[0]} rows, columns {names}")
    print(_report(model, result, x, args.covariance, names))
    if args.out:
        jaxem.save(args.out, model, result.params)
        print(f"Saved the model and params to {args.out} (read them with jaxem.load)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jaxem", description="EM in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    covariance = dict(choices=["full", "tied", "diag", "spherical"], default="full")
    d = sub.add_parser("demo", help="fit Gaussian mixtures to Old Faithful (shipped data)")
    d.add_argument("--covariance", **covariance)
    d.add_argument("--restarts", type=int, default=16)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="jaxem_demo.png", help="PNG to write (needs matplotlib)")
    d.add_argument("--no-progress", dest="progress", action="store_false", help="do not print progress to stderr")
    f = sub.add_parser("fit", help="fit a Gaussian mixture to a numeric CSV file")
    f.add_argument("file")
    f.add_argument("--components", "-k", type=int, required=True)
    f.add_argument("--covariance", **covariance)
    f.add_argument("--restarts", type=int, default=8)
    f.add_argument("--max-iter", type=int, default=200)
    f.add_argument("--tol", type=float, default=1e-4)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--columns", help="comma-separated column names to use (default: all)")
    f.add_argument("--out", help="save the model and params to this .npz file (jaxem.save); also "
                   "checkpointed during the fit and on Ctrl-C")
    f.add_argument("--init", help="start from the params in this file (written by --out): resume a fit")
    f.add_argument("--no-progress", dest="progress", action="store_false", help="do not print progress to stderr")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return demo(args) if args.command == "demo" else fit_command(args)
    except (OSError, ValueError, TypeError) as e:
        print(f"jaxem: error: {e}", file=sys.stderr)
        return 2
