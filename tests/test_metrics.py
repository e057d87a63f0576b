"""Rating metrics on arrays small enough to check by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from recsys_utils.metrics import (
    FIVE_STARS,
    RatingScale,
    UndefinedRatingMetricWarning,
    argmax_rating,
    class_to_rating,
    closeness_scores,
    expected_rating,
    mae,
    per_rating_auc,
    rating_classes,
    rating_report,
    rating_to_class,
    rmse,
)

no_undefined_metrics = pytest.mark.filterwarnings(
    "error::recsys_utils.metrics.UndefinedRatingMetricWarning"
)


@pytest.mark.parametrize(
    ("prediction", "rating"),
    [(1.5, 2), (2.5, 3), (3.5, 4), (2.49, 2), (0.2, 1), (-3.0, 1), (5.7, 5), (4.5, 5)],
)
def test_rating_classes_round_half_up_and_clip(prediction, rating) -> None:
    assert rating_classes(np.array([prediction])).tolist() == [rating]


def test_expected_rating_of_one_hot_is_that_rating() -> None:
    proba = np.eye(5)
    np.testing.assert_allclose(expected_rating(proba), [1, 2, 3, 4, 5])


def test_expected_rating_of_uniform_is_three() -> None:
    np.testing.assert_allclose(expected_rating(np.full((2, 5), 0.2)), [3.0, 3.0])


def test_expected_rating_of_mixture() -> None:
    assert expected_rating(np.array([[0.5, 0, 0, 0, 0.5]])).tolist() == [3.0]
    assert expected_rating(np.array([[0, 0.25, 0, 0.75, 0]])).tolist() == [3.5]


def test_mae_and_rmse() -> None:
    y_true, y_pred = np.array([1, 3, 5, 4]), np.array([2.0, 3.0, 3.0, 4.5])
    report = rating_report(np.array([1, 2, 3, 4, 5]), y_pred=np.array([1, 2, 3, 4, 5]))
    assert mae(y_true, y_pred) == pytest.approx((1 + 0 + 2 + 0.5) / 4)
    assert report.rmse == 0.0
    # squares 1, 0, 4, 0.25
    assert rmse(y_true, y_pred) == pytest.approx(math.sqrt(5.25 / 4))


def test_closeness_scores_are_negative_distances() -> None:
    np.testing.assert_allclose(
        closeness_scores(np.array([2.5])), [[-1.5, -0.5, -0.5, -1.5, -2.5]]
    )


# --------------------------------------------------------------------------
# Per-rating ROC AUC

Y_ALL = np.array([1, 2, 3, 4, 5, 1, 3, 5])


@no_undefined_metrics
def test_auc_of_perfect_scorer_is_one() -> None:
    scores = np.eye(5)[Y_ALL - 1]
    assert per_rating_auc(Y_ALL, scores) == dict.fromkeys(range(1, 6), 1.0)


@no_undefined_metrics
def test_auc_of_reversed_scorer_is_zero() -> None:
    scores = 1 - np.eye(5)[Y_ALL - 1]
    assert per_rating_auc(Y_ALL, scores) == dict.fromkeys(range(1, 6), 0.0)


@no_undefined_metrics
def test_auc_of_partly_right_scorer() -> None:
    y_true = np.array([1, 2, 3, 4, 5, 1])
    scores = np.zeros((6, 5))
    # rating 1: positives score 0.9 and 0.5; negatives 0.8, 0.1, 0.2, 0.3.
    # 0.9 beats all four negatives, 0.5 beats three: 7 of 8 pairs.
    scores[:, 0] = [0.9, 0.8, 0.1, 0.2, 0.3, 0.5]
    # rating 2: its one positive ties one negative and beats two of five: 2.5 / 5.
    scores[:, 1] = [0.3, 0.5, 0.5, 0.7, 0.1, 0.9]
    auc = per_rating_auc(y_true, scores)
    assert auc[1] == pytest.approx(7 / 8)
    assert auc[2] == pytest.approx(2.5 / 5)


@no_undefined_metrics
def test_regressor_auc_uses_closeness() -> None:
    # A regressor that predicts every rating exactly ranks it first for each rating.
    report = rating_report(Y_ALL, y_pred=Y_ALL.astype(float))
    assert report.auc == dict.fromkeys(range(1, 6), 1.0)


# --------------------------------------------------------------------------
# Reports


@no_undefined_metrics
def test_regression_report_by_hand() -> None:
    y_true = np.array([1, 2, 3, 4, 5, 5, 4, 3])
    y_pred = np.array([1.2, 2.5, 3.4, 3.5, 4.6, 4.4, 4.1, 2.4])
    # classes (half up): 1, 3, 3, 4, 5, 4, 4, 2 -> 5 of 8 right
    # rating:     1    2    3    4    5
    # precision:  1/1  0/1  1/2  2/3  1/1
    # recall:     1/1  0/1  1/2  2/2  1/2
    # F1:         1    0    1/2  4/5  2/3
    report = rating_report(y_true, y_pred=y_pred)
    assert report.n == 8
    assert report.accuracy == pytest.approx(5 / 8)
    assert report.precision == pytest.approx((1 + 0 + 1 / 2 + 2 / 3 + 1) / 5)
    assert report.recall == pytest.approx((1 + 0 + 1 / 2 + 1 + 1 / 2) / 5)
    assert report.f1 == pytest.approx((1 + 0 + 1 / 2 + 4 / 5 + 2 / 3) / 5)
    assert report.f1_per_rating == pytest.approx(
        {1: 1.0, 2: 0.0, 3: 0.5, 4: 0.8, 5: 2 / 3}
    )
    # errors .2 .5 .4 .5 .4 .6 .1 .6
    assert report.mae == pytest.approx(3.3 / 8)
    assert report.rmse == pytest.approx(math.sqrt(1.59 / 8))
    assert report.extra == {}


@no_undefined_metrics
def test_weighted_averages_by_hand() -> None:
    y_true = np.array([1, 2, 3, 4, 5, 5, 4, 3])
    y_pred = np.array([1.2, 2.5, 3.4, 3.5, 4.6, 4.4, 4.1, 2.4])
    report = rating_report(y_true, y_pred=y_pred)
    # supports 1, 1, 2, 2, 2 (of 8)
    assert report.recall_weighted == pytest.approx(
        (1 * 1 + 1 * 0 + 2 * 0.5 + 2 * 1 + 2 * 0.5) / 8
    )


@no_undefined_metrics
def test_classifier_report_uses_expected_rating_and_arg_max() -> None:
    y_true = np.array([1, 2, 3, 4, 5, 2, 5])
    proba = np.array(
        [
            [0.6, 0.4, 0.0, 0.0, 0.0],  # E 1.4, arg-max 1
            [0.0, 0.3, 0.7, 0.0, 0.0],  # E 2.7, arg-max 3
            [0.0, 0.0, 1.0, 0.0, 0.0],  # E 3.0, arg-max 3
            [0.0, 0.0, 0.2, 0.8, 0.0],  # E 3.8, arg-max 4
            [0.0, 0.0, 0.0, 0.6, 0.4],  # E 4.4, arg-max 4
            [0.0, 0.9, 0.1, 0.0, 0.0],  # E 2.1, arg-max 2
            [0.0, 0.0, 0.0, 0.1, 0.9],  # E 4.9, arg-max 5
        ]
    )
    report = rating_report(y_true, proba=proba)
    assert report.mae == pytest.approx((0.4 + 0.7 + 0 + 0.2 + 0.6 + 0.1 + 0.1) / 7)
    assert report.accuracy == pytest.approx(5 / 7)
    assert report.extra["mae_argmax"] == pytest.approx(2 / 7)
    assert report.extra["rmse_argmax"] == pytest.approx(math.sqrt(2 / 7))
    # rating 1 is scored with p1: its one positive has the highest p1
    assert report.auc[1] == 1.0


@pytest.mark.parametrize(
    "y_pred",
    [[1, 2, 3, 4, 5.0], [1, 2, 3, 4, 4.0]],
    ids=["rating-5-predicted", "rating-5-never-predicted"],
)
def test_rating_absent_from_truth_is_nan_not_zero(y_pred) -> None:
    y_true = np.array([1, 2, 3, 4, 4])
    with pytest.warns(UndefinedRatingMetricWarning) as caught:
        report = rating_report(y_true, y_pred=np.array(y_pred))
    messages = " ".join(str(warning.message) for warning in caught)
    assert "ratings [5] are absent from the truth" in messages
    assert "ROC AUC of rating 5 is undefined" in messages
    assert math.isnan(report.auc[5])
    assert math.isnan(report.recall_per_rating[5])
    assert math.isnan(report.f1_per_rating[5])
    assert math.isnan(report.recall)
    assert math.isnan(report.f1)
    assert report.f1_per_rating[1] == 1.0


def test_rating_never_predicted_has_nan_precision() -> None:
    y_true = np.array([1, 2, 3, 4, 5])
    with pytest.warns(UndefinedRatingMetricWarning) as caught:
        report = rating_report(y_true, y_pred=np.array([1, 2, 3, 4, 4.0]))
    assert [str(w.message) for w in caught] == [
        "ratings [5] are never predicted: their precision is NaN"
    ]
    assert math.isnan(report.precision_per_rating[5])
    assert math.isnan(report.precision)
    assert report.recall_per_rating[5] == 0.0
    # scores for 5 are -4, -3, -2, -1, -1: the true 5 ties one negative
    assert report.auc[5] == pytest.approx(3.5 / 4)


@pytest.mark.parametrize("shape", [(4, 5), (5, 4), (5,)])
def test_wrong_proba_shape_raises(shape) -> None:
    with pytest.raises(ValueError, match="proba has shape"):
        rating_report(np.array([1, 2, 3, 4, 5]), proba=np.full(shape, 0.2))


def test_wrong_prediction_shape_raises() -> None:
    with pytest.raises(ValueError, match="y_pred has shape"):
        rating_report(np.array([1, 2, 3]), y_pred=np.array([1.0, 2.0]))


@pytest.mark.parametrize("both", [True, False])
def test_exactly_one_of_prediction_and_proba(both: bool) -> None:
    y_true = np.array([1, 2, 3, 4, 5])
    given = {"y_pred": y_true * 1.0, "proba": np.eye(5)} if both else {}
    with pytest.raises(ValueError, match="exactly one of y_pred"):
        rating_report(y_true, **given)


def test_to_dict_is_json_ready() -> None:
    with pytest.warns(UndefinedRatingMetricWarning):
        report = rating_report(
            np.array([1, 2, 3, 4, 4]), y_pred=np.array([1, 2, 3, 4, 4.0])
        )
    document = report.to_dict()
    assert document["auc"]["5"] is None
    assert document["recall"] is None
    assert document["auc"]["1"] == 1.0
    assert set(document["f1_per_rating"]) == {"1", "2", "3", "4", "5"}
    assert document["n"] == 5
    json.dumps(document, allow_nan=False)  # no NaN left to write


def test_ratings_and_classes_map_both_ways() -> None:
    ratings = np.array([1, 3, 5])
    assert rating_to_class(ratings).tolist() == [0, 2, 4]
    assert class_to_rating(rating_to_class(ratings)).tolist() == [1, 3, 5]
    proba = np.array([[0.1, 0.6, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.2, 0.8]])
    assert argmax_rating(proba).tolist() == [2, 5]


# --------------------------------------------------------------------------
# Rating scales other than the whole stars 1..5

HALF_STARS = RatingScale(tuple(np.arange(1, 11) / 2))


def test_scale_is_read_from_the_ratings() -> None:
    assert RatingScale.from_ratings([1, 5, 3, 4, 2]) == FIVE_STARS
    assert RatingScale.from_ratings([1, 5, 3, 4, 2]).levels == (1, 2, 3, 4, 5)
    assert RatingScale.from_ratings([0.5, 3.5, 5.0]) == HALF_STARS
    # A sample may lack the extremes; the scale is still the release's.
    assert RatingScale.from_ratings([1.0, 2.5, 4.0]) == HALF_STARS
    assert RatingScale.from_ratings([2, 3, 4]) == FIVE_STARS


def test_scale_refuses_uneven_levels() -> None:
    with pytest.raises(ValueError, match=r"\(1, 2, 4\) are not evenly spaced"):
        RatingScale((1, 2, 4))


def test_half_star_classes_round_trip() -> None:
    ratings = np.array([0.5, 1.0, 3.5, 5.0])
    classes = rating_to_class(ratings, HALF_STARS)
    assert classes.tolist() == [0, 1, 6, 9]
    assert class_to_rating(classes, HALF_STARS).tolist() == ratings.tolist()


def test_half_star_rounding_goes_to_the_nearest_half_and_clips() -> None:
    y_pred = np.array([0.1, 0.74, 0.75, 3.3, 6.0])
    assert rating_classes(y_pred, HALF_STARS).tolist() == [0.5, 0.5, 1.0, 3.5, 5.0]


@no_undefined_metrics
def test_half_star_report_has_one_entry_per_level() -> None:
    y_true = np.array(HALF_STARS.levels * 2)
    proba = np.eye(10)[rating_to_class(y_true, HALF_STARS)]
    report = rating_report(y_true, proba=proba, scale=HALF_STARS)
    assert report.accuracy == 1.0 and report.mae == 0.0
    assert list(report.auc) == list(HALF_STARS.levels)
    assert list(report.to_dict()["f1_per_rating"]) == [
        "0.5", "1", "1.5", "2", "2.5", "3", "3.5", "4", "4.5", "5",
    ]  # fmt: skip
    regression = rating_report(y_true, y_pred=y_true + 0.2, scale=HALF_STARS)
    assert regression.f1 == 1.0


def test_half_star_proba_of_five_columns_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected \(2, 10\)"):
        rating_report([1.0, 2.5], proba=np.full((2, 5), 0.2), scale=HALF_STARS)
