"""scripts/run_chapters.py: chapters run in parallel, each after the ones it needs."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location(
        "run_chapters", ROOT / "scripts" / "run_chapters.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_chapters", module)  # picklable by name
    spec.loader.exec_module(module)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "NOTEBOOKS", notebooks)
    monkeypatch.setattr(module, "FAILED_DIR", tmp_path / "failed")
    monkeypatch.setenv("RECSYS_OUTPUT_DIR", str(tmp_path / "output"))
    return module, notebooks


def write_chapter(folder: Path, stem: str, code: str, needs=()) -> None:
    stamp = (
        "import json, os, time, pathlib\n"
        "log = pathlib.Path(os.environ['RECSYS_OUTPUT_DIR']) / 'log.jsonl'\n"
        "log.parent.mkdir(parents=True, exist_ok=True)\n"
        f"start = time.time()\n{code}\n"
        "with log.open('a') as f:\n"
        f"    f.write(json.dumps(['{stem}', start, time.time()]) + '\\n')\n"
    )
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(stamp)],
        metadata={
            "kernelspec": {"name": "recsys-book", "display_name": "Python (recsys-book)",
                           "language": "python"},
            "recsys": {"needs": list(needs)},
        },
    )  # fmt: skip
    nbformat.write(notebook, folder / f"{stem}.ipynb")


def test_a_chapter_starts_after_the_chapters_it_needs(runner, tmp_path: Path) -> None:
    module, notebooks = runner
    write_chapter(notebooks, "01_slow", "time.sleep(3)")
    write_chapter(notebooks, "02_quick", "pass")
    write_chapter(notebooks, "03_reader", "pass", needs=["01_slow"])
    assert module.main(["--out", str(tmp_path / "out"), "--jobs", "2"]) == 0
    log = tmp_path / "output" / "log.jsonl"
    runs = {stem: (start, end) for stem, start, end in map(json.loads, log.open())}
    assert runs["02_quick"][0] < runs["01_slow"][1]  # ran alongside the slow one
    assert runs["03_reader"][0] >= runs["01_slow"][1]  # waited for what it needs
    times = json.loads((tmp_path / "output" / "results" / "run_times.json").read_text())
    assert set(times) == {"01_slow", "02_quick", "03_reader"}
    slow, reader = times["01_slow"], times["03_reader"]
    assert slow["seconds"] >= 3 and slow["end"] - slow["start"] == pytest.approx(
        slow["seconds"], abs=0.2
    )
    assert reader["start"] >= slow["end"] - 0.1  # offsets from one build start
    assert len({entry["build"] for entry in times.values()}) == 1
    assert sorted(p.name for p in (tmp_path / "out").glob("*.ipynb")) == [
        "01_slow.ipynb", "02_quick.ipynb", "03_reader.ipynb",
    ]  # fmt: skip


def test_a_failed_chapter_stops_those_that_need_it(
    runner, tmp_path: Path, capfd
) -> None:
    module, notebooks = runner
    write_chapter(notebooks, "01_broken", "raise ValueError('no data here')")
    write_chapter(notebooks, "02_reader", "pass", needs=["01_broken"])
    assert module.main(["--out", str(tmp_path / "out"), "--jobs", "2"]) == 1
    err = capfd.readouterr().err  # the child process reports the failing cell
    assert "ValueError: no data here" in err
    assert "not run, a chapter they need failed: 02_reader" in err
    assert not list((tmp_path / "out").glob("*.ipynb"))  # nothing half-run is kept
    assert (tmp_path / "failed" / "01_broken.ipynb").is_file()


def test_the_longest_chain_of_the_last_run_starts_first(runner, tmp_path: Path) -> None:
    module, notebooks = runner
    for stem in ("01_a", "02_b", "03_c"):
        write_chapter(notebooks, stem, "pass")
    results = tmp_path / "output" / "results"
    results.mkdir(parents=True)
    last_run = {"01_a": 5.0, "02_b": 50.0}  # 03_c was never timed: it goes first
    (results / "run_times.json").write_text(
        json.dumps({s: {"seconds": t, "params": "small"} for s, t in last_run.items()})
    )
    assert module.main(["--params", "published", "--out", str(tmp_path / "out"),
                        "--jobs", "1"]) == 0  # fmt: skip
    log = tmp_path / "output" / "log.jsonl"
    order = [
        stem for stem, _, _ in sorted(map(json.loads, log.open()), key=lambda r: r[1])
    ]
    # The times above were of small runs, so they say nothing about published ones.
    assert order == ["01_a", "02_b", "03_c"]
    (results / "run_times.json").write_text(
        json.dumps(
            {s: {"seconds": t, "params": "published"} for s, t in last_run.items()}
        )
    )
    log.unlink()
    assert module.main(["--params", "published", "--out", str(tmp_path / "out"),
                        "--jobs", "1"]) == 0  # fmt: skip
    order = [
        stem for stem, _, _ in sorted(map(json.loads, log.open()), key=lambda r: r[1])
    ]
    assert order == ["03_c", "02_b", "01_a"]


def test_a_chapter_others_need_goes_before_a_longer_one_nobody_needs(
    runner, tmp_path: Path
) -> None:
    module, notebooks = runner
    write_chapter(notebooks, "01_model", "pass")
    write_chapter(notebooks, "02_appendix", "pass")
    write_chapter(notebooks, "03_summary", "pass", needs=["01_model"])
    results = tmp_path / "output" / "results"
    results.mkdir(parents=True)
    last_run = {"01_model": 10.0, "02_appendix": 15.0, "03_summary": 20.0}
    (results / "run_times.json").write_text(
        json.dumps(
            {s: {"seconds": t, "params": "published"} for s, t in last_run.items()}
        )
    )
    assert module.main(["--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    log = tmp_path / "output" / "log.jsonl"
    order = [
        stem for stem, _, _ in sorted(map(json.loads, log.open()), key=lambda r: r[1])
    ]
    # 01 heads a chain of 30 s, 02 one of 15 s: longest chapter first would
    # have left 03 to run alone at the end.
    assert order == ["01_model", "03_summary", "02_appendix"]


def test_chain_seconds_follows_the_longest_path_to_the_end(runner) -> None:
    module, _ = runner
    needs_of = {
        "model_a": set(),
        "model_b": {"model_a"},
        "speed": set(),
        "benchmarks": {"model_a", "model_b"},
        "times": {"model_a", "model_b", "benchmarks", "speed"},
    }
    expected = {"model_a": 100, "model_b": 200, "speed": 150, "benchmarks": 300}
    chains = module.chain_seconds(expected, needs_of)
    assert chains["times"] == float("inf")  # never timed
    expected["times"] = 5
    chains = module.chain_seconds(expected, needs_of)
    assert chains == {
        "times": 5,
        "benchmarks": 305,
        "speed": 155,
        "model_b": 505,
        "model_a": 605,
    }


def test_chain_seconds_ends_on_a_cycle_of_needs(runner) -> None:
    module, _ = runner
    chains = module.chain_seconds({"a": 1.0, "b": 2.0}, {"a": {"b"}, "b": {"a"}})
    assert set(chains) == {"a", "b"} and all(v >= 1.0 for v in chains.values())


def test_simulated_end_follows_the_order_and_the_needs(runner) -> None:
    module, _ = runner
    expected = {"a": 3.0, "b": 2.0, "c": 2.0}
    needs_of = {"a": set(), "b": set(), "c": {"a"}}
    # a and b start at once; c waits for a (ends at 3) and takes 2 more.
    assert module.simulated_end(["a", "b", "c"], expected, needs_of, 2) == 5.0
    # One lane: everything in a row.
    assert module.simulated_end(["b", "a", "c"], expected, needs_of, 1) == 7.0
    # A chapter that can never start is left out.
    assert module.simulated_end(["a"], {"a": 1.0}, {"a": {"a"}}, 2) == 0.0


def book_needs(module) -> dict[str, set[str]]:
    """The needs of the book's own chapters, as the script reads them."""
    return {
        p.stem: module.needs(p) for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
    }


