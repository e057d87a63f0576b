"""The headline metric of each model chapter stays where the book says it is.

Each chapter is retrained here with its published parameters, read from the
notebook's ``parameters`` cell, on its primary split. The result must lie
within the stated tolerance of ``headline_metrics.json``; so must the value
in ``results/<chapter>.json`` when the book has been built.
"""

from __future__ import annotations

import ast
import json
from dataclasses import fields
from pathlib import Path

import papermill
import pytest

from recsys_utils import paths
from recsys_utils.experiment import run_experiment
from recsys_utils.models import NeuMFConfig, neumf_builder
from recsys_utils.params import RunParameters

HEADLINES = json.loads((Path(__file__).with_name("headline_metrics.json")).read_text())
CHAPTERS = sorted(name for name in HEADLINES if not name.startswith("_"))
NOT_OPTIONS = {"n_users", "n_items", "rating_offset"}


def published_parameters(chapter: str) -> dict:
    notebook = paths.PROJECT_ROOT / "notebooks" / f"{chapter}.ipynb"
    cell = papermill.inspect_notebook(str(notebook))
    return {name: ast.literal_eval(spec["default"]) for name, spec in cell.items()}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_retrained_headline_within_tolerance(chapter, movielens):
    expected = HEADLINES[chapter]
    values = published_parameters(chapter)
    assert values["split"] == expected["split"], "the published primary split changed"
    params = RunParameters(
        **{n: values[n] for n in RunParameters.names() if n in values}
    )
    options = {
        f.name: values[f.name]
        for f in fields(NeuMFConfig)
        if f.name in values and f.name not in NOT_OPTIONS
    }
    task = "classification" if "classification" in chapter else "regression"
    build = neumf_builder(
        movielens.users.shape[0], movielens.items.shape[0], task=task, **options
    )

    outcome = run_experiment(movielens, params, build, verbose=False)

    measured = getattr(outcome.report, expected["metric"])
    assert measured == pytest.approx(expected["value"], abs=expected["tolerance"])


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_book_reports_headline_within_tolerance(chapter):
    path = paths.PROJECT_ROOT / "results" / f"{chapter}.json"
    if not path.is_file():
        pytest.skip(f"{path} absent: the book has not been built here (make book)")
    expected = HEADLINES[chapter]
    reported = json.loads(path.read_text())
    assert reported["split"] == expected["split"]
    assert reported["metrics"][expected["metric"]] == pytest.approx(
        expected["value"], abs=expected["tolerance"]
    )
