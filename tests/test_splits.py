"""Splits of the real ratings: canonical folds u1..u5 and the random split."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys_utils.splits import (
    CANONICAL_FOLDS,
    RANDOM_FOLDS,
    SPLITS,
    Split,
    cold_start_split,
    cross_validation_folds,
    holdout,
    make_split,
)


@pytest.fixture(scope="module")
def splits(movielens) -> dict[str, Split]:
    return {name: make_split(movielens.ratings, name, seed=42) for name in SPLITS}


@pytest.mark.parametrize("name", CANONICAL_FOLDS)
def test_canonical_fold_sizes(splits: dict[str, Split], name: str) -> None:
    assert splits[name].sizes() == {"train": 70_000, "valid": 10_000, "test": 20_000}


def test_random_split_sizes(splits: dict[str, Split]) -> None:
    assert splits["random"].sizes() == {
        "train": 80_000,
        "valid": 10_000,
        "test": 10_000,
    }


def test_u1_test_part_is_first_20000_ratings(splits, movielens) -> None:
    test = splits["u1"].test
    assert test.index.equals(movielens.ratings.index[:20_000])
    pd.testing.assert_frame_equal(test, movielens.ratings.iloc[:20_000])


def test_u3_test_part_is_third_block_of_ratings(splits, movielens) -> None:
    assert splits["u3"].test.index.equals(movielens.ratings.index[40_000:60_000])


def test_fold_test_parts_partition_all_ratings(splits, movielens) -> None:
    tested = pd.Index([])
    for name in CANONICAL_FOLDS:
        tested = tested.append(splits[name].test.index)
    assert not tested.has_duplicates
    assert tested.sort_values().equals(movielens.ratings.index)


@pytest.mark.parametrize("name", SPLITS)
def test_parts_are_disjoint_and_cover_the_ratings(splits, movielens, name) -> None:
    split = splits[name]
    train, valid, test = (
        set(part.index) for part in (split.train, split.valid, split.test)
    )
    assert not train & valid
    assert not train & test
    assert not valid & test
    assert train | valid | test == set(movielens.ratings.index)


def test_random_split_is_reproducible_for_one_seed(splits, movielens) -> None:
    again = make_split(movielens.ratings, "random", seed=42)
    for part in ("train", "valid", "test"):
        assert getattr(again, part).index.equals(getattr(splits["random"], part).index)


def test_random_split_changes_with_the_seed(splits, movielens) -> None:
    other = make_split(movielens.ratings, "random", seed=43)
    assert not other.test.index.equals(splits["random"].test.index)
    assert not other.valid.index.equals(splits["random"].valid.index)


def test_validation_carve_out_depends_on_the_seed(splits, movielens) -> None:
    other = make_split(movielens.ratings, "u1", seed=43)
    assert other.test.index.equals(splits["u1"].test.index)
    assert not other.valid.index.equals(splits["u1"].valid.index)


def test_valid_fraction_sets_the_validation_size(movielens) -> None:
    split = make_split(movielens.ratings, "u2", seed=0, valid_fraction=0.2)
    assert split.sizes() == {"train": 60_000, "valid": 20_000, "test": 20_000}


def test_unknown_split_names_the_allowed_ones(movielens) -> None:
    with pytest.raises(ValueError, match="'u9' is unknown; use one of u1, .*random"):
        make_split(movielens.ratings, "u9", seed=0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_holdout_refuses_fraction_outside_open_interval(movielens, fraction) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        holdout(movielens.ratings, fraction, seed=0)


@pytest.mark.parametrize("kind", ["users", "movies"])
def test_cold_start_split_holds_out_whole_users_or_movies(movielens, kind) -> None:
    split = cold_start_split(
        movielens.ratings, kind=kind, fraction=0.2, max_item_ratings=30, seed=3
    )
    column = "user_id" if kind == "users" else "item_id"
    held = set(split.test[column])
    seen = set(split.train[column]) | set(split.valid[column])
    assert held and not held & seen
    assert len(split.train) + len(split.valid) + len(split.test) == 100_000
    counts = movielens.ratings[column].value_counts()
    if kind == "movies":
        assert counts[list(held)].max() <= 30
        eligible = (counts <= 30).sum()
        assert len(held) == round(0.2 * eligible)
    else:
        # every rating of a held-out user is a test rating
        assert len(split.test) == counts[list(held)].sum()
    again = cold_start_split(
        movielens.ratings, kind=kind, fraction=0.2, max_item_ratings=30, seed=3
    )
    pd.testing.assert_frame_equal(again.test, split.test)


def test_cold_start_split_refuses_bad_requests(movielens) -> None:
    with pytest.raises(ValueError, match="kind='items'"):
        cold_start_split(movielens.ratings, kind="items", fraction=0.1, seed=0)
    with pytest.raises(ValueError, match="holds out none"):
        cold_start_split(movielens.ratings, kind="users", fraction=0.0001, seed=0)


# --------------------------------------------------------------------------
# Random folds, the cross-validation of the releases other than 100k


def test_random_folds_test_every_rating_exactly_once(movielens) -> None:
    ratings = movielens.ratings.iloc[:1003]
    tests = [make_split(ratings, fold, seed=3).test for fold in RANDOM_FOLDS]
    held = pd.concat(tests).index
    assert held.is_unique and held.sort_values().equals(ratings.index)
    assert sorted(len(t) for t in tests) == [200, 200, 201, 201, 201]


def test_random_fold_carves_validation_from_training(movielens) -> None:
    ratings = movielens.ratings.iloc[:1000]
    split = make_split(ratings, "random2", seed=3, valid_fraction=0.1)
    assert split.name == "random2"
    assert split.sizes() == {"train": 700, "valid": 100, "test": 200}
    parts = [split.train.index, split.valid.index, split.test.index]
    assert sum(len(p) for p in parts) == len(parts[0].union(parts[1]).union(parts[2]))


def test_random_folds_depend_on_the_seed(movielens) -> None:
    ratings = movielens.ratings.iloc[:1000]
    first = make_split(ratings, "random1", seed=3).test.index
    assert first.equals(make_split(ratings, "random1", seed=3).test.index)
    assert not first.equals(make_split(ratings, "random1", seed=4).test.index)


def test_cross_validation_folds_are_canonical_only_for_100k() -> None:
    assert cross_validation_folds("ml-100k") == CANONICAL_FOLDS
    assert cross_validation_folds("ml-latest-small") == RANDOM_FOLDS
    assert RANDOM_FOLDS == ("random1", "random2", "random3", "random4", "random5")
