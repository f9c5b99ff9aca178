"""Start-up of the billctl command line (issue 11): ``python -m benchmarks startup [--runs N] [--source DIR]``.

Each command runs as a fresh process several times (CPU time, user + system, by default), interleaved with the baseline
``python -c "import typer, rich"`` (so both see the same machine load), and the report gives each
command's median wall time as a ratio of the baseline's median. Targets: `billctl --help`, every
`billctl GROUP --help` and a shell-completion request at most 2x; `billctl tenants list` on a small
SQLite file at most 5x. ``--source DIR`` runs the billctl found in DIR (e.g. a checkout of main) for
a before/after comparison.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report

TARGETS = {"help": 2.0, "completion": 2.0, "tenants list": 5.0}
# the console script's code, with the program name it has when installed (completion depends on it)
ENTRY = "import sys; sys.argv[0] = 'billctl'; from billctl.cli.app import main; main()"


def _env(source: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLCTL_", "_BILLCTL", "COMP_"))}
    env.update({"NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb"})
    if source:
        env["PYTHONPATH"] = source
    env.update(extra or {})
    return env


def _time(argv: list[str], env: dict[str, str], cwd: str) -> float:
    """The process's CPU time (user + system): on a shared machine wall time mostly measures the
    neighbours, CPU time what billctl itself spends (BILLCTL_BENCH_WALL=1 for wall time)."""
    import resource

    wall = os.environ.get("BILLCTL_BENCH_WALL") == "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    seconds = time.perf_counter() - start if wall else cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[3:]) or argv}: exit {done.returncode}\n{done.stderr}")
    return seconds


def cases(source: str | None, database: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    py = [sys.executable, "-c", ENTRY]
    names = ["config", "db", "tenants", "plans", "discounts", "usage", "invoices", "report", "stripe", "audit"]
    if source is None:  # groups newer than a --source tree may be
        names.append("credits")
    runs: dict[str, tuple[list[str], dict[str, str]]] = {"billctl --help": ([*py, "--help"], _env(source))}
    for name in names:
        runs[f"billctl {name} --help"] = ([*py, name, "--help"], _env(source))
    runs["completion (billctl inv<TAB>)"] = (
        py,
        _env(source, {"_BILLCTL_COMPLETE": "complete_bash", "COMP_WORDS": "billctl inv", "COMP_CWORD": "1"}),
    )
    runs["completion (billctl invoices ex<TAB>)"] = (
        py,
        _env(source, {"_BILLCTL_COMPLETE": "complete_bash", "COMP_WORDS": "billctl invoices ex", "COMP_CWORD": "2"}),
    )
    runs["billctl tenants list (SQLite)"] = (
        [*py, "tenants", "list"],
        _env(source, {"BILLCTL_DATABASE_URL": f"sqlite:///{database}"}),
    )
    return runs


def _seed(source: str | None, directory: str) -> str:
    database = str(Path(directory) / "bench.db")
    env = _env(source, {"BILLCTL_DATABASE_URL": f"sqlite:///{database}"})
    py = [sys.executable, "-c", ENTRY]
    subprocess.run([*py, "db", "upgrade"], env=env, cwd=directory, check=True, capture_output=True)
    for i in range(20):
        subprocess.run([*py, "tenants", "create", f"t{i:02d}", "--name", f"Tenant {i}"], env=env, cwd=directory,
                       check=True, capture_output=True)  # fmt: skip
    return database


def main(argv: list[str]) -> None:
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 7
    source = argv[argv.index("--source") + 1] if "--source" in argv else None
    with tempfile.TemporaryDirectory() as directory:
        database = _seed(source, directory)
        todo = cases(source, database)
        baseline_argv = [sys.executable, "-c", "import typer, rich"]
        times: dict[str, list[float]] = {name: [] for name in todo}
        base: list[float] = []
        for _ in range(runs):  # interleaved: each round times the baseline, then every command once
            for name, (command, env) in todo.items():
                base.append(_time(baseline_argv, _env(None), directory))
                times[name].append(_time(command, env, directory))
    baseline = statistics.median(base)
    rows = [("baseline: python -c 'import typer, rich'", f"{baseline * 1000:.0f} ms (median of {len(base)})")]
    failed = []
    for name, values in times.items():
        ratio = statistics.median(values) / baseline
        target = TARGETS["tenants list"] if "tenants list" in name else TARGETS["help"]
        ok = ratio <= target
        failed += [] if ok else [name]
        rows.append((name, f"{ratio:4.2f}x  ({statistics.median(values) * 1000:.0f} ms; target <= {target:g}x)"
                     + ("" if ok else "  OVER")))  # fmt: skip
    report(f"start-up, median of {runs} runs, as a ratio of the baseline" + (f" ({source})" if source else ""), rows)
    if failed:
        print(f"  over target: {', '.join(failed)}")


if __name__ == "__main__":
    main(sys.argv[1:])
