"""Chapter set-up: warnings reach the chapter's output once, on stdout."""

from __future__ import annotations

import warnings

import pytest

from recsys_utils.chapter import setup_chapter
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
