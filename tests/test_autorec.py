"""Item-based AutoRec: learns, stops early, falls back for unseen movies, repeats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_utils.autorec import AutoRecConfig, fit_autorec
from recsys_utils.data import IdIndex
from recsys_utils.params import ParameterError

N_USERS, N_ITEMS = 60, 80
CONFIG = AutoRecConfig(hidden=16, l2=0.01, learning_rate=0.01, batch_size=16,
                       n_epochs=150, patience=15, seed=0)  # fmt: skip


@pytest.fixture(scope="module")
def planted():
    """Most ratings of a rank-2 structure; movie 80 never appears in training."""
    rng = np.random.default_rng(0)
    score = rng.normal(size=(N_USERS, 2)) @ rng.normal(size=(N_ITEMS, 2)).T
    rating = np.clip(np.rint(3 + score), 1, 5)
    user, item = (a.ravel() + 1 for a in np.indices((N_USERS, N_ITEMS)))
    table = pd.DataFrame({"user_id": user, "item_id": item, "rating": rating.ravel()})
    table = table.sample(frac=0.8, random_state=1)  # a sparse matrix, as in real data
    held = table["item_id"] == N_ITEMS
    order = rng.permutation(int((~held).sum()))
    rest = table[~held].iloc[order]
    n_valid = len(rest) // 5
    index = IdIndex(np.arange(1, N_USERS + 1), np.arange(1, N_ITEMS + 1))
    return rest.iloc[n_valid:], rest.iloc[:n_valid], table[held], index


def test_autorec_beats_the_mean_on_unseen_ratings(planted) -> None:
    train, valid, _, index = planted
    fitted = fit_autorec(train, valid, index, CONFIG)
    y = valid["rating"].to_numpy()
    model = np.sqrt(np.mean((fitted.predict(valid) - y) ** 2))
    mean = np.sqrt(np.mean((train["rating"].mean() - y) ** 2))
    assert model < 0.8 * mean
    assert fitted.history["val_rmse"].min() == pytest.approx(model, rel=1e-5)
    assert fitted.best_epoch == fitted.history["val_rmse"].idxmin() + 1
    assert fitted.predict(valid).min() >= 1 and fitted.predict(valid).max() <= 5


def test_a_movie_without_training_ratings_gets_the_mean(planted) -> None:
    train, valid, held, index = planted
    fitted = fit_autorec(train, valid, index, CONFIG)
    np.testing.assert_allclose(fitted.predict(held), train["rating"].mean(), rtol=1e-6)


def test_same_seed_same_predictions(planted) -> None:
    train, valid, _, index = planted
    short = AutoRecConfig(**{**CONFIG.__dict__, "n_epochs": 5})
    first = fit_autorec(train, valid, index, short).predict(valid)
    np.testing.assert_array_equal(
        first, fit_autorec(train, valid, index, short).predict(valid)
    )


@pytest.mark.parametrize(
    ("name", "value"), [("hidden", 0), ("l2", -1.0), ("batch_size", 2.5)]
)
def test_bad_setting_is_refused(name, value) -> None:
    with pytest.raises(ParameterError, match=f"parameter {name}="):
        AutoRecConfig(**{name: value})
