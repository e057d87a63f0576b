"""The classical baselines of the benchmarks chapter stay where the book says.

Each baseline is refitted on u1 with the setting the chapter chose on
validation ratings and scored on u1's test ratings; the RMSE must lie within
the tolerance of ``benchmark_headlines.json``, and so must the value in
``results/benchmarks.json`` when the book has been built.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsys_utils import paths
from recsys_utils.autorec import AutoRecConfig, fit_autorec
from recsys_utils.baselines import refit_baseline
from recsys_utils.data import IdIndex
from recsys_utils.metrics import rmse
from recsys_utils.splits import make_split

HEADLINES = json.loads(
    (Path(__file__).with_name("benchmark_headlines.json")).read_text()
)
NAMES = sorted(name for name in HEADLINES if not name.startswith("_"))


@pytest.fixture(scope="module")
def u1(movielens):
    return make_split(movielens.ratings, "u1", seed=42)


@pytest.mark.parametrize("name", NAMES)
def test_refitted_baseline_within_tolerance(name, u1) -> None:
    expected = HEADLINES[name]
    both = pd.concat([u1.train, u1.valid], ignore_index=True)
    fitted = refit_baseline(name, expected["params"], both, seed=42)
    measured = rmse(u1.test["rating"].to_numpy(), fitted.predict(u1.test))
    assert measured == pytest.approx(expected["rmse"], abs=expected["tolerance"])


@pytest.mark.parametrize("name", NAMES)
def test_book_reports_baseline_within_tolerance(name) -> None:
    path = paths.PROJECT_ROOT / "results" / "benchmarks.json"
    if not path.is_file():
        pytest.skip(f"{path} absent: the book has not been built here (make book)")
    reported = json.loads(path.read_text())
    expected = HEADLINES[name]
    assert reported["baseline_settings"][name] == expected["params"]
    assert reported["table"][name]["RMSE"] == pytest.approx(
        expected["rmse"], abs=expected["tolerance"]
    )


def test_item_autorec_within_tolerance(u1, movielens) -> None:
    expected = HEADLINES["_item_autorec"]
    index = IdIndex.from_tables(movielens.users, movielens.items)
    config = AutoRecConfig(hidden=expected["hidden"], l2=expected["l2"], seed=42)
    fitted = fit_autorec(u1.train, u1.valid, index, config)
    measured = rmse(u1.test["rating"].to_numpy(), fitted.predict(u1.test))
    assert measured == pytest.approx(expected["rmse"], abs=expected["tolerance"])


def test_book_reports_blend_within_tolerance() -> None:
    path = paths.PROJECT_ROOT / "results" / "benchmarks.json"
    if not path.is_file():
        pytest.skip(f"{path} absent: the book has not been built here (make book)")
    expected = HEADLINES["_blend"]
    row = json.loads(path.read_text())["table"]["blend"]
    assert row["RMSE"] == pytest.approx(expected["rmse"], abs=expected["tolerance"])
    assert row["5-fold RMSE"] == pytest.approx(
        expected["five_fold_rmse"], abs=expected["tolerance"]
    )