def test_planned_order_ends_the_book_sooner_than_longest_chain_first(runner) -> None:
    """On the book's own needs and the times of a real build, the plan gains 13 s."""
    module, _ = runner
    shape = book_needs(module)
    seconds = {"01_data": 6, "02_ncf_classification": 87, "03_ncf_regression": 99,
               "04_hybrid_ncf_classification": 103, "05_hybrid_ncf_regression": 138,
               "06_autoencoder": 112, "07_benchmarks": 283, "08_recommendations": 142,
               "09_speed": 147, "10_build_times": 4}  # fmt: skip
    assert set(shape) == set(seconds), "the book's chapters changed: update the times"
    chains = module.chain_seconds(seconds, shape)
    longest_first = sorted(shape, key=lambda stem: (-chains[stem], stem))
    plan = module.planned_order(seconds, shape, 2)
    assert sorted(plan) == sorted(shape)
    assert module.simulated_end(longest_first, seconds, shape, 2) == 589
    # 02-06 split 289 s / 250 s over the lanes instead of 302 s / 237 s.
    assert module.simulated_end(plan, seconds, shape, 2) == 576
    # A chapter without a time keeps longest chain first: it runs first, to be timed.
    del seconds["09_speed"]
    assert module.planned_order(seconds, shape, 2)[0] == "09_speed"


