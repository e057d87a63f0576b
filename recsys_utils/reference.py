"""Published figures the book compares with, each with its citation key.

These are the only numbers in the book that the build does not compute;
every table that shows them says where they come from.
"""

from __future__ import annotations

import math

import pandas as pd

# The study this book rebuilds is cited as {cite}`diezmateo` (book/references.bib).

_METRICS = ("accuracy", "precision", "recall", "f1", "mae", "rmse")

# Results tables of the original study: overall metrics, then ROC AUC and F1
# per rating 1..5. Its protocol was a random train/validation/test split.
_ORIGINAL = {
    "ncf_classification": ((0.36, 0.34, 0.39, 0.36, 0.94, 1.12), (0.79, 0.68, 0.62, 0.62, 0.75), (0.30, 0.28, 0.30, 0.36, 0.48)),
    "ncf_regression": ((0.42, 0.50, 0.33, 0.34, 0.72, 0.92), (0.84, 0.76, 0.67, 0.64, 0.80), (0.15, 0.27, 0.44, 0.52, 0.27)),
    "hybrid_ncf_classification": ((0.39, 0.37, 0.43, 0.37, 0.80, 0.99), (0.86, 0.75, 0.67, 0.65, 0.80), (0.35, 0.30, 0.33, 0.40, 0.52)),
    "hybrid_ncf_regression": ((0.44, 0.49, 0.33, 0.33, 0.71, 0.91), (0.83, 0.76, 0.67, 0.65, 0.79), (0.34, 0.29, 0.34, 0.38, 0.52)),
    "autoencoder": ((0.43, 0.48, 0.34, 0.35, 0.71, 0.92), (0.83, 0.76, 0.67, 0.65, 0.80), (0.21, 0.27, 0.45, 0.51, 0.32)),
}  # fmt: skip


def original_study(model: str) -> dict:
    """The original study's row for ``model`` (for example ``"ncf_regression"``).

    Returns a dict with the six overall metrics and ``auc`` / ``f1_per_rating``
    keyed by rating.
    """
    if model not in _ORIGINAL:
        raise KeyError(
            f"the original study has no model {model!r}; known: {', '.join(_ORIGINAL)}"
        )
    overall, auc, f1 = _ORIGINAL[model]
    return {
        **dict(zip(_METRICS, overall, strict=True)),
        "auc": dict(zip(range(1, 6), auc, strict=True)),
        "f1_per_rating": dict(zip(range(1, 6), f1, strict=True)),
    }


def compare_with_original(model: str, measured: dict[str, dict]) -> pd.DataFrame:
    """Measured rows beside the original study's row, overall metrics only.

    ``measured`` maps a row label (for example ``"this book, random split"``)
    to a results dict with the keys of :data:`_METRICS`.
    """
    rows = {
        label: {m: metrics[m] for m in _METRICS} for label, metrics in measured.items()
    }
    rows["original study"] = {m: original_study(model)[m] for m in _METRICS}
    return pd.DataFrame(rows).T


def verdicts(model: str, measured: dict) -> pd.Series:
    """For each overall metric: is the measured value better, equal or worse?

    Lower is better for MAE and RMSE, higher for the rest; values are
    compared at the original's two decimals. A metric that is undefined for
    the measured model (None or NaN) is reported as "undefined".
    """
    original = original_study(model)
    out = {}
    for metric in _METRICS:
        value = measured[metric]
        if value is None or math.isnan(value):  # undefined for this model
            out[metric] = "undefined"
            continue
        ours, theirs = round(value, 2), original[metric]
        lower_is_better = metric in ("mae", "rmse")
        if ours == theirs:
            out[metric] = "equal"
        elif (ours < theirs) == lower_is_better:
            out[metric] = "better"
        else:
            out[metric] = "worse"
    return pd.Series(out, name="versus the original")


def per_rating_comparison(model: str, measured: dict) -> pd.DataFrame:
    """Per-rating ROC AUC and F1, measured beside the original study's.

    ``measured`` is a results dict with ``auc`` and ``f1_per_rating`` keyed by
    rating (ints or strings).
    """
    original = original_study(model)
    rows = {}
    for key, label in (("auc", "ROC AUC"), ("f1_per_rating", "F1")):
        ours = {int(r): v for r, v in measured[key].items()}
        rows[f"{label}, this book"] = ours
        rows[f"{label}, original study"] = original[key]
    return pd.DataFrame(rows).T.rename_axis(columns="rating")


def verdict_sentence(model: str, measured: dict) -> str:
    """One sentence saying where ``measured`` beats, matches or trails the original."""
    verdict = verdicts(model, measured)
    groups = {
        kind: [m for m, v in verdict.items() if v == kind]
        for kind in ("better", "equal", "worse", "undefined")
    }
    parts = [f"{kind} on {', '.join(groups[kind])}" for kind in groups if groups[kind]]
    return "At the original study's two decimals, it is " + "; ".join(parts) + "."


# The original study set its best five-class F1 beside an F1 quoted from a paper
# on autoencoder recommenders with natural-noise removal; both figures as the
# original study reports them {cite}`diezmateo`.
ORIGINAL_F1_QUOTE: dict[str, float] = {"ours": 0.37, "published": 0.73}
