"""Execute the chapter notebooks with papermill.

    python scripts/run_chapters.py                      # every chapter, published
    python scripts/run_chapters.py --params small 03_ncf_regression
    python scripts/run_chapters.py --params small --prepare-only --out DIR
    python scripts/run_chapters.py --jobs 1             # one chapter at a time

Up to ``--jobs`` chapters run at once, each in its own kernel with its share
of the cores (one thread each for two chapters on two cores); a chapter waits
for the chapters its notebook metadata lists under ``recsys.needs`` (the ones
whose results it reads), so the order of the book holds wherever it matters.
Among the chapters ready at the same time, the one with the highest priority
starts first. The priorities come from the last recorded run: the head of the
longest chain of work first (a chapter's own time plus the longest chain of
the chapters that wait for it, so a chapter that others need goes before an
equally long one that nobody needs), then improved by moving one chapter at a
time for as long as a simulated build with those times ends sooner.
Published parameters are the defaults in each notebook's ``parameters`` cell,
so nothing is injected; ``small`` injects ``params/small/<stem>.yaml``.
Each executed notebook is written under a temporary name and renamed only
when the whole chapter succeeded, so the book never picks up a half-run one;
a failed run is moved to _build/failed/ for inspection. Wall-clock times go to
results/run_times.json (under $RECSYS_OUTPUT_DIR when set).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import papermill as pm
import yaml
from papermill.exceptions import PapermillExecutionError

from recsys_utils.paths import DATA_DIR_ENV, OUTPUT_DIR_ENV, results_dir

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SMALL_PARAMS = ROOT / "params" / "small"
FAILED_DIR = ROOT / "_build" / "failed"
KERNEL = "recsys-book"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def chapter_paths(names: list[str]) -> list[Path]:
    """Source notebooks for the given stems, or every numbered chapter in order."""
    if not names:
        found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
        if not found:
            sys.exit(f"no chapters in {NOTEBOOKS.relative_to(ROOT)}/")
        return found
    # Accept "03_ncf_regression" as well as "notebooks/03_ncf_regression.ipynb".
    paths = [NOTEBOOKS / f"{Path(name).stem}.ipynb" for name in names]
    missing = [str(p.relative_to(ROOT)) for p in paths if not p.is_file()]
    if missing:
        sys.exit(f"no such chapter: {', '.join(missing)}")
    return paths


def load_params(kind: str, stem: str) -> dict | None:
    """Parameters to inject: none for published, the YAML mapping for small."""
    if kind == "published":
        return None
    path = SMALL_PARAMS / f"{stem}.yaml"
    if not path.is_file():
        sys.exit(f"{stem}: no small parameter set, expected {path.relative_to(ROOT)}")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        sys.exit(f"{path.relative_to(ROOT)}: expected a mapping of parameters")
    # papermill only logs unknown names; a typo would silently run published values.
    known = pm.inspect_notebook(str(NOTEBOOKS / f"{stem}.ipynb"))
    unknown = sorted(set(params) - set(known))
    if unknown:
        sys.exit(f"{path.relative_to(ROOT)}: not in the parameters cell: {unknown}")
    return params


BOOK_CHAPTERS = ROOT / "book" / "chapters"


def needs(src: Path) -> set[str]:
    """The chapters whose results ``src`` reads (its ``recsys.needs`` metadata)."""
    metadata = json.loads(src.read_text(encoding="utf-8")).get("metadata", {})
    return set(metadata.get("recsys", {}).get("needs", []))


def absolutize_env() -> None:
    """Make the path variables absolute: the kernels run in notebooks/, not here."""
    for var in (OUTPUT_DIR_ENV, DATA_DIR_ENV):
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).resolve())


def report_failure(stem: str, err: PapermillExecutionError, kept: Path) -> None:
    """Print the failing cell and its error, which papermill's exception carries."""
    where = f"In [{err.exec_count}], cell index {err.cell_index}"
    print(f"FAILED {stem} at {where}", file=sys.stderr)
    print("----- cell source -----", err.source, sep="\n", file=sys.stderr)
    print("----- error -----", file=sys.stderr)
    print(
        ANSI.sub("", "\n".join(err.traceback)) or f"{err.ename}: {err.evalue}",
        file=sys.stderr,
    )
    print(f"executed notebook kept at {kept.relative_to(ROOT)}", file=sys.stderr)