def test_planned_order_finds_packings_that_need_two_chapters_to_trade_places(
    runner,
) -> None:
    """The times of a later build, where moving one chapter at a time got stuck."""
    module, _ = runner
    shape = book_needs(module)
    seconds = {"01_data": 6.1, "02_ncf_classification": 85.0, "03_ncf_regression": 55.6,
               "04_hybrid_ncf_classification": 94.6, "05_hybrid_ncf_regression": 132.3,
               "06_autoencoder": 105.8, "07_benchmarks": 274.3, "08_recommendations": 75.5,
               "09_speed": 125.2, "10_build_times": 4.1}  # fmt: skip
    # The order that build ran: moving any one chapter elsewhere does not shorten it.
    stuck = ["02_ncf_classification", "05_hybrid_ncf_regression", "06_autoencoder",
             "03_ncf_regression", "04_hybrid_ncf_classification", "07_benchmarks",
             "09_speed", "08_recommendations", "01_data", "10_build_times"]  # fmt: skip
    assert module.simulated_end(stuck, seconds, shape, 2) == pytest.approx(551.3)
    for i, j in itertools.permutations(range(len(stuck)), 2):
        moved = stuck.copy()
        moved.insert(j, moved.pop(i))
        assert module.simulated_end(moved, seconds, shape, 2) >= 551.3 - 1e-9
    plan = module.planned_order(seconds, shape, 2)
    # 03, 02 and 04 on one lane, 06 and 05 on the other: the lanes finish the
    # model chapters 3 s apart, and the benchmarks start at 238 s, not 273 s.
    assert module.simulated_end(plan, seconds, shape, 2) == pytest.approx(516.5)


def test_each_kernel_gets_its_share_of_the_cores(runner, tmp_path, monkeypatch) -> None:
    module, notebooks = runner
    for variable in module.THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(module.os, "cpu_count", lambda: 4)
    code = (
        "import torch\n"
        "(log.parent / 'threads.json').write_text(json.dumps("
        "[os.environ['OMP_NUM_THREADS'], torch.get_num_threads()]))"
    )
    write_chapter(notebooks, "01_a", code)
    assert module.main(["--out", str(tmp_path / "out"), "--jobs", "2"]) == 0
    threads = json.loads((tmp_path / "output" / "threads.json").read_text())
    assert threads == ["2", 2]  # four cores, two lanes
    # Set in the worker that starts the kernels, not in the caller.
    assert not any(v in module.os.environ for v in module.THREAD_VARIABLES)
    # A count the user chose is left alone.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert module.main(["--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    threads = json.loads((tmp_path / "output" / "threads.json").read_text())
    assert threads == ["1", 1]
