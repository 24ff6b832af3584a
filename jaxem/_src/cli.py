"""Command line: ``jaxem demo``, ``jaxem fit FILE.csv``, ``jaxem hmm FILE.csv``
(also ``python -m jaxem ...``).

Every error, from a bad option to a damaged ``--init`` file or Ctrl-C, is one
line on stderr and a non-zero status (2 for errors, 130 for an interrupt); the
output paths (``--out``, ``--labels``, ``--posterior``) are checked before the fit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

from jaxem._src.csv_input import read_table

MAX_SEED = 2**63 - 1


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
        from jaxem._src.progress import ProgressDisplay

        self.model, self.path, self.interval = model, path, interval
        self.display = ProgressDisplay(self.every) if show else None
        self.last = None
        self._saved_at = time.monotonic()

    def compiling(self) -> None:
        if self.display is not None:
            self.display.compiling()

    def __call__(self, info) -> None:
        self.last = info
        if self.display is not None:
            self.display(info)
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
    described = (
        _generic_params(result.params, names) if covariance_type is None
        else _format_params(result.params, covariance_type, names)
    )
    lines = [
        described,
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


def _generic_params(params, names: list[str]) -> str:
    """Every field of any params NamedTuple, one per line (for families without
    a dedicated layout)."""
    lines = []
    for field, value in zip(params._fields, params):
        text = np.array2string(np.asarray(value), precision=4, suppress_small=True, max_line_width=100)
        lines.append(f"  {field}:\n" + "\n".join("    " + line for line in text.splitlines()))
    return "\n".join(lines)


def _check_output(path, option: str) -> None:
    """``ValueError`` naming ``option`` when ``path`` cannot be written: checked
    before the fit, by creating (and removing) a file beside it."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise ValueError(f"{option} {path} is a directory")
    if not os.path.isdir(directory):
        raise ValueError(f"{option} {path}: no directory {directory}")
    if os.path.exists(path) and not os.stat(path).st_mode & 0o222:
        raise ValueError(f"{option} {path} is read-only")
    probe = os.path.join(directory, f".{os.path.basename(path)}.jaxem-probe")
    try:
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{option} {path} cannot be written: {e.strerror}") from None


def _check_outputs(args) -> None:
    """``--out``, ``--labels`` and ``--posterior`` checked writable before the fit."""
    for path, option in ((args.out, "--out"), (args.labels, "--labels"), (args.posterior, "--posterior")):
        _check_output(path, option)


def _write_columns(path, header: list[str], columns: list[np.ndarray]) -> None:
    table = np.column_stack([np.asarray(c) for c in columns])
    kind = "%d" if np.issubdtype(table.dtype, np.integer) else "%.6g"
    np.savetxt(path, table, delimiter=",", header=",".join(header), comments="", fmt=kind)


def _read_input(args, keep=()):
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    table = read_table(args.file, columns, header=args.header, delimiter=args.delimiter, keep=keep)
    if np.isnan(table.values).any() and args.missing != "marginalize":
        rows = int(np.isnan(table.values).any(axis=1).sum())
        raise ValueError(
            f"{args.file}: {rows} row(s) have empty or NA cells; pass --missing marginalize to fit them "
            "(Gaussian mixtures), or choose complete columns with --columns"
        )
    return table


def _load_init(args, model):
    import jaxem

    if not args.init:
        return model, None, args.restarts
    try:
        model, params = jaxem.load(args.init, model=model)
    except FileNotFoundError:
        raise ValueError(f"--init {args.init}: no such file") from None
    except ValueError as e:
        raise ValueError(f"--init: {e}") from None
    return model, params, 1


