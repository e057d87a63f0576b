"""Rating metrics, defined once and shared by every model of the book.

A model gives either a rating (regression) or probabilities over the rating
levels of its release (classification): the five whole stars 1..5 of 100k and
1M, or the ten half stars 0.5..5 of the later releases, a
:class:`RatingScale`. Both are scored with the same metrics:

* **rating error**: MAE and RMSE. A classifier's rating is its expected
  rating :math:`\\sum_r r\\,p_r`; its arg-max rating is reported beside it.
* **classes**: a regressor's class is its prediction rounded half up to the
  nearest level and clipped to the scale; a classifier's class is its most
  probable rating.
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


@dataclass(frozen=True)
class RatingScale:
    """The rating levels of a release, evenly spaced, lowest first.

    ``levels`` is ``(1, 2, 3, 4, 5)`` for the whole-star releases (100k, 1M)
    and ``(0.5, 1.0, ..., 5.0)`` for the half-star ones (10M and later).
    Build it from the ratings with :meth:`from_ratings`; a whole-star scale
    keeps Python ints, so class indices and dictionary keys are plain
    whole numbers.
    """

    levels: tuple[float, ...] = (1, 2, 3, 4, 5)

    def __post_init__(self) -> None:
        levels = tuple(self.levels)  # checkpoints hand over lists
        steps = np.diff(np.asarray(levels, dtype=float))
        if len(levels) < 2 or not np.allclose(steps, steps[0]) or steps[0] <= 0:
            raise ValueError(
                f"rating levels {levels!r} are not evenly spaced and increasing; "
                "give at least two, such as (1, 2, 3, 4, 5)"
            )
        if all(float(level).is_integer() for level in levels) and steps[0] == 1:
            levels = tuple(int(level) for level in levels)
        else:
            levels = tuple(float(level) for level in levels)
        object.__setattr__(self, "levels", levels)

    @classmethod
    def from_ratings(cls, ratings) -> RatingScale:
        """The scale of a release, read from its ratings.

        Whole stars when every rating is whole, half stars otherwise. The
        scale spans MovieLens' 1..5 (0.5..5 in half stars) and any rating
        beyond it, so a sample that happens to lack the lowest or highest
        level (a small validation part, say) still gets the release's scale:
        100k and 1M give 1..5, ml-latest-small 0.5..5.
        """
        values = np.unique(np.asarray(ratings, dtype=float))
        if len(values) == 0:
            raise ValueError("no ratings to read a scale from; pass some ratings")
        high = max(values.max(), 5.0)
        if np.all(values == np.round(values)):
            low = min(values.min(), 1.0)
            return cls(tuple(range(int(low), int(high) + 1)))
        low = min(values.min(), 0.5)
        return cls(tuple(np.arange(low, high + 0.25, 0.5).tolist()))

    @property
    def whole(self) -> bool:
        """True when the levels are whole numbers one apart, as 1..5 is."""
        return isinstance(self.levels[0], int)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def minimum(self) -> float:
        return self.levels[0]

    @property
    def maximum(self) -> float:
        return self.levels[-1]

    @property
    def step(self) -> float:
        return self.levels[1] - self.levels[0]

    @property
    def array(self) -> np.ndarray:
        """The levels as an array, shape (n_levels,)."""
        return np.asarray(self.levels)

    def label(self, level) -> str:
        """How a level is written in tables and column names: ``3``, ``3.5``."""
        return f"{level:g}"

    def describe(self) -> str:
        """A phrase for the prose: ``the 5 whole stars 1..5``."""
        kind = "whole" if self.whole else "half"
        return (
            f"the {self.n_levels} {kind} stars "
            f"{self.label(self.minimum)}..{self.label(self.maximum)}"
        )


#: The scale of 100k and 1M, the default wherever no scale is given.
FIVE_STARS = RatingScale()


class UndefinedRatingMetricWarning(UserWarning):
    """A metric is undefined for some rating and was reported as NaN."""


def rating_to_class(rating, scale: RatingScale = FIVE_STARS):
    """Class index 0..n_levels-1 of ratings; works on arrays and tensors alike.

    The one place where ratings become classes (:func:`class_to_rating` is
    the way back). On the whole-star scale an integer rating gives an
    integer index; on a half-star scale the index is rounded and integral.
    """
    is_tensor = hasattr(rating, "long")
    if scale.whole:
        # A float tensor of whole ratings (the training targets) becomes integers.
        if is_tensor and rating.is_floating_point():
            rating = rating.long()
        return rating - scale.minimum
    index = ((rating - scale.minimum) / scale.step).round()
    return index.long() if is_tensor else np.asarray(index).astype(int)


def class_to_rating(index, scale: RatingScale = FIVE_STARS):
    """Rating of class indices 0..n_levels-1."""
    if scale.whole:
        return index + scale.minimum
    return index * scale.step + scale.minimum


def argmax_rating(proba: np.ndarray, scale: RatingScale = FIVE_STARS) -> np.ndarray:
    """The most probable rating under class probabilities of shape (n, n_levels)."""
    return class_to_rating(np.asarray(proba).argmax(axis=1), scale)


def rating_classes(y_pred: np.ndarray, scale: RatingScale = FIVE_STARS) -> np.ndarray:
    """Round predicted ratings half up to a level and clip them to the scale, (n,)."""
    y_pred = np.asarray(y_pred, dtype=float)
    if scale.whole:
        return np.clip(np.floor(y_pred + 0.5), scale.minimum, scale.maximum).astype(int)
    steps = np.floor((y_pred - scale.minimum) / scale.step + 0.5)
    return np.clip(steps * scale.step + scale.minimum, scale.minimum, scale.maximum)


def expected_rating(proba: np.ndarray, scale: RatingScale = FIVE_STARS) -> np.ndarray:
    """Expected rating under class probabilities of shape (n, n_levels)."""
    return np.asarray(proba, dtype=float) @ scale.array


def closeness_scores(y_pred: np.ndarray, scale: RatingScale = FIVE_STARS) -> np.ndarray:
    """Per-rating scores of a regressor, -|y_pred - r|, shape (n, n_levels)."""
    return -np.abs(np.asarray(y_pred, dtype=float)[:, None] - scale.array[None, :])


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(skm.mean_absolute_error(y_true, y_pred))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(skm.root_mean_squared_error(y_true, y_pred))


def per_rating_auc(
    y_true: np.ndarray, scores: np.ndarray, scale: RatingScale = FIVE_STARS
) -> dict[float, float]:
    """One-vs-rest ROC AUC of each rating; NaN (with a warning) where undefined."""
    y_true = np.asarray(y_true)
    result = {}
    for position, rating in enumerate(scale.levels):
        positive = y_true == rating
        if positive.all() or not positive.any():
            label = scale.label(rating)
            warnings.warn(
                f"ROC AUC of rating {label} is undefined: the truth holds "
                f"{'only' if positive.all() else 'no'} ratings of {label}; reported as NaN",
                UndefinedRatingMetricWarning,
                stacklevel=2,
            )
            result[rating] = float("nan")
        else:
            result[rating] = float(skm.roc_auc_score(positive, scores[:, position]))
    return result


def _warn_undefined(
    y_true: np.ndarray, y_class: np.ndarray, scale: RatingScale
) -> None:
    absent = [r for r in scale.levels if not np.any(y_true == r)]
    never = [r for r in scale.levels if not np.any(y_class == r)]
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
    # Keyed by rating level: ints on the whole-star scale, floats on half stars.
    auc: dict[float, float]
    f1_per_rating: dict[float, float]
    precision_per_rating: dict[float, float]
    recall_per_rating: dict[float, float]
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dictionary (rating keys become strings, NaN becomes None)."""

        def clean(value):
            if isinstance(value, dict):
                return {
                    k if isinstance(k, str) else f"{k:g}": clean(v)
                    for k, v in value.items()
                }
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
    scale: RatingScale = FIVE_STARS,
) -> RatingReport:
    """Score predictions against true ratings on ``scale``.

    Parameters
    ----------
    y_true : array of shape (n,)
        True ratings, each one of ``scale.levels``.
    y_pred : array of shape (n,), optional
        A regressor's predicted ratings.
    proba : array of shape (n, n_levels), optional
        A classifier's probabilities of each level of ``scale``. Give exactly
        one of ``y_pred`` and ``proba``.
    scale : RatingScale
        The release's rating levels; the whole stars 1..5 by default.
    """
    if (y_pred is None) == (proba is None):
        raise ValueError(
            "give exactly one of y_pred (a regressor) and proba (a classifier)"
        )
    y_true = np.asarray(y_true)
    y_true = y_true.astype(int) if scale.whole else y_true.astype(float)
    extra: dict[str, float] = {}
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        if proba.shape != (len(y_true), scale.n_levels):
            raise ValueError(
                f"proba has shape {proba.shape}; expected "
                f"({len(y_true)}, {scale.n_levels}), one column per rating level"
            )
        y_rating, y_class, scores = (
            expected_rating(proba, scale),
            argmax_rating(proba, scale),
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
        y_class, scores = (
            rating_classes(y_rating, scale),
            closeness_scores(y_rating, scale),
        )

    _warn_undefined(y_true, y_class, scale)
    levels = scale.array
    if scale.whole:
        labels, true_class, pred_class = levels.tolist(), y_true, y_class
    else:
        # scikit-learn takes half stars for a continuous target: score class indices.
        labels = list(range(scale.n_levels))
        true_class, pred_class = (
            rating_to_class(y_true, scale),
            rating_to_class(y_class, scale),
        )

    def prf(average):
        return skm.precision_recall_fscore_support(
            true_class, pred_class, labels=labels, average=average, zero_division=np.nan
        )[:3]

    per_p, per_r, per_f = prf(None)
    # sklearn gives F1 = 0 for a rating absent from the truth but predicted; recall,
    # and so F1, is undefined there.
    per_f = np.where(np.isin(levels, y_true), per_f, np.nan)
    macro = [
        float(np.mean(values)) for values in (per_p, per_r, per_f)
    ]  # NaN if any is NaN
    weighted = prf("weighted")

    def by_rating(values):
        return {r: float(v) for r, v in zip(scale.levels, values, strict=True)}

    return RatingReport(
        n=len(y_true),
        accuracy=float(skm.accuracy_score(true_class, pred_class)),
        precision=macro[0],
        recall=macro[1],
        f1=macro[2],
        precision_weighted=float(weighted[0]),
        recall_weighted=float(weighted[1]),
        f1_weighted=float(weighted[2]),
        mae=mae(y_true, y_rating),
        rmse=rmse(y_true, y_rating),
        auc=per_rating_auc(y_true, scores, scale),
        f1_per_rating=by_rating(per_f),
        precision_per_rating=by_rating(per_p),
        recall_per_rating=by_rating(per_r),
        extra=extra,
    )
