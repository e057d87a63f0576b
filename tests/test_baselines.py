"""Surprise baselines on a small synthetic table with planted user and movie biases."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from recsys_utils.baselines import (
    BASELINES,
    GRIDS,
    build_algo,
    fit_baseline,
    grid_settings,
    refit_baseline,
    to_trainset,
)
from recsys_utils.metrics import rmse
from recsys_utils.splits import holdout, make_split

# Small grids keep every fit here to milliseconds; the default grids get their
# own test for SVD and BaselineOnly.
SMALL_GRIDS = {
    "global mean": {},
    "BaselineOnly": {"reg_u": (5, 15), "reg_i": (5,)},
    "SVD": {"n_factors": (5,), "n_epochs": (10,), "reg_all": (0.02, 0.1)},
    "SVD++": {"n_factors": (5,), "n_epochs": (5,)},
    "KNNBaseline": {"k": (5, 10)},
}


def planted_ratings(seed: int = 0) -> pd.DataFrame:
    """40 users x 30 movies, half rated: 3.5 + user bias + movie bias + noise.

    The biases (sd 0.8) dwarf the noise (sd 0.4), so a model of biases must
    beat the global mean clearly on ratings it did not see.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 30
    user_bias = rng.normal(0, 0.8, n_users)
    item_bias = rng.normal(0, 0.8, n_items)
    users, items = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    users, items = users.ravel(), items.ravel()
    keep = rng.random(len(users)) < 0.5
    users, items = users[keep], items[keep]
    noise = rng.normal(0, 0.4, len(users))
    rating = np.clip(np.rint(3.5 + user_bias[users] + item_bias[items] + noise), 1, 5)
    return pd.DataFrame(
        {
            "user_id": users + 1,  # MovieLens ids start at 1
            "item_id": items + 101,  # and differ from the user ids here
            "rating": rating.astype(int),
            "timestamp": np.arange(len(users)),
        }
    )


@pytest.fixture(scope="module")
def parts() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, valid, held out) of the planted table: 60 / 20 / 20 per cent."""
    rest, held_out = holdout(planted_ratings(), 0.2, seed=1)
    train, valid = holdout(rest, 0.25, seed=2)
    return train, valid, held_out


@pytest.fixture(scope="module")
def fitted(parts) -> dict:
    train, valid, _ = parts
    return {
        name: fit_baseline(name, train, valid, seed=0, grid=SMALL_GRIDS[name])
        for name in BASELINES
    }


def test_biases_beat_the_global_mean_on_unseen_ratings(parts, fitted) -> None:
    held_out = parts[2]
    y_true = held_out["rating"].to_numpy()
    errors = {name: rmse(y_true, m.predict(held_out)) for name, m in fitted.items()}
    assert errors["BaselineOnly"] < errors["global mean"] - 0.3, errors
    for name in ("SVD", "SVD++", "KNNBaseline"):
        assert errors[name] < errors["global mean"] - 0.2, errors


def test_global_mean_predicts_the_mean_of_train_and_valid(parts, fitted) -> None:
    train, valid, held_out = parts
    mean = pd.concat([train, valid])["rating"].mean()
    np.testing.assert_allclose(fitted["global mean"].predict(held_out), mean)


@pytest.mark.parametrize("name", BASELINES)
def test_predictions_are_float64_within_the_scale(parts, fitted, name) -> None:
    y_pred = fitted[name].predict(parts[2])
    assert y_pred.dtype == np.float64
    assert y_pred.shape == (len(parts[2]),)
    assert y_pred.min() >= 1.0 and y_pred.max() <= 5.0


@pytest.mark.parametrize("name", BASELINES)
def test_fast_predictions_equal_surprise_predictions(parts, fitted, name) -> None:
    held_out = parts[2]
    model = fitted[name]
    expected = [
        model.algo.predict(u, i).est
        for u, i in zip(held_out["user_id"], held_out["item_id"], strict=True)
    ]
    np.testing.assert_allclose(model.predict(held_out), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", BASELINES)
def test_grid_table_has_every_setting_and_the_best_is_chosen(fitted, name) -> None:
    model = fitted[name]
    settings = grid_settings(SMALL_GRIDS[name])
    table = model.grid_table
    assert len(table) == len(settings)
    params = [{p: row[p] for p in SMALL_GRIDS[name]} for _, row in table.iterrows()]
    assert params == settings
    assert model.valid_rmse == table["valid_rmse"].min()
    best = table.loc[table["valid_rmse"].idxmin()]
    assert model.params == {p: best[p] for p in SMALL_GRIDS[name]}
    assert (table["fit_seconds"] > 0).all()


def test_default_grids_are_searched_whole(parts) -> None:
    train, valid, _ = parts
    for name in ("BaselineOnly", "SVD"):
        model = fit_baseline(name, train, valid, seed=0)
        n_settings = np.prod([len(v) for v in GRIDS[name].values()])
        assert len(model.grid_table) == n_settings
        combos = set(itertools.product(*GRIDS[name].values()))
        seen = set(model.grid_table[list(GRIDS[name])].itertuples(index=False))
        assert seen == combos


@pytest.mark.parametrize("name", BASELINES)
def test_refit_sees_train_and_valid(parts, fitted, name) -> None:
    train, valid, _ = parts
    assert fitted[name].algo.trainset.n_ratings == len(train) + len(valid)


@pytest.mark.parametrize("name", BASELINES)
def test_train_only_fit_is_the_chosen_setting_refitted_on_train(
    parts, fitted, name
) -> None:
    """The grid's winner, kept, predicts as a fresh fit of it on train alone would."""
    train, valid, held_out = parts
    chosen = fitted[name].train_only
    assert chosen.params == fitted[name].params
    assert chosen.algo.trainset.n_ratings == len(train)
    assert chosen.valid_rmse == fitted[name].valid_rmse
    fresh = refit_baseline(name, fitted[name].params, train, seed=0)
    np.testing.assert_allclose(
        chosen.predict(held_out), fresh.predict(held_out), rtol=0, atol=1e-12
    )