def _run_fit(args, model, data, init_params, restarts, n_rows: int):
    """The fit with progress and checkpointing; ``None`` when interrupted (after
    saving the last good params if ``--out`` was given)."""
    import jax

    import jaxem

    checkpoint = _Checkpoint(model, args.out, show=args.progress)
    try:
        return jaxem.fit(
            model, data, key=jax.random.key(args.seed), n_restarts=restarts, max_iter=args.max_iter,
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
        return None


def fit_command(args) -> int:
    _check_outputs(args)
    table = _read_input(args)
    import jax

    import jaxem

    x = _in_compute_dtype(table.values, jax)
    if args.family == "gaussian":
        model = jaxem.models.gaussian_mixture(args.components, covariance_type=args.covariance, missing=args.missing)
    elif args.missing == "marginalize":
        raise ValueError("--missing marginalize is offered for --family gaussian only")
    elif args.family == "poisson":
        model = jaxem.models.poisson_mixture(args.components)
    else:
        model = jaxem.models.bernoulli_mixture(args.components)
    model, init_params, restarts = _load_init(args, model)
    result = _run_fit(args, model, x, init_params, restarts, x.shape[0])
    if result is None:
        return 130
    print(f"{args.file}: {x.shape[0]} rows, columns {table.names}")
    if args.family == "gaussian":
        print(_report(model, result, x, args.covariance, table.names))
    else:
        print(_report(model, result, x, None, table.names))
    _write_outputs(args, model, result.params, x)
    return 0


def _write_outputs(args, model, params, data, rows=None) -> None:
    """``--out`` (model and params), ``--labels`` (most probable component or
    Viterbi state per row) and ``--posterior`` (per-row probabilities)."""
    import jaxem

    if args.out:
        jaxem.save(args.out, model, params)
        print(f"Saved the model and params to {args.out} (read them with jaxem.load)")
    if args.labels:
        labels = jaxem.predict(model, params, data) if rows is None else jaxem.viterbi(model, params, data)
        labels = np.asarray(labels) if rows is None else np.asarray(labels)[rows]
        _write_columns(args.labels, ["label"], [labels.astype(np.int64)])
        print(f"Wrote {labels.shape[0]} labels to {args.labels}")
    if args.posterior:
        probs = np.asarray(jaxem.posterior(model, params, data))
        probs = probs if rows is None else probs[rows]
        _write_columns(args.posterior, [f"p{k}" for k in range(probs.shape[-1])], list(probs.T))
        print(f"Wrote posterior probabilities of {probs.shape[0]} rows to {args.posterior}")


def _sequence_lengths(args, table, n_rows: int) -> np.ndarray:
    """Lengths of the sequences, in row order: runs of equal ``--id-column``
    values, the integers of ``--lengths FILE``, or one sequence."""
    if args.id_column:
        ids = table.extra[args.id_column]
        change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
        bounds = np.concatenate([[0], change, [n_rows]])
        if len(set(ids[bounds[:-1]].tolist())) != len(bounds) - 1:
            raise ValueError(f"--id-column {args.id_column}: each sequence's rows must be contiguous")
        return np.diff(bounds)
    if args.lengths:
        try:
            lengths = np.loadtxt(args.lengths, dtype=np.int64, ndmin=1, delimiter=",")
        except (OSError, ValueError) as e:
            raise ValueError(f"--lengths {args.lengths}: {e}") from None
        if lengths.ndim != 1 or np.any(lengths < 1) or int(lengths.sum()) != n_rows:
            raise ValueError(f"--lengths {args.lengths}: positive integers summing to the {n_rows} data rows")
        return lengths
    return np.asarray([n_rows])


def hmm_command(args) -> int:
    _check_outputs(args)
    if args.id_column and args.lengths:
        raise ValueError("give --id-column or --lengths, not both")
    table = _read_input(args, keep=[args.id_column] if args.id_column else [])
    import jax

    import jaxem

    x = _in_compute_dtype(table.values, jax)
    lengths = _sequence_lengths(args, table, x.shape[0])
    if args.emission == "gaussian":
        model = jaxem.models.gaussian_hmm(args.states, covariance_type=args.covariance)
        obs = x
    elif args.emission == "poisson":
        model, obs = jaxem.models.poisson_hmm(args.states), x
    else:
        if x.shape[1] != 1:
            raise ValueError("--emission categorical needs one column of symbols 0..S-1 (choose it with --columns)")
        model, obs = jaxem.models.categorical_hmm(args.states), x[:, 0].astype(np.int32)
    seqs = jaxem.Sequences.from_concatenated(obs, lengths)
    model, init_params, restarts = _load_init(args, model)
    result = _run_fit(args, model, seqs, init_params, restarts, x.shape[0])
    if result is None:
        return 130
    print(f"{args.file}: {x.shape[0]} rows in {lengths.size} sequence(s), columns {table.names}")
    lines = [
        _generic_params(result.params, table.names),
        f"  log-likelihood {float(result.log_likelihood):.4f}   BIC {float(jaxem.bic(model, result.params, seqs)):.2f}",
        f"  restarts converged: {int(np.sum(result.converged))}/{np.size(result.converged)}",
    ]
    print("\n".join(lines))
    mask = np.arange(seqs.obs.shape[1])[None, :] < np.asarray(seqs.lengths)[:, None]
    _write_outputs(args, model, result.params, seqs, rows=mask)
    return 0


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**63 - 1, got {text}")
    return seed


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text}")
    return value


