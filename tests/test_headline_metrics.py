"""The headline metric of each model chapter stays where the book says it is.

Each chapter is retrained here with its published parameters, read from the
notebook's ``parameters`` cell, on its primary split; ``headline_metrics.json``
says which model, which options the chapter chose on validation (for example
the classifier's output layer) and whether it reads content features. The result must lie
within the stated tolerance of ``headline_metrics.json``; so must the value
in ``results/<chapter>.json`` when the book has been built.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from recsys_utils import paths
from recsys_utils.data import IdIndex
from recsys_utils.experiment import run_experiment
from recsys_utils.features import build_features
from recsys_utils.models import (
    AutoencoderConfig,
    NeuMFConfig,
    autoencoder_builder,
    neumf_builder,
)
from recsys_utils.params import RunParameters, published_parameters

HEADLINES = json.loads((Path(__file__).with_name("headline_metrics.json")).read_text())
CHAPTERS = sorted(name for name in HEADLINES if not name.startswith("_"))
NOT_OPTIONS = {"n_users", "n_items", "rating_offset"}


def builder_for(chapter: str, spec: dict, values: dict, movielens):
    """Rebuild the chapter's model from its published parameters and the spec."""
    index = IdIndex.from_tables(movielens.users, movielens.items)
    features = (
        build_features(movielens.users, movielens.items, index)
        if spec.get("features")
        else None
    )
    config_class, builder = (
        (AutoencoderConfig, autoencoder_builder)
        if spec.get("model") == "autoencoder"
        else (NeuMFConfig, neumf_builder)
    )
    options = {
        f.name: values[f.name]
        for f in fields(config_class)
        if f.name in values and f.name not in NOT_OPTIONS
    }
    options.update(spec.get("options", {}))
    return builder(index.n_users, index.n_items, features, **options)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_retrained_headline_within_tolerance(chapter, movielens):
    expected = HEADLINES[chapter]
    values = published_parameters(chapter)
    assert values["split"] == expected["split"], "the published primary split changed"
    params = RunParameters(
        **{n: values[n] for n in RunParameters.names() if n in values}
    )
    build = builder_for(chapter, expected, values, movielens)

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
