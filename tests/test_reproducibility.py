"""The same parameters and seed give the same numbers, run after run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from recsys_utils.paths import PROJECT_ROOT

CHAPTER = "03_ncf_regression"


def run_small_chapter(out: Path) -> dict:
    """Execute the chapter with its small parameters into ``out``; return its results."""
    env = {**os.environ, "RECSYS_OUTPUT_DIR": str(out)}
    command = [
        sys.executable, str(PROJECT_ROOT / "scripts" / "run_chapters.py"),
        "--params", "small", "--out", str(out), CHAPTER,
    ]  # fmt: skip
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=600)
    return json.loads((out / "results" / f"{CHAPTER}.json").read_text())


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if "seconds" not in k}
    return value


def test_a_chapter_run_twice_gives_identical_results(tmp_path: Path) -> None:
    first = run_small_chapter(tmp_path / "first")
    second = run_small_chapter(tmp_path / "second")
    assert first["metrics"]["rmse"] > 0
    assert without_timings(first) == without_timings(second)
    first_csv = (
        tmp_path / "first" / "results" / f"{CHAPTER}_predictions.csv"
    ).read_bytes()
    second_csv = (
        tmp_path / "second" / "results" / f"{CHAPTER}_predictions.csv"
    ).read_bytes()
    assert first_csv == second_csv
