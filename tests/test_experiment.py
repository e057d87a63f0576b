"""One experiment end to end on the real data with a tiny NeuMF, and its files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data import IdIndex
from recsys_utils.experiment import (
    Outcome,
    cross_validate,
    load_fold_predictions,
    load_results,
    paired_fold_comparison,
    run_experiment,
    save_fold_predictions,
    save_predictions,
    save_results,
    select_variant,
)
from recsys_utils.models import neumf_builder
from recsys_utils.params import RunParameters
from recsys_utils.splits import cold_start_split

# A tiny model never predicts the extreme ratings: NaN precision is expected.
pytestmark = pytest.mark.filterwarnings(
    "ignore::recsys_utils.metrics.UndefinedRatingMetricWarning"
)

CHAPTER = "99_test_chapter"
PARAMS = RunParameters(n_epochs=2, batch_size=4096)
MODEL_OPTIONS = {"n_factors": 4, "mlp_layers": [8, 4], "fusion_size": 4}


def run(movielens, task: str) -> Outcome:
    index = IdIndex.from_tables(movielens.users, movielens.items)
    build = neumf_builder(index.n_users, index.n_items, **MODEL_OPTIONS, task=task)
    return run_experiment(movielens, PARAMS, build, verbose=False)


@pytest.fixture(scope="module")
def regression(movielens) -> Outcome:
    return run(movielens, "regression")


@pytest.fixture(scope="module")
def classification(movielens) -> Outcome:
    return run(movielens, "classification")


@pytest.fixture
def output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECSYS_OUTPUT_DIR", str(tmp_path))
    return tmp_path


def test_predictions_cover_the_u1_test_part(regression: Outcome, movielens) -> None:
    predictions = regression.predictions
    assert list(predictions.columns) == [
        "user_id", "item_id", "rating", "prediction", "fallback",
    ]  # fmt: skip
    assert len(predictions) == 20_000
    expected = movielens.ratings.iloc[:20_000][["user_id", "item_id", "rating"]]
    pd.testing.assert_frame_equal(
        predictions[["user_id", "item_id", "rating"]],
        expected.reset_index(drop=True),
    )
    assert predictions["prediction"].between(1, 5).all()


def test_unseen_movies_get_the_fallback_and_are_counted(regression: Outcome) -> None:
    split, predictions = regression.split, regression.predictions
    unseen = ~predictions["item_id"].isin(split.train["item_id"])
    np.testing.assert_array_equal(predictions["fallback"], unseen)
    counted = regression.summary()["fallback"]["test"]
    assert counted["replaced"] == counted["unseen_items"] == unseen.sum() > 0
    # each replaced prediction is the user's damped mean, never the model's output
    user_mean = split.train.groupby("user_id")["rating"].agg(["sum", "count"])
    row = predictions[unseen].iloc[0]
    total, n = user_mean.loc[row["user_id"]]
    damped = (total + 5 * split.train["rating"].mean()) / (n + 5)
    assert row["prediction"] == pytest.approx(damped, abs=1e-5)


def test_regression_outcome_summary(regression: Outcome) -> None:
    assert regression.fit.epochs_run == 2
    assert regression.split.sizes() == {
        "train": 70_000,
        "valid": 10_000,
        "test": 20_000,
    }
    assert regression.report.n == 20_000
    assert 0.5 < regression.report.rmse < 1.5


def test_classification_gives_probabilities(classification: Outcome) -> None:
    predictions = classification.predictions
    columns = ["p1", "p2", "p3", "p4", "p5"]
    assert list(predictions.columns) == [
        "user_id",
        "item_id",
        "rating",
        "prediction",
        *columns,
        "fallback",
    ]
    proba = predictions[columns].to_numpy()
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(predictions["prediction"], proba @ np.arange(1, 6))
    assert "mae_argmax" in classification.report.extra


def test_save_results_writes_the_chapter_json(regression, output_dir: Path) -> None:
    path = save_results(
        CHAPTER, PARAMS, {"u1": regression}, primary="u1", model_options=MODEL_OPTIONS
    )
    assert path == output_dir / "results" / f"{CHAPTER}.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    for key in (
        "parameters",
        "split",
        "epochs_run",
        "train_seconds",
        "metrics",
        "runs",
    ):
        assert key in document
    assert document["split"] == "u1"
    assert document["epochs_run"] == 2
    assert document["parameters"]["batch_size"] == 4096
    assert document["parameters"]["mlp_layers"] == [8, 4]
    assert list(document["runs"]) == ["u1"]
    metrics = document["metrics"]
    for key in ("rmse", "mae", "accuracy", "precision", "recall", "f1"):
        assert key in metrics
    assert metrics["rmse"] == pytest.approx(regression.report.rmse)
    assert set(metrics["auc"]) == {"1", "2", "3", "4", "5"}
    assert set(metrics["f1_per_rating"]) == {"1", "2", "3", "4", "5"}
    assert all(0 <= value <= 1 for value in metrics["auc"].values())


def test_save_results_loads_back(regression, output_dir: Path) -> None:
    save_results(CHAPTER, PARAMS, {"u1": regression}, primary="u1")
    assert load_results(CHAPTER)["metrics"]["n"] == 20_000


def test_save_predictions_writes_csv(regression, output_dir: Path) -> None:
    path = save_predictions(CHAPTER, regression)
    assert path == output_dir / "results" / f"{CHAPTER}_predictions.csv"
    assert path.read_text().splitlines()[0] == (
        "user_id,item_id,rating,prediction,fallback"
    )
    written = pd.read_csv(path)
    assert len(written) == 20_000
    np.testing.assert_allclose(
        written["prediction"], regression.predictions["prediction"], atol=1e-6
    )


def test_no_partial_files_remain(regression, output_dir: Path) -> None:
    save_results(CHAPTER, PARAMS, {"u1": regression}, primary="u1")
    save_predictions(CHAPTER, regression)
    names = sorted(p.name for p in (output_dir / "results").iterdir())
    assert names == [f"{CHAPTER}.json", f"{CHAPTER}_predictions.csv"]


def test_load_results_of_chapter_not_run(output_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run the chapter 42_missing first"):
        load_results("42_missing")


# --------------------------------------------------------------------------
# Model choice on validation, and cross-validation


def test_outcome_scores_the_validation_part_too(regression: Outcome) -> None:
    valid = regression.split.valid
    assert regression.valid_report.n == len(valid) == 10_000
    assert regression.valid_report.rmse != regression.report.rmse


def with_valid(outcome: Outcome, **metrics) -> Outcome:
    return dataclasses.replace(
        outcome, valid_report=dataclasses.replace(outcome.valid_report, **metrics)
    )


def test_select_variant_takes_best_f1_among_those_close_on_mae(regression) -> None:
    outcomes = {
        "best mae": with_valid(regression, mae=0.700, f1=0.30),
        "close, better f1": with_valid(regression, mae=0.705, f1=0.35),
        "far, best f1": with_valid(regression, mae=0.800, f1=0.50),
    }
    assert select_variant(outcomes, mae_tolerance=0.01) == "close, better f1"
    assert select_variant(outcomes, mae_tolerance=0.0) == "best mae"
    assert select_variant(outcomes, mae_tolerance=0.2) == "far, best f1"


def test_select_variant_ranks_undefined_f1_last(regression) -> None:
    outcomes = {
        "undefined": with_valid(regression, mae=0.70, f1=float("nan")),
        "defined": with_valid(regression, mae=0.70, f1=0.10),
    }
    assert select_variant(outcomes) == "defined"


@pytest.fixture(scope="module")
def cv(movielens, regression: Outcome):
    index = IdIndex.from_tables(movielens.users, movielens.items)
    build = neumf_builder(index.n_users, index.n_items, **MODEL_OPTIONS)
    params = dataclasses.replace(PARAMS, n_epochs=1)
    return cross_validate(movielens, params, build, done={"u1": regression})


def test_cross_validation_covers_each_fold_and_reuses_done_ones(
    movielens, regression: Outcome, cv
) -> None:
    assert list(cv.folds) == ["u1", "u2", "u3", "u4", "u5"]
    assert cv.folds["u1"] is regression
    tests = [set(o.split.test.index) for o in cv.folds.values()]
    assert set().union(*tests) == set(movielens.ratings.index)
    table = cv.table()
    assert table.shape[0] == 5 and {"rmse", "f1", "auc_1", "f1_5"} <= set(table.columns)
    summary = cv.summary()
    assert summary.loc["rmse", "mean"] == pytest.approx(table["rmse"].mean())
    assert summary.loc["rmse", "std"] == pytest.approx(table["rmse"].std(ddof=1))
    assert summary.loc["rmse", "std"] > 0
    document = cv.to_dict()
    assert set(document) >= {"folds", "mean", "std", "epochs_run", "train_seconds"}


def test_written_files_are_readable_by_others(output_dir: Path) -> None:
    from recsys_utils._io import write_text_atomic

    path = write_text_atomic(output_dir / "results" / "x.json", "{}")
    assert path.stat().st_mode & 0o044 == 0o044


def test_paired_comparison_by_hand(cv) -> None:
    baseline = cv.to_dict()
    # A baseline worse by 0.01, 0.02, ..., 0.05 RMSE on folds u1..u5.
    for k, fold in enumerate(baseline["folds"].values(), start=1):
        fold["rmse"] += 0.01 * k
    table = paired_fold_comparison(baseline, cv, metrics=("rmse", "mae"))
    assert table.loc["rmse", "mean difference"] == pytest.approx(-0.03)
    assert table.loc["rmse", "std of difference"] == pytest.approx(
        np.std([1, 2, 3, 4, 5], ddof=1) / 100
    )
    # t = -0.03 / (0.0158 / sqrt 5) = -4.24 with 4 degrees of freedom
    assert table.loc["rmse", "p-value (paired t)"] == pytest.approx(0.0132, abs=5e-4)
    assert table.loc["mae", "mean difference"] == pytest.approx(0.0)


def test_paired_comparison_needs_the_same_folds(cv) -> None:
    baseline = cv.to_dict()
    del baseline["folds"]["u3"]
    with pytest.raises(ValueError, match="u3"):
        paired_fold_comparison(baseline, cv)


def test_a_split_made_elsewhere_is_trained_on_as_given(movielens) -> None:
    split = cold_start_split(movielens.ratings, kind="users", fraction=0.05, seed=1)
    index = IdIndex.from_tables(movielens.users, movielens.items)
    build = neumf_builder(index.n_users, index.n_items, **MODEL_OPTIONS)
    outcome = run_experiment(movielens, PARAMS, build, split=split, verbose=False)
    assert outcome.split is split
    count = outcome.fallback["test"]
    # every test rating is of a user without training ratings: all get the fallback
    assert count.unseen_users == count.replaced == len(split.test)


def test_fold_predictions_hold_both_parts_of_each_split(
    regression: Outcome, output_dir: Path
) -> None:
    path = save_fold_predictions(CHAPTER, {"u1": regression})
    assert path == output_dir / "results" / f"{CHAPTER}_fold_predictions.csv"
    table = load_fold_predictions(CHAPTER)
    assert table.groupby("part").size().to_dict() == {"test": 20_000, "valid": 10_000}
    valid = table[table["part"] == "valid"]
    np.testing.assert_allclose(
        valid["prediction"], regression.valid_predictions["prediction"], atol=1e-6
    )
    assert valid["rating"].to_numpy() == pytest.approx(
        regression.split.valid["rating"].to_numpy()
    )
    with pytest.raises(FileNotFoundError, match="run the chapter 98_absent"):
        load_fold_predictions("98_absent")


@pytest.mark.parametrize("variable", ["RECSYS_OUTPUT_DIR", "RECSYS_DATA_DIR"])
def test_relative_location_is_refused_naming_the_fix(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recsys_utils import paths

    monkeypatch.setenv(variable, "relexp")
    with pytest.raises(ValueError, match=rf"\${variable}='relexp' is a relative path"):
        paths.output_dir() if variable == "RECSYS_OUTPUT_DIR" else paths.data_dir()
    monkeypatch.setenv(variable, "/tmp/absolute")
    assert (
        str(paths.output_dir() if variable == "RECSYS_OUTPUT_DIR" else paths.data_dir())
        == "/tmp/absolute"
    )
