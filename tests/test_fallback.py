"""The stated fallback for users and movies unseen in training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_utils.fallback import Fallback
from recsys_utils.metrics import RatingScale

# User 1 rated movies 10 and 11; user 2 rated movie 10; movie 12 and user 3 are unseen.
TRAIN = pd.DataFrame(
    {"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 10], "rating": [5, 5, 1, 3]}
)
ASKED = pd.DataFrame({"user_id": [1, 1, 3, 3], "item_id": [10, 12, 11, 12]})


def test_damped_means_by_hand() -> None:
    fallback = Fallback.from_ratings(TRAIN, damping=2.0)
    # global distribution: one 1, one 3, two 5s -> mean 3.5
    assert fallback.global_mean == pytest.approx(3.5)
    output, count = fallback.apply(ASKED, np.full(4, 9.0))
    # row 0: both known, the model's output stays
    # row 1: unseen movie -> user 1's damped mean (5 + 5 + 2 * 3.5) / (2 + 2)
    # row 2: unseen user -> movie 11's damped mean (5 + 2 * 3.5) / (1 + 2)
    # row 3: both unseen -> the global mean
    np.testing.assert_allclose(output, [9.0, 17 / 4, 12 / 3, 3.5])
    assert count.to_dict() == {
        "n_ratings": 4,
        "unseen_users": 2,
        "unseen_items": 2,
        "replaced": 3,
    }


def test_probabilities_get_the_damped_distribution() -> None:
    fallback = Fallback.from_ratings(TRAIN, damping=2.0)
    model = np.full((4, 5), 0.2)
    output, _ = fallback.apply(ASKED, model)
    np.testing.assert_allclose(output.sum(axis=1), 1.0)
    np.testing.assert_array_equal(output[0], model[0])
    # user 1: two 5s plus two pseudo-ratings spread as (1/4, 0, 1/4, 0, 1/2)
    np.testing.assert_allclose(output[1], [0.5 / 4, 0, 0.5 / 4, 0, 3 / 4])
    np.testing.assert_allclose(output[3], [0.25, 0, 0.25, 0, 0.5])
    assert not np.shares_memory(output, model)


def test_covers_marks_the_replaced_rows() -> None:
    fallback = Fallback.from_ratings(TRAIN)
    np.testing.assert_array_equal(fallback.covers(ASKED), [False, True, True, True])


def test_negative_damping_is_refused() -> None:
    with pytest.raises(ValueError, match="damping=-1"):
        Fallback.from_ratings(TRAIN, damping=-1)


def test_real_fold_counts_the_movies_missing_from_training(movielens) -> None:
    from recsys_utils.splits import make_split

    split = make_split(movielens.ratings, "u1", seed=42)
    fallback = Fallback.from_ratings(split.train)
    expected = (~split.test["item_id"].isin(split.train["item_id"])).sum()
    _, count = fallback.apply(split.test, np.full(len(split.test), 3.0))
    assert count.unseen_users == 0  # every u1 test user also rates in training
    assert count.unseen_items == count.replaced == expected > 0


def test_half_stars_get_a_distribution_over_ten_levels() -> None:
    half_stars = RatingScale(tuple(np.arange(1, 11) / 2))
    train = TRAIN.assign(rating=[4.5, 5.0, 0.5, 3.0])
    fallback = Fallback.from_ratings(train, damping=2.0, scale=half_stars)
    assert fallback.global_distribution.shape == (10,)
    assert fallback.global_mean == pytest.approx((4.5 + 5.0 + 0.5 + 3.0) / 4)
    output, _ = fallback.apply(ASKED, np.full((4, 10), 0.1))
    np.testing.assert_allclose(output.sum(axis=1), 1.0)
    # Movie 11 was rated 5.0 once: its damped distribution leans to the top level.
    assert output[2].argmax() == 9