#: Thread-count variables of OpenMP, MKL and OpenBLAS, which torch and numpy read.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def share_cores(jobs: int) -> None:
    """Give this process's kernels their share of the cores for ``jobs`` lanes.

    Training sets its own thread count, but scoring, plotting and every
    other cell run with the libraries' default of one thread per core. Two
    kernels that each start a thread per core fight over the cores: in a
    build where two chapters scored candidates at the same time, those cells
    took two to five times as long as alone. Kernels inherit the variables
    set here; a thread count the user set in any of them is left alone.
    Called in the worker that starts the kernels, so the caller's own
    environment is untouched.
    """
    if any(variable in os.environ for variable in THREAD_VARIABLES):
        return
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    for variable in THREAD_VARIABLES:
        os.environ[variable] = threads


def run_chapter(
    src: Path, out_dir: Path, params: dict | None, prepare_only: bool, jobs: int = 1
) -> tuple[float, float]:
    """Execute one chapter into out_dir; return its start and end (epoch seconds).

    ``jobs`` is the number of chapters running at once (:func:`share_cores`).
    """
    if not prepare_only:
        share_cores(jobs)
    final = out_dir / src.name
    # The leading dot and the .ipynb suffix keep papermill quiet and Sphinx away.
    partial = out_dir / f".{src.stem}.partial.ipynb"
    start = time.time()
    try:
        pm.execute_notebook(
            src,
            partial,
            parameters=params,
            kernel_name=KERNEL,
            cwd=NOTEBOOKS,
            progress_bar=False,
            prepare_only=prepare_only,
        )
    except PapermillExecutionError as err:
        FAILED_DIR.mkdir(parents=True, exist_ok=True)
        kept = partial.replace(FAILED_DIR / src.name)
        report_failure(src.stem, err, kept)
        raise
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    end = time.time()
    partial.replace(final)
    return start, end


