"""Rating metrics, defined once and shared by every model of the book.

A model gives either a rating (regression) or probabilities over the five
ratings (classification). Both are scored with the same metrics:

* **rating error**: MAE and RMSE. A classifier's rating is its expected
  rating :math:`\\sum_r r\\,p_r`; its arg-max rating is reported beside it.
* **classes**: a regressor's class is its prediction rounded half up and
  clipped to 1..5; a classifier's class is its most probable rating.
  Accuracy, and precision, recall and F1 both macro-averaged (each rating
  counts the same) and weighted by the number of true ratings.
* **per rating**: one-vs-rest ROC AUC and F1 for each rating r. The AUC
  score of rating r is :math:`p_r` for a classifier and the closeness
  :math:`-|\\hat r - r|` for a regressor.

Where a metric is undefined (a rating absent from the truth, or never
predicted) the value is NaN and a :class:`UndefinedRatingMetricWarning`
says which; nothing crashes and nothing turns into a silent zero.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn import metrics as skm

RATINGS = np.arange(1, 6)


class UndefinedRatingMetricWarning(UserWarning):
    """A metric is undefined for some rating and was reported as NaN."""


def rating_to_class(rating):
    """Class index 0..4 of ratings 1..5; works on arrays and tensors alike.

    The one place where ratings become classes (:func:`class_to_rating` is
    the way back).
    """
    return rating - 1


def class_to_rating(index):
    """Rating 1..5 of class indices 0..4."""
    return index + 1


def argmax_rating(proba: np.ndarray) -> np.ndarray:
    """The most probable rating under class probabilities of shape (n, 5)."""
    return class_to_rating(np.asarray(proba).argmax(axis=1))


def rating_classes(y_pred: np.ndarray) -> np.ndarray:
    """Round predicted ratings half up and clip them to 1..5, shape (n,)."""
    return np.clip(np.floor(np.asarray(y_pred, dtype=float) + 0.5), 1, 5).astype(int)


def expected_rating(proba: np.ndarray) -> np.ndarray:
    """Expected rating under class probabilities of shape (n, 5)."""
    return np.asarray(proba, dtype=float) @ RATINGS


def closeness_scores(y_pred: np.ndarray) -> np.ndarray:
    """Per-rating scores of a regressor, -|y_pred - r|, shape (n, 5)."""
    return -np.abs(np.asarray(y_pred, dtype=float)[:, None] - RATINGS[None, :])


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(skm.mean_absolute_error(y_true, y_pred))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(skm.root_mean_squared_error(y_true, y_pred))


def per_rating_auc(y_true: np.ndarray, scores: np.ndarray) -> dict[int, float]:
    """One-vs-rest ROC AUC of each rating; NaN (with a warning) where undefined."""
    y_true = np.asarray(y_true)
    result = {}
    for position, rating in enumerate(RATINGS):
        positive = y_true == rating
        if positive.all() or not positive.any():
            warnings.warn(
                f"ROC AUC of rating {rating} is undefined: the truth holds "
                f"{'only' if positive.all() else 'no'} ratings of {rating}; reported as NaN",
                UndefinedRatingMetricWarning,
                stacklevel=2,
            )
            result[int(rating)] = float("nan")
        else:
            result[int(rating)] = float(
                skm.roc_auc_score(positive, scores[:, position])
            )
    return result


def _warn_undefined(y_true: np.ndarray, y_class: np.ndarray) -> None:
    absent = [int(r) for r in RATINGS if not np.any(y_true == r)]
    never = [int(r) for r in RATINGS if not np.any(y_class == r)]
    if absent:
        warnings.warn(
            f"ratings {absent} are absent from the truth: their recall and F1 are NaN",
            UndefinedRatingMetricWarning,
            stacklevel=3,
        )
    if never:
        warnings.warn(
            f"ratings {never} are never predicted: their precision is NaN",
            UndefinedRatingMetricWarning,
            stacklevel=3,
        )


@dataclass(frozen=True)
class RatingReport:
    """Every metric of one model on one set of ratings."""

    n: int
    accuracy: float
    precision: float  # macro
    recall: float  # macro
    f1: float  # macro
    precision_weighted: float
    recall_weighted: float
    f1_weighted: float
    mae: float
    rmse: float
    auc: dict[int, float]
    f1_per_rating: dict[int, float]
    precision_per_rating: dict[int, float]
    recall_per_rating: dict[int, float]
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dictionary (rating keys become strings, NaN becomes None)."""

        def clean(value):
            if isinstance(value, dict):
                return {str(k): clean(v) for k, v in value.items()}
            return None if isinstance(value, float) and np.isnan(value) else value

        return {name: clean(getattr(self, name)) for name in self.__dataclass_fields__}

    def summary(self) -> dict[str, float]:
        """The headline numbers, for a one-row table."""
        return {
            "RMSE": self.rmse,
            "MAE": self.mae,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "F1 (macro)": self.f1,
            "F1 (weighted)": self.f1_weighted,
        }


