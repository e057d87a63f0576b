"""The model chapters run unchanged on releases other than 100k.

The larger releases cannot be fetched where the tests run, so tiny folders
in their GroupLens formats are drawn from a low-rank model
(:mod:`synthetic_releases`): ml-latest-small in half stars without
demographics, ml-1m in whole stars with them. Each chapter runs through
papermill with its small parameters and ``-p dataset <name> -p split
random``, as a reader would run it; its results file must hold metrics
over the release's own rating levels, five random folds, and the features
the release has. The benchmarks and recommendations chapters then run on
the model chapters' ml-latest-small results. About two minutes in all.
"""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest
import yaml
from synthetic_releases import write_1m, write_latest_small

from recsys_utils import paths

pytestmark = pytest.mark.chapters

HALF_STARS = ["0.5", "1", "1.5", "2", "2.5", "3", "3.5", "4", "4.5", "5"]
WHOLE_STARS = ["1", "2", "3", "4", "5"]
RANDOM_FOLDS = ["random1", "random2", "random3", "random4", "random5"]

# Each pure chapter runs before its hybrid, whose paired comparison reads it.
RUNS = {
    "ml-latest-small": (
        write_latest_small,
        [
            "02_ncf_classification",
            "03_ncf_regression",
            "04_hybrid_ncf_classification",
            "05_hybrid_ncf_regression",
            "06_autoencoder",
        ],
        HALF_STARS,
    ),
    "ml-1m": (write_1m, ["03_ncf_regression", "05_hybrid_ncf_regression"], WHOLE_STARS),
}


def run_chapter(chapter: str, dataset: str, out: Path) -> dict:
    notebooks = paths.PROJECT_ROOT / "notebooks"
    small = paths.PROJECT_ROOT / "params" / "small" / f"{chapter}.yaml"
    parameters = yaml.safe_load(small.read_text()) | {"dataset": dataset}
    if "split" in papermill.inspect_notebook(str(notebooks / f"{chapter}.ipynb")):
        parameters["split"] = "random"
    if "folds" in parameters:  # the canonical names exist only for 100k
        parameters["folds"] = RANDOM_FOLDS[: len(parameters["folds"])]
    if "n_negatives" in parameters:
        # Each user has rated about half of the few dozen movies, so fewer are left.
        parameters["n_negatives"] = 9
    papermill.execute_notebook(
        str(notebooks / f"{chapter}.ipynb"),
        str(out / f"{chapter}.ipynb"),
        parameters=parameters,
        kernel_name="recsys-book",
        cwd=str(notebooks),
        progress_bar=False,
    )
    return json.loads((out / "results" / f"{chapter}.json").read_text())


@pytest.mark.parametrize("dataset", list(RUNS))
def test_model_chapters_run_on_another_release(
    dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write, chapters, levels = RUNS[dataset]
    write(tmp_path / "data" / dataset)
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RECSYS_OUTPUT_DIR", str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    for chapter in chapters:
        results = run_chapter(chapter, dataset, tmp_path / "out")
        assert results["parameters"]["dataset"] == dataset
        assert results["split"] == "random"
        metrics = results["metrics"]
        assert list(metrics["auc"]) == levels, chapter
        assert list(metrics["f1_per_rating"]) == levels, chapter
        assert 0 < metrics["rmse"] < 2, chapter  # trained, not diverged
        assert list(results["cross_validation"]["folds"]) == RANDOM_FOLDS, chapter
        fold = results["cross_validation"]["folds"]["random1"]
        assert [f"auc_{level}" in fold for level in levels] == [True] * len(levels)
        n_user_features = results["parameters"].get("n_user_features")
        if n_user_features is not None:
            # Demographics exist only in 100k and 1M.
            assert (n_user_features > 0) == (dataset == "ml-1m"), chapter
    if dataset != "ml-latest-small":
        return
    benchmarks = run_chapter("07_benchmarks", dataset, tmp_path / "out")
    assert benchmarks["parameters"]["folds"] == RANDOM_FOLDS[:2]
    assert {"NCF classification", "SVD", "blend"} <= set(benchmarks["table"])
    recommendations = run_chapter("08_recommendations", dataset, tmp_path / "out")
    assert recommendations["list_model"] in benchmarks["table"]
