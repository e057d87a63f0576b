"""Significance helpers and the benchmark table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys_utils.benchmarks import (
    LITERATURE,
    best_per_column,
    bootstrap_rmse_difference,
    fit_blend,
    literature_table,
    paired_fold_tests,
    rank_agreement,
)
from recsys_utils.paths import PROJECT_ROOT

FOLDS = pd.DataFrame(
    {"u1": [0.90, 0.92, 0.95], "u2": [0.91, 0.94, 0.95], "u3": [0.92, 0.93, 0.97]},
    index=["best", "close", "far"],
)


def test_paired_fold_tests_by_hand() -> None:
    table = paired_fold_tests(FOLDS, "best")
    # "close" leads by 0.02, 0.03, 0.01 -> mean 0.02, std 0.01
    row = table.loc["close"]
    assert row["lead of best"] == pytest.approx(0.02)
    assert row["std of lead"] == pytest.approx(0.01)
    t = 0.02 / (0.01 / math.sqrt(3))  # 3.4641, two degrees of freedom
    # two-sided p of Student's t with 2 dof has the closed form 1 - t / sqrt(t^2 + 2)
    assert row["p-value (paired t)"] == pytest.approx(1 - t / math.sqrt(t * t + 2))
    assert list(table.index) == ["close", "far"]


def test_paired_fold_tests_refuse_missing_folds() -> None:
    holes = FOLDS.copy()
    holes.loc["far", "u2"] = np.nan
    with pytest.raises(ValueError, match=r"\['far'\] lack a fold"):
        paired_fold_tests(holes, "best")
    with pytest.raises(KeyError, match="nobody"):
        paired_fold_tests(FOLDS, "nobody")


def test_bootstrap_of_identical_predictions_finds_no_difference() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, 500).astype(float)
    pred = y + rng.normal(size=500)
    result = bootstrap_rmse_difference(y, pred, pred, n_resamples=200)
    assert result.difference == result.low == result.high == 0.0
    assert result.p_value == 1.0


def test_bootstrap_sees_a_real_lead_and_repeats_with_its_seed() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(1, 6, 2000).astype(float)
    good, bad = y + rng.normal(0, 0.8, 2000), y + rng.normal(0, 1.0, 2000)
    result = bootstrap_rmse_difference(y, good, bad, n_resamples=300, seed=3)
    exact = np.sqrt(np.mean((bad - y) ** 2)) - np.sqrt(np.mean((good - y) ** 2))
    assert result.difference == pytest.approx(exact)
    assert 0 < result.low < result.difference < result.high
    assert result.p_value == pytest.approx(1 / 300)  # no resample crosses zero
    assert bootstrap_rmse_difference(y, good, bad, n_resamples=300, seed=3) == result


def test_bootstrap_refuses_mismatched_arrays() -> None:
    with pytest.raises(ValueError, match="one length"):
        bootstrap_rmse_difference(np.ones(3), np.ones(3), np.ones(4))


def test_best_per_column_knows_which_way_is_better() -> None:
    table = pd.DataFrame(
        {"RMSE": [0.9, 0.8], "accuracy": [0.5, 0.4], "train s": [1.0, 5.0]},
        index=["a", "b"],
    )
    best = best_per_column(table)
    assert best.to_dict() == {"RMSE": "b", "accuracy": "a", "train s": "a"}


def test_rank_agreement_signs() -> None:
    table = pd.DataFrame(
        {"RMSE": [0.9, 0.8, 0.7], "NDCG@10": [0.1, 0.2, 0.3], "MAE": [0.7, 0.6, 0.5]}
    )
    assert rank_agreement(table, "RMSE", "NDCG@10") == pytest.approx(1.0)
    assert rank_agreement(table, "RMSE", "MAE") == pytest.approx(1.0)
    table["NDCG@10"] = table["NDCG@10"][::-1].to_numpy()
    assert rank_agreement(table, "RMSE", "NDCG@10") == pytest.approx(-1.0)


def test_literature_cites_keys_of_the_bibliography() -> None:
    bibliography = (PROJECT_ROOT / "book" / "references.bib").read_text()
    for result in LITERATURE:
        assert f"{{{result.source}," in bibliography
    assert literature_table().loc["GLocal-K", "RMSE"] == 0.8889


def test_blend_finds_the_informative_component() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(1, 6, 3000).astype(float)
    parts = {
        "good": y + rng.normal(0, 0.5, 3000),
        "noise": rng.uniform(1, 5, 3000),
        "other": y + rng.normal(0, 0.9, 3000),
    }
    blend = fit_blend(parts, y)
    weights = dict(zip(blend.names, blend.weights[1:], strict=True))
    assert weights["good"] > 0.6 > abs(weights["noise"])
    rmse = {name: np.sqrt(np.mean((p - y) ** 2)) for name, p in parts.items()}
    blended = np.sqrt(np.mean((blend.predict(parts) - y) ** 2))
    assert blended < min(rmse.values())  # two partly independent errors average out
    assert blend.predict({n: np.full(2, 9.0) for n in blend.names}).max() <= 5.0


def test_blend_refuses_missing_or_mismatched_components() -> None:
    blend = fit_blend({"a": np.array([1.0, 2.0, 3.0])}, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(KeyError, match=r"\['a'\]"):
        blend.predict({"b": np.ones(3)})
    with pytest.raises(ValueError, match="3 ratings for 2"):
        fit_blend({"a": np.ones(3)}, np.ones(2))
    with pytest.raises(ValueError, match="at least one"):
        fit_blend({}, np.ones(2))
