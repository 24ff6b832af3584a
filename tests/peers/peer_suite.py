"""What the two peer-suite harnesses share (``run_sklearn_suite.py``,
``run_hmmlearn_suite.py``): write the rewritten test files into a temporary
directory, run pytest on them in a subprocess with this checkout first on the
path, read the outcome of every test from pytest's ``-rA`` summary, print
``N passed, M failed`` with each failure's recorded reason (or ``UNEXPECTED``),
and the command line (``--min-passed N``; other options go to pytest)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

_RESULT = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s+(\S+)", re.M)
_STATUS = {"PASSED": "passed", "XPASS": "passed", "FAILED": "failed", "ERROR": "failed", "XFAIL": "xfailed"}
ROOT = Path(__file__).resolve().parents[2]


def failure_reasons(stdout: str) -> dict[str, str]:
    """``{node: one-line error}`` from pytest's short test summary (``FAILED node - msg``)."""
    reasons = {}
    for line in stdout.splitlines():
        match = re.match(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", line)
        if match:
            reasons[match.group(2)] = (match.group(3) or "")[:160]
    return reasons


def run_pytest(files: dict[str, str], pytest_args: list[str], *, prefix: str, env: Optional[dict] = None) -> dict:
    """Writes ``files`` (``{relative path: source}``) into a temporary directory and runs
    pytest there with ``pytest_args`` (the test paths first); returns ``{"passed", "failed", "xfailed", "skipped":
    [nodes], "reasons": {node: message}}`` (``failed`` includes errors)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for name, source in files.items():
            path = Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
        environment = dict(os.environ, **(env or {}))
        environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
        environment["COLUMNS"] = "400"  # pytest's summary lines are cut to the terminal width
        command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-o", "addopts=",
                   "--rootdir", tmp, *pytest_args]
        done = subprocess.run(command, cwd=tmp, env=environment, capture_output=True, text=True)
    outcomes = {"passed": [], "failed": [], "xfailed": [], "skipped": []}
    for status, node in _RESULT.findall(done.stdout):
        outcomes[_STATUS.get(status, "skipped")].append(node)
    if not any(outcomes.values()):
        raise RuntimeError(f"pytest produced no results:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    outcomes["reasons"] = failure_reasons(done.stdout)
    return outcomes


def report(outcomes: dict, known_reason: Callable[[str], Optional[str]], shown: Callable[[str], str]) -> str:
    """``N passed, M failed (...)`` and a line per failure: ``known`` with its recorded
    reason, or ``UNEXPECTED`` with pytest's message."""
    lines = [f"{len(outcomes['passed'])} passed, {len(outcomes['failed'])} failed "
             f"({len(outcomes['xfailed'])} xfailed as the peer marks them, {len(outcomes['skipped'])} skipped)"]
    for node in outcomes["failed"]:
        why = known_reason(node)
        if why is None:
            lines.append(f"  UNEXPECTED {shown(node)}: {outcomes['reasons'].get(node, '')}")
        else:
            lines.append(f"  known {shown(node)}: {why}")
    return "\n".join(lines)


def main(argv, *, description: str, min_passed: int, run_suite: Callable[[list[str]], dict],
         report: Callable[[dict], str]) -> int:
    """The harnesses' command line: runs the suite (options other than
    ``--min-passed`` go to pytest, e.g. ``-n 2``), prints the report; exit status 1
    when fewer than ``--min-passed`` tests pass."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--min-passed", type=int, default=min_passed)
    args, pytest_args = parser.parse_known_args(argv)
    outcomes = run_suite(pytest_args)
    print(report(outcomes))
    if len(outcomes["passed"]) < args.min_passed:
        print(f"pass count {len(outcomes['passed'])} is below the threshold {args.min_passed}")
        return 1
    return 0
