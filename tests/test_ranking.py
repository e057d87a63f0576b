"""Ranking metrics on lists small enough to check by hand, and the sampled protocol."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys_utils.metrics import UndefinedRatingMetricWarning
from recsys_utils.ranking import (
    Candidates,
    candidate_ranks,
    hit_rate_at_k,
    liked_f1,
    ndcg_at_k,
    ranking_report,
    sample_candidates,
    score_candidates,
)


def test_hit_rate_and_ndcg_by_hand() -> None:
    ranks = [0, 3, 12]
    assert hit_rate_at_k(ranks, 10) == pytest.approx(2 / 3)
    # 1/log2(0 + 2) = 1, 1/log2(3 + 2) = 0.430677, rank 12 is past k
    assert ndcg_at_k(ranks, 10) == pytest.approx((1 + 1 / math.log2(5) + 0) / 3)
    assert ndcg_at_k(ranks, 10) == pytest.approx(0.476892, abs=1e-6)


def test_the_cut_off_is_exclusive() -> None:
    assert hit_rate_at_k([9, 10], 10) == 0.5
    assert ndcg_at_k([9, 10], 10) == pytest.approx((1 / math.log2(11)) / 2)
    assert hit_rate_at_k([0, 0, 1], 1) == pytest.approx(2 / 3)
    assert ndcg_at_k([0, 0, 1], 1) == pytest.approx(2 / 3)


def test_a_split_tie_gets_a_fractional_rank() -> None:
    # rank 1.5: one negative above, one tied
    assert ndcg_at_k([1.5], 10) == pytest.approx(1 / math.log2(3.5))
    assert hit_rate_at_k([9.5, 10.5], 10) == 0.5


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_k_must_be_a_positive_integer(k) -> None:
    with pytest.raises(ValueError, match="k="):
        hit_rate_at_k([0, 1], k)


@pytest.mark.parametrize("ranks", [[], [-1, 2], [np.nan]])
def test_ranks_must_be_valid(ranks) -> None:
    with pytest.raises(ValueError, match="ranks"):
        ndcg_at_k(ranks, 10)


def test_ranks_count_higher_negatives_and_half_the_ties() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],  # best: rank 0
            [0.5, 0.9, 0.5, 0.1],  # one above, one tie: 1.5
            [0.5, 0.5, 0.5, 0.5],  # all tied: 1.5, never 0
            [0.0, 0.1, 0.2, 0.3],  # worst: 3
        ]
    )
    np.testing.assert_allclose(candidate_ranks(scores), [0, 1.5, 1.5, 3])


def test_ties_do_not_favour_the_positive() -> None:
    constant = np.full((5, 100), 3.0)
    assert hit_rate_at_k(candidate_ranks(constant), 10) == 0.0
    np.testing.assert_allclose(candidate_ranks(constant), 49.5)


def test_nan_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        candidate_ranks(np.array([[1.0, np.nan]]))


def catalogue(seed: int = 0) -> pd.DataFrame:
    """30 users, 200 movies, each user rating a random 20 to 80 of them."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, 31):
        n_rated = rng.integers(20, 81)
        for item in rng.choice(np.arange(1001, 1201), n_rated, replace=False):
            rows.append((user, int(item), int(rng.integers(1, 6))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return catalogue()


@pytest.fixture(scope="module")
def test_part(ratings) -> pd.DataFrame:
    return ratings.iloc[::4]


def test_cases_are_the_liked_test_ratings(ratings, test_part) -> None:
    candidates = sample_candidates(ratings, test_part, seed=0)
    liked = test_part[test_part["rating"] >= 4]
    assert candidates.item_id.shape == (len(liked), 100)
    assert candidates.n_cases == len(liked) and candidates.n_negatives == 99
    np.testing.assert_array_equal(candidates.user_id, liked["user_id"])
    np.testing.assert_array_equal(candidates.item_id[:, 0], liked["item_id"])
    assert (candidates.rating >= 4).all()


def test_negatives_are_distinct_and_never_rated_by_the_user(ratings, test_part):
    candidates = sample_candidates(ratings, test_part, seed=0)
    rated = set(zip(ratings["user_id"], ratings["item_id"], strict=True))
    all_items = set(ratings["item_id"])
    for user, row in zip(candidates.user_id, candidates.item_id, strict=True):
        negatives = row[1:]
        assert len(set(negatives)) == len(negatives)
        assert row[0] not in set(negatives)
        assert not any((user, item) in rated for item in negatives)
        assert set(negatives) <= all_items


def test_a_test_rating_missing_from_the_table_is_still_never_a_negative(ratings):
    test_part = pd.DataFrame({"user_id": [1], "item_id": [5000], "rating": [5]})
    for seed in range(20):
        candidates = sample_candidates(ratings, test_part, n_negatives=100, seed=seed)
        assert (candidates.item_id[0, 1:] != 5000).all()


def test_sampling_repeats_with_a_seed_and_changes_with_another(ratings, test_part):
    first, again, other = (
        sample_candidates(ratings, test_part, seed=seed) for seed in (7, 7, 8)
    )
    np.testing.assert_array_equal(first.item_id, again.item_id)
    assert not np.array_equal(first.item_id, other.item_id)


def test_negatives_are_roughly_uniform_over_unrated_movies() -> None:
    # One user who rated movie 1 of 1..5; 4 slots, 2 negatives: each of 2..5
    # should appear in half the draws.
    table = pd.DataFrame({"user_id": [1], "item_id": [1], "rating": [5]})
    table = pd.concat(
        [table, pd.DataFrame({"user_id": 2, "item_id": [2, 3, 4, 5], "rating": 1})]
    )
    test_part = pd.concat([table.iloc[:1]] * 4000, ignore_index=True)
    candidates = sample_candidates(table, test_part, n_negatives=2, seed=0)
    counts = np.bincount(candidates.item_id[:, 1:].ravel(), minlength=6)[2:]
    np.testing.assert_allclose(counts / 4000, 0.5, atol=0.03)


def test_a_user_with_too_few_unrated_movies_is_named(ratings, test_part) -> None:
    with pytest.raises(ValueError, match="fewer than n_negatives=190"):
        sample_candidates(ratings, test_part, n_negatives=190, seed=0)


def test_perfect_and_reversed_scorers(ratings, test_part) -> None:
    candidates = sample_candidates(ratings, test_part, seed=0)
    positives = candidates.item_id[:, 0]

    wanted = set(zip(candidates.user_id, positives, strict=True))

    def oracle(user_ids, item_ids):
        # 1 for a liked test movie, 0 for the rest: negatives are never rated
        return np.array(
            [float((u, i) in wanted) for u, i in zip(user_ids, item_ids, strict=True)]
        )

    def reversed_oracle(user_ids, item_ids):
        return -oracle(user_ids, item_ids)

    best = ranking_report(candidates, score_candidates(oracle, candidates))
    worst = ranking_report(candidates, score_candidates(reversed_oracle, candidates))
    assert best.hr == 1.0 and best.ndcg == 1.0
    assert worst.hr == 0.0 and worst.ndcg == 0.0
    assert best.n_cases == candidates.n_cases
    assert best.n_users == len(np.unique(candidates.user_id))


def test_score_candidates_batches_and_keeps_the_layout() -> None:
    candidates = Candidates(
        user_id=np.array([1, 2, 3]),
        item_id=np.array([[10, 11, 12], [20, 21, 22], [30, 31, 32]]),
        rating=np.array([5, 4, 4]),
    )
    sizes = []

    def predict_fn(user_ids, item_ids):
        sizes.append(len(user_ids))
        return user_ids * 1000.0 + item_ids

    scores = score_candidates(predict_fn, candidates, batch_size=6)
    assert sizes == [6, 3]
    np.testing.assert_array_equal(
        scores, candidates.user_id[:, None] * 1000.0 + candidates.item_id
    )
    with pytest.raises(ValueError, match="predict_fn returned shape"):
        score_candidates(lambda u, i: np.zeros(1), candidates)


def test_report_checks_the_shape_of_the_scores() -> None:
    candidates = Candidates(np.array([1]), np.array([[1, 2, 3]]), np.array([5]))
    report = ranking_report(candidates, np.array([[0.9, 0.1, 0.5]]), k=1)
    assert (report.hr, report.ndcg, report.k) == (1.0, 1.0, 1)
    assert report.summary() == {"HR@1": 1.0, "NDCG@1": 1.0}
    with pytest.raises(ValueError, match="scores has shape"):
        ranking_report(candidates, np.zeros((1, 4)))


def test_liked_f1_by_hand() -> None:
    y_true = np.array([5, 4, 3, 2, 4, 1])
    y_pred = np.array([4.2, 3.6, 4.0, 2.0, 4.9, 1.0])
    # liked truth: T T F F T F; liked prediction (>= 4): T F T F T F
    # tp = 2, fp = 1, fn = 1: precision 2/3, recall 2/3, F1 2/3
    assert liked_f1(y_true, y_pred) == pytest.approx(2 / 3)
    # threshold 3.5: prediction T T T F T F; tp 3, fp 1, fn 0: F1 = 6/7
    assert liked_f1(y_true, y_pred, threshold=3.5) == pytest.approx(6 / 7)
    assert liked_f1(y_true, y_true) == 1.0


def test_liked_f1_without_any_liked_rating_is_nan_with_a_warning() -> None:
    with pytest.warns(UndefinedRatingMetricWarning, match="liked F1 is undefined"):
        assert math.isnan(liked_f1([1, 2, 3], [2.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        liked_f1([1, 2], [1.0])