def test_valid_rmse_comes_from_the_train_only_fit(parts, fitted) -> None:
    train, valid, _ = parts
    model = fitted["BaselineOnly"]
    train_only = build_algo("BaselineOnly", model.params, seed=0)
    train_only.fit(to_trainset(train))
    y_true = valid["rating"].to_numpy()
    y_train_only = [
        train_only.predict(u, i).est
        for u, i in zip(valid["user_id"], valid["item_id"], strict=True)
    ]
    assert model.valid_rmse == pytest.approx(rmse(y_true, y_train_only))
    # The refit has seen the validation ratings, so it must score them better.
    assert rmse(y_true, model.predict(valid)) < model.valid_rmse


def test_unknown_users_and_items_are_counted_and_get_a_fallback(parts, fitted) -> None:
    train, valid, held_out = parts
    new = pd.DataFrame(
        {
            "user_id": [999, 999, 1, 1],
            "item_id": [101, 9999, 9999, 101],
            "rating": [3, 3, 3, 3],
        }
    )
    for name, model in fitted.items():
        assert model.n_unknown(new) == 3, name
        assert model.unknown(new["user_id"], new["item_id"]).tolist() == [
            True,
            True,
            True,
            False,
        ]
        assert model.n_unknown(held_out) == 0, name
        assert np.isfinite(model.predict(new)).all(), name
    mean = pd.concat([train, valid])["rating"].mean()
    # Neither id known: every model falls back to the global mean.
    for model in fitted.values():
        assert model.predict(new)[1] == pytest.approx(mean)
    # A known movie with an unknown user: mu + b_i. Surprise 1.1.5 computes this
    # fallback itself, so it never flags these rows as was_impossible.
    for name in ("BaselineOnly", "SVD", "SVD++", "KNNBaseline"):
        algo = fitted[name].algo
        b_i = algo.bi[algo.trainset.to_inner_iid(101)]
        assert fitted[name].predict(new)[0] == pytest.approx(np.clip(mean + b_i, 1, 5))
        assert not algo.predict(999, 101).details["was_impossible"]


@pytest.mark.parametrize("name", ["SVD", "SVD++"])
def test_a_seed_repeats_exactly_and_another_differs(parts, name) -> None:
    train, valid, held_out = parts
    first, again, other = (
        fit_baseline(name, train, valid, seed=seed, grid=SMALL_GRIDS[name]).predict(
            held_out
        )
        for seed in (3, 3, 4)
    )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("name", ["SVM", "svd", ""])
def test_an_unknown_name_is_named_in_a_one_line_error(parts, name) -> None:
    train, valid, _ = parts
    with pytest.raises(ValueError, match="is not a baseline; use one of") as error:
        fit_baseline(name, train, valid, seed=0)
    assert repr(name) in str(error.value)
    assert "\n" not in str(error.value)
    assert "SVD++" in str(error.value) and "global mean" in str(error.value)


def test_an_unknown_setting_fails_before_any_fit(parts) -> None:
    train, valid, _ = parts
    with pytest.raises(ValueError, match="SVD has no setting lr"):
        fit_baseline("SVD", train, valid, seed=0, grid={"lr": (0.01,)})
    with pytest.raises(ValueError, match="no value for k"):
        fit_baseline("KNNBaseline", train, valid, seed=0, grid={"k": ()})


def test_predict_pairs_wants_flat_arrays_of_one_length(fitted) -> None:
    with pytest.raises(ValueError, match="flat arrays"):
        fitted["SVD"].predict_pairs(np.array([1, 2]), np.array([101]))


def test_baseline_only_on_the_real_u1_fold(movielens) -> None:
    split = make_split(movielens.ratings, "u1", seed=42)
    model = fit_baseline(
        "BaselineOnly",
        split.train,
        split.valid,
        seed=42,
        grid={"n_epochs": (10,), "reg_u": (15,), "reg_i": (10,)},
    )
    assert 0.90 < model.valid_rmse < 0.97
    assert model.n_unknown(split.valid) == 0


@pytest.mark.parametrize("name", ["SVD", "KNNBaseline"])
def test_unclipped_scores_clip_to_the_predictions(parts, fitted, name) -> None:
    held_out = parts[2]
    model = fitted[name]
    raw = model.predict_pairs(held_out["user_id"], held_out["item_id"], clip=False)
    np.testing.assert_allclose(np.clip(raw, 1, 5), model.predict(held_out))
