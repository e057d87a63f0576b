"""Beyond-accuracy metrics against numbers worked out by hand."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest

from recsys_utils import beyond_accuracy
from recsys_utils.beyond_accuracy import (
    catalogue_coverage,
    genre_sets,
    intra_list_diversity,
    item_popularity,
    jaccard_distance,
    most_rated,
    novelty,
    popularity_share,
)
from recsys_utils.data import GENRES

LISTS = [[1, 2, 3], [2, 3, 4], [5]]
GENRE_SETS = {1: {"A"}, 2: {"A", "B"}, 3: {"C"}, 4: {"A", "B", "C"}, 5: {"A"}}
POPULARITY = {1: 0.5, 2: 0.25, 3: 1.0, 4: 0.125, 5: 0.5}


def test_coverage_counts_distinct_movies() -> None:
    assert catalogue_coverage(LISTS, n_items=10) == 0.5  # {1, 2, 3, 4, 5}
    assert catalogue_coverage([[7, 7]], n_items=4) == 0.25
    with pytest.raises(ValueError, match="n_items"):
        catalogue_coverage(LISTS, n_items=0)


def test_popularity_share_counts_slots() -> None:
    # Seven slots; 2 and 3 fill two in each of the first two lists.
    assert popularity_share(LISTS, {2, 3}) == pytest.approx(4 / 7)
    assert popularity_share(LISTS, set()) == 0.0
    assert popularity_share([[2, 2, 9]], [2]) == pytest.approx(2 / 3)


def test_jaccard_distance() -> None:
    assert jaccard_distance({"A"}, {"A", "B"}) == 0.5
    assert jaccard_distance({"A"}, {"C"}) == 1.0
    assert jaccard_distance(set(), set()) == 0.0


def test_intra_list_diversity_averages_pairs_then_lists() -> None:
    # [1, 2, 3]: 1-2 is 0.5, 1-3 and 2-3 are 1 -> 2.5 / 3.
    # [2, 3, 4]: 2-3 is 1, 2-4 is 1 - 2/3, 3-4 is 1 - 1/3 -> 2 / 3.
    # [5] has no pair and is skipped.
    expected = (2.5 / 3 + 2 / 3) / 2
    assert intra_list_diversity(LISTS, GENRE_SETS) == pytest.approx(expected)
    assert intra_list_diversity([[1, 5]], GENRE_SETS) == 0.0
    with pytest.raises(ValueError, match="no list has two movies"):
        intra_list_diversity([[1], [2]], GENRE_SETS)
    with pytest.raises(KeyError, match="movie 9"):
        intra_list_diversity([[1, 9]], GENRE_SETS)


def test_novelty_is_mean_self_information() -> None:
    # -log2 p: 1 -> 1, 2 -> 2, 3 -> 0, 4 -> 3, 5 -> 1 bit.
    # Lists: (1 + 2 + 0) / 3 = 1, (2 + 0 + 3) / 3 = 5/3, 1 -> mean 11/9.
    assert novelty(LISTS, POPULARITY) == pytest.approx(11 / 9)
    with pytest.raises(ValueError, match="movie 9 has popularity None"):
        novelty([[1, 9]], POPULARITY)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        novelty([[1]], {1: 0.0})


def test_a_dict_of_lists_is_read_like_a_list() -> None:
    by_user = dict(enumerate(LISTS, start=1))
    assert catalogue_coverage(by_user, 10) == catalogue_coverage(LISTS, 10)
    assert novelty(by_user, POPULARITY) == novelty(LISTS, POPULARITY)
    by_user_arrays = {user: np.array(items) for user, items in by_user.items()}
    assert intra_list_diversity(by_user_arrays, GENRE_SETS) == pytest.approx(
        intra_list_diversity(LISTS, GENRE_SETS)
    )
    with pytest.raises(ValueError, match="lists is empty"):
        catalogue_coverage({}, 10)


def test_descriptions_from_the_tables() -> None:
    items = pd.DataFrame({"item_id": [10, 20], "title": ["a", "b"]})
    items["release_year"] = pd.array([None, None], dtype="Int16")
    for genre in GENRES:
        items[genre] = [genre == "Drama", genre in ("Comedy", "Romance")]
    assert genre_sets(items) == {
        10: frozenset({"Drama"}),
        20: frozenset({"Comedy", "Romance"}),
    }
    ratings = pd.DataFrame(
        {"user_id": [1, 2, 3, 4, 1, 2, 1], "item_id": [10, 10, 10, 20, 20, 30, 30]}
    )
    assert item_popularity(ratings) == {10: 0.75, 20: 0.5, 30: 0.5}
    assert most_rated(ratings, 2) == {10, 20}  # 20 and 30 tie; the smaller id


def test_real_lists_are_scored(movielens) -> None:
    ratings = movielens.ratings
    popular = most_rated(ratings, 100)
    lists = [sorted(popular)[:10], sorted(popular)[10:20]]
    assert popularity_share(lists, popular) == 1.0
    assert catalogue_coverage(lists, len(movielens.items)) == pytest.approx(20 / 1682)
    # Star Wars (50) was rated by 583 of 943 users.
    assert novelty([[50]], item_popularity(ratings)) == pytest.approx(
        -math.log2(583 / 943)
    )
    assert 0 < intra_list_diversity(lists, genre_sets(movielens.items)) < 1


def test_docstring_examples() -> None:
    assert doctest.testmod(beyond_accuracy).failed == 0