def rating_report(
    y_true: np.ndarray,
    *,
    y_pred: np.ndarray | None = None,
    proba: np.ndarray | None = None,
) -> RatingReport:
    """Score predictions against true ratings 1..5.

    Parameters
    ----------
    y_true : array of shape (n,)
        True ratings.
    y_pred : array of shape (n,), optional
        A regressor's predicted ratings.
    proba : array of shape (n, 5), optional
        A classifier's probabilities of ratings 1..5. Give exactly one of
        ``y_pred`` and ``proba``.
    """
    if (y_pred is None) == (proba is None):
        raise ValueError(
            "give exactly one of y_pred (a regressor) and proba (a classifier)"
        )
    y_true = np.asarray(y_true).astype(int)
    extra: dict[str, float] = {}
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        if proba.shape != (len(y_true), 5):
            raise ValueError(
                f"proba has shape {proba.shape}; expected ({len(y_true)}, 5)"
            )
        y_rating, y_class, scores = (
            expected_rating(proba),
            argmax_rating(proba),
            proba,
        )
        extra = {
            "mae_argmax": mae(y_true, y_class),
            "rmse_argmax": rmse(y_true, y_class),
        }
    else:
        y_rating = np.asarray(y_pred, dtype=float)
        if y_rating.shape != y_true.shape:
            raise ValueError(
                f"y_pred has shape {y_rating.shape}; expected {y_true.shape}"
            )
        y_class, scores = rating_classes(y_rating), closeness_scores(y_rating)

    _warn_undefined(y_true, y_class)
    labels = RATINGS.tolist()

    def prf(average):
        return skm.precision_recall_fscore_support(
            y_true, y_class, labels=labels, average=average, zero_division=np.nan
        )[:3]

    per_p, per_r, per_f = prf(None)
    # sklearn gives F1 = 0 for a rating absent from the truth but predicted; recall,
    # and so F1, is undefined there.
    per_f = np.where(np.isin(RATINGS, y_true), per_f, np.nan)
    macro = [
        float(np.mean(values)) for values in (per_p, per_r, per_f)
    ]  # NaN if any is NaN
    weighted = prf("weighted")

    def by_rating(values):
        return {int(r): float(v) for r, v in zip(RATINGS, values, strict=True)}

    return RatingReport(
        n=len(y_true),
        accuracy=float(skm.accuracy_score(y_true, y_class)),
        precision=macro[0],
        recall=macro[1],
        f1=macro[2],
        precision_weighted=float(weighted[0]),
        recall_weighted=float(weighted[1]),
        f1_weighted=float(weighted[2]),
        mae=mae(y_true, y_rating),
        rmse=rmse(y_true, y_rating),
        auc=per_rating_auc(y_true, scores),
        f1_per_rating=by_rating(per_f),
        precision_per_rating=by_rating(per_p),
        recall_per_rating=by_rating(per_r),
        extra=extra,
    )