def record_time(
    stem: str, start: float, end: float, kind: str, build_start: float
) -> None:
    """Merge one chapter's time into results/run_times.json, atomically.

    Besides the chapter's seconds, its start and end are kept as seconds
    since the start of this invocation (``build``, a UTC time), so that a
    page can draw which chapters ran side by side and how long the whole
    run took.
    """
    path = results_dir() / "run_times.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        times = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        times = {}
    times[stem] = {
        "seconds": round(end - start, 1),
        "params": kind,
        "build": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(build_start)),
        "start": round(start - build_start, 1),
        "end": round(end - build_start, 1),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def previous_seconds(kind: str) -> dict[str, float]:
    """Each chapter's seconds in the last recorded run with the same parameters."""
    try:
        times = json.loads((results_dir() / "run_times.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {
        stem: entry["seconds"]
        for stem, entry in times.items()
        if isinstance(entry, dict) and entry.get("params") == kind
    }


def chain_seconds(
    expected: dict[str, float], needs_of: dict[str, set[str]]
) -> dict[str, float]:
    """Seconds from each chapter's start to the end of the longest chain it heads.

    A chapter's own expected time plus the largest chain among the chapters
    that need it; a chapter never timed counts as infinitely long, so it runs
    as early as it can and is timed once.
    """
    chains: dict[str, float] = {}

    def chain(stem: str) -> float:
        if stem not in chains:
            # Its own time first: a chapter in a cycle of needs then ends the
            # recursion (it never becomes ready, and main reports it as not run).
            chains[stem] = expected.get(stem, math.inf)
            after = [chain(other) for other, need in needs_of.items() if stem in need]
            chains[stem] += max(after, default=0.0)
        return chains[stem]

    for stem in needs_of:
        chain(stem)
    return chains


def simulated_end(
    order: list[str],
    expected: dict[str, float],
    needs_of: dict[str, set[str]],
    lanes: int,
) -> float:
    """When a build would end that takes ready chapters by ``order``, ``lanes`` at once.

    The rule of :func:`main`: whenever a lane is free, the first chapter of
    ``order`` whose needs have all ended starts on it. Each chapter takes its
    ``expected`` seconds. Chapters that can never start are left out.
    """
    rank = {stem: i for i, stem in enumerate(order)}
    waiting, running, ended, now = set(order), [], set(), 0.0
    while True:
        ready = sorted((s for s in waiting if needs_of[s] <= ended), key=rank.get)
        for stem in ready[: lanes - len(running)]:
            waiting.discard(stem)
            running.append((now + expected[stem], rank[stem], stem))
        if not running:
            return now
        running.sort()
        now, _, stem = running.pop(0)
        ended.add(stem)


def planned_order(
    expected: dict[str, float], needs_of: dict[str, set[str]], lanes: int
) -> list[str]:
    """The chapters in the order of their priority for a build on ``lanes`` lanes.

    Longest chain first (:func:`chain_seconds`). When every chapter has a
    time, the order is then changed one move at a time wherever the move
    makes :func:`simulated_end` earlier, until no move does; a move takes
    one chapter to another place, or swaps two. Longest chain first alone
    can leave one lane idle while the other finishes the chapters that a
    late chapter waits for, and moves of one chapter alone can stop short of
    a better packing that needs two chapters to trade places. For the book's
    ten chapters the search takes a few thousand simulations, milliseconds.
    """
    chains = chain_seconds(expected, needs_of)
    order = sorted(needs_of, key=lambda stem: (-chains[stem], stem))
    if not all(math.isfinite(expected.get(stem, math.inf)) for stem in order):
        return order  # an untimed chapter runs first, to be timed
    best = simulated_end(order, expected, needs_of, lanes)
    improved = True
    while improved:
        improved = False
        for trial in _moves(order):
            end = simulated_end(trial, expected, needs_of, lanes)
            if end < best - 1e-9:
                order, best, improved = trial, end, True
                break
    return order


def _moves(order: list[str]) -> Iterator[list[str]]:
    """Every order one move away: one chapter put elsewhere, or two swapped."""
    for i, j in itertools.permutations(range(len(order)), 2):
        trial = order.copy()
        trial.insert(j, trial.pop(i))
        yield trial
    for i, j in itertools.combinations(range(len(order)), 2):
        trial = order.copy()
        trial[i], trial[j] = trial[j], trial[i]
        yield trial


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help="chapter stems (default: all)")
    parser.add_argument("--params", choices=["published", "small"], default="published")
    parser.add_argument(
        "--out",
        type=Path,
        default=BOOK_CHAPTERS,
        help="folder for the executed notebooks; unless $RECSYS_OUTPUT_DIR is set, "
        "the chapters' results, plots and checkpoints go there too",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="inject parameters without executing (for nbval)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="chapters run at once (default: 2, or 1 on a one-core machine)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: use a whole number >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Only the book's own build may write the published results/, plots/, ...
    if args.out.resolve() != BOOK_CHAPTERS and not os.environ.get(OUTPUT_DIR_ENV):
        os.environ[OUTPUT_DIR_ENV] = str(args.out.resolve())
    absolutize_env()
    args.out.mkdir(parents=True, exist_ok=True)
    sources = chapter_paths(args.chapters)
    params = {src.stem: load_params(args.params, src.stem) for src in sources}
    if args.prepare_only:
        for src in sources:
            run_chapter(src, args.out, params[src.stem], prepare_only=True)
            print(f"prepared {src.stem}")
        return 0
    # A needed chapter that is not being run now must have run before.
    waiting = {src.stem: (src, needs(src) & set(params)) for src in sources}
    # Among the chapters ready at once, the one planned first by the last run's
    # times goes first, so no lane waits at the end for a long chapter that
    # started late.
    priority = {
        stem: i
        for i, stem in enumerate(
            planned_order(
                previous_seconds(args.params),
                {stem: need for stem, (_, need) in waiting.items()},
                args.jobs,
            )
        )
    }
    done: set[str] = set()
    failed = False
    build_start = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        running = {}
        while waiting or running:
            ready = sorted(
                (stem for stem, (_, need) in waiting.items() if need <= done),
                key=priority.get,
            )
            # Only as many as there are free lanes: a chapter queued early would
            # hold its place ahead of a longer chain that becomes ready later.
            free = args.jobs - len(running)
            for stem in [] if failed else ready[:free]:
                src, _ = waiting.pop(stem)
                future = pool.submit(
                    run_chapter, src, args.out, params[stem], False, args.jobs
                )
                running[future] = stem
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                stem = running.pop(future)
                try:
                    start, end = future.result()
                except PapermillExecutionError:
                    failed = True  # reported by run_chapter; let the others finish
                    continue
                done.add(stem)
                record_time(stem, start, end, args.params, build_start)
                print(f"ran {stem} in {end - start:.1f} s", flush=True)
    if failed or waiting:
        skipped = ", ".join(sorted(waiting))
        if skipped:
            print(f"not run, a chapter they need failed: {skipped}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
