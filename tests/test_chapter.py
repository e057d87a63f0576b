"""Chapter set-up: warnings reach the chapter's output once, on stdout."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from recsys_utils.chapter import (
    folds_note,
    folds_phrase,
    paired_sentence,
    reference_note,
    setup_chapter,
)
from recsys_utils.experiment import CrossValidation
from recsys_utils.metrics import UndefinedRatingMetricWarning
from recsys_utils.params import RunParameters
from recsys_utils.splits import RANDOM_FOLDS


@pytest.fixture
def restore_showwarning():
    original = warnings.showwarning
    yield
    warnings.showwarning = original


def test_warnings_print_to_stdout_once(capsys, restore_showwarning) -> None:
    setup_chapter()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn(
                "rating 1 is never predicted",
                UndefinedRatingMetricWarning,
                stacklevel=1,
            )
        warnings.warn("another message", UndefinedRatingMetricWarning, stacklevel=1)
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        "UndefinedRatingMetricWarning: rating 1 is never predicted",
        "UndefinedRatingMetricWarning: another message",
    ]


def test_paired_sentence_reads_direction_and_significance() -> None:
    paired = pd.DataFrame(
        {
            "mean difference": [-0.012, -0.004, 0.0],
            "p-value (paired t)": [0.01, 0.4, 1.0],
        },
        index=["rmse", "f1", "mae"],
    )
    assert paired_sentence(paired, "rmse") == (
        "RMSE improves by 0.0120 on average (p = 0.010, consistent over the folds)"
    )
    assert paired_sentence(paired, "f1").startswith("macro F1 worsens by 0.0040")
    assert "within the noise" in paired_sentence(paired, "f1")
    assert paired_sentence(paired, "mae") == "MAE is unchanged"


class _Fold:
    """Just enough of an Outcome for folds_note: a split with sizes."""

    def __init__(self, n_test: int) -> None:
        self.split = type("S", (), {"sizes": lambda _: {"test": n_test}})()


def test_folds_note_describes_random_folds_from_their_sizes() -> None:
    sizes = [20, 20, 21, 21, 21]
    cv = CrossValidation(dict(zip(RANDOM_FOLDS, map(_Fold, sizes), strict=True)))
    note = folds_note(cv, RunParameters(dataset="ml-1m", split="random", seed=3))
    assert note.startswith(
        "ml-1m ships no canonical folds, so the folds random1 to random5 are random: "
        "one permutation of its 103 ratings, seeded by seed=3, cut into five test "
        "parts of 20 to 21 ratings"
    )
    assert folds_phrase("ml-1m") == "five random folds"
    assert folds_phrase("ml-100k") == "the five canonical folds"


def test_reference_note_names_both_releases() -> None:
    assert "measured on ml-100k; this run is on ml-25m" in reference_note("ml-25m")
