"""The original study's figures and the comparison with them."""

from __future__ import annotations

import math

import pytest

from recsys_utils.reference import (
    compare_with_original,
    original_study,
    verdict_sentence,
    verdicts,
)


def test_original_row_holds_the_published_table_values():
    row = original_study("hybrid_ncf_regression")
    assert (row["accuracy"], row["mae"], row["rmse"]) == (0.44, 0.71, 0.91)
    assert row["auc"][1] == 0.83 and row["f1_per_rating"][5] == 0.52


def test_unknown_model_is_refused_naming_the_known_ones():
    with pytest.raises(KeyError, match="ncf_regression"):
        original_study("svd")


def test_verdicts_know_which_direction_is_better():
    measured = {"accuracy": 0.45, "precision": 0.50, "recall": 0.30, "f1": 0.341,
                "mae": 0.70, "rmse": 0.95}  # fmt: skip
    got = verdicts("ncf_regression", measured)
    assert got.to_dict() == {
        "accuracy": "better", "precision": "equal", "recall": "worse",
        "f1": "equal", "mae": "better", "rmse": "worse",
    }  # fmt: skip


@pytest.mark.parametrize("undefined", [None, math.nan])
def test_undefined_metric_gets_its_own_verdict(undefined):
    measured = {"accuracy": 0.4, "precision": undefined, "recall": 0.3, "f1": 0.3,
                "mae": 0.7, "rmse": 0.9}  # fmt: skip
    assert verdicts("ncf_regression", measured)["precision"] == "undefined"


def test_comparison_table_puts_the_original_last():
    measured = {"ours": {"accuracy": 0.4, "precision": 0.5, "recall": 0.3, "f1": 0.3,
                         "mae": 0.7, "rmse": 0.9}}  # fmt: skip
    table = compare_with_original("autoencoder", measured)
    assert list(table.index) == ["ours", "original study"]
    assert table.loc["original study", "rmse"] == 0.92


def test_verdict_sentence_names_each_group():
    measured = {"accuracy": 0.45, "precision": 0.50, "recall": 0.30, "f1": None,
                "mae": 0.70, "rmse": 0.95}  # fmt: skip
    sentence = verdict_sentence("ncf_regression", measured)
    assert "better on accuracy, mae" in sentence
    assert "equal on precision" in sentence
    assert "worse on recall, rmse" in sentence
    assert "undefined on f1" in sentence
