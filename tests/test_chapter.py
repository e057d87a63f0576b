"""Chapter set-up: warnings reach the chapter's output once, on stdout."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from recsys_utils.chapter import paired_sentence, setup_chapter
from recsys_utils.metrics import UndefinedRatingMetricWarning


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