def _add_common(parser, restarts: int) -> None:
    """Options of every fitting command: input reading, fitting, outputs."""
    parser.add_argument("file", help="CSV file (a header row is detected; delimiter sniffed among , ; tab |)")
    parser.add_argument("--columns", help="comma-separated names (or 0-based indices) of the columns to use; "
                        "default: every column but a leading row-name column")
    parser.add_argument("--header", choices=["auto", "yes", "no"], default="auto",
                        help="whether the first row is a header (default: auto)")
    parser.add_argument("--delimiter", help="field separator (default: sniffed)")
    parser.add_argument("--restarts", type=_positive, default=restarts,
                        help=f"random restarts, run together (default: {restarts})")
    parser.add_argument("--max-iter", type=_positive, default=200, help="EM iterations per restart (default: 200)")
    parser.add_argument("--tol", type=_nonnegative_float, default=1e-4,
                        help="stop when the log-likelihood per row changes less than this (default: 1e-4)")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed, 0 <= seed < 2**63 (default: 0)")
    parser.add_argument("--out", help="save the model and params to this .npz file (jaxem.save); also "
                        "checkpointed during the fit and on Ctrl-C")
    parser.add_argument("--init", help="start from the params in this file (written by --out): resume a fit")
    parser.add_argument("--labels", help="write the most probable component (state) of each row to this CSV")
    parser.add_argument("--posterior", help="write each row's posterior probabilities to this CSV")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="do not print progress to stderr")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxem", description="Fit latent-variable models by EM in JAX.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,fit,hmm}")
    covariance = dict(choices=["full", "tied", "diag", "spherical"], default="full",
                      help="covariance structure of the Gaussian components (default: full)")
    d = sub.add_parser("demo", help="fit Gaussian mixtures to Old Faithful (shipped data)",
                       description="Fit 2- and 3-component Gaussian mixtures to Old Faithful and pick K by BIC.")
    d.add_argument("--covariance", **covariance)
    d.add_argument("--restarts", type=_positive, default=16, help="random restarts per K (default: 16)")
    d.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    d.add_argument("--out", default="jaxem_demo.png", help="PNG to write (needs matplotlib; default: jaxem_demo.png)")
    d.add_argument("--no-progress", dest="progress", action="store_false", help="do not print progress to stderr")
    f = sub.add_parser("fit", help="fit a mixture to a numeric CSV file",
                       description="Fit a mixture model to the numeric columns of a CSV file.")
    _add_common(f, restarts=8)
    f.add_argument("--components", "-k", type=_positive, required=True, help="number of mixture components")
    f.add_argument("--family", choices=["gaussian", "poisson", "bernoulli"], default="gaussian",
                   help="component family (default: gaussian)")
    f.add_argument("--covariance", **covariance)
    f.add_argument("--missing", choices=["reject", "marginalize"], default="reject",
                   help="rows with empty or NA cells: refuse them (default) or fit their observed cells "
                   "(Gaussian mixtures)")
    h = sub.add_parser("hmm", help="fit a hidden Markov model to sequences in a CSV file",
                       description="Fit a hidden Markov model; rows are time steps, in order.")
    _add_common(h, restarts=8)
    h.add_argument("--states", "-k", type=_positive, required=True, help="number of hidden states")
    h.add_argument("--emission", choices=["gaussian", "poisson", "categorical"], default="gaussian",
                   help="emission family (default: gaussian; categorical: one column of symbols 0..S-1)")
    h.add_argument("--covariance", **covariance)
    h.add_argument("--id-column", help="column whose runs of equal values mark the sequences")
    h.add_argument("--lengths", help="file of sequence lengths (integers summing to the number of rows)")
    h.set_defaults(missing="reject")
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"jaxem: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None) -> int:
    """Runs the command line; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        commands = {"demo": demo, "fit": fit_command, "hmm": hmm_command}
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return commands[args.command](args)
    except KeyboardInterrupt:
        print("jaxem: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, TypeError, OverflowError) as e:
        print(f"jaxem: error: {e}", file=sys.stderr)
        return 2


def run() -> None:
    """The ``jaxem`` console script."""
    sys.exit(main())
