"""Content features of the hybrid models."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_utils.data import GENRES, OCCUPATIONS, IdIndex
from recsys_utils.features import (
    UnknownCategoryWarning,
    build_features,
    item_features,
    user_feature_row,
    user_features,
)
from recsys_utils.models import neumf_builder
from recsys_utils.training import load_checkpoint, save_checkpoint, seeded


def tiny_tables():
    users = pd.DataFrame(
        {
            "user_id": [7, 3, 10],
            "age": [20, 40, 60],
            "gender": ["F", "M", "M"],
            "occupation": ["student", "astronaut", "writer"],
            "zip_code": ["1", "2", "3"],
        }
    )
    items = pd.DataFrame({"item_id": [5, 2], "title": ["b (1990)", "a"]})
    items["release_year"] = pd.array([1990, None], dtype="Int16")
    for genre in GENRES:
        items[genre] = [genre == "Drama", genre in ("Comedy", "Drama")]
    return users, items


def test_user_rows_follow_the_index_and_encode_each_feature() -> None:
    users, items = tiny_tables()
    index = IdIndex.from_tables(users, items)
    with pytest.warns(UnknownCategoryWarning, match="astronaut"):
        frame = user_features(users, index)
    assert list(frame.index) == [3, 7, 10]  # sorted ids = embedding rows
    assert frame["age"].tolist() == pytest.approx([0.0, -1.2247449, 1.2247449])
    assert frame["gender=F"].tolist() == [0.0, 1.0, 0.0]
    assert frame.loc[7, "occupation=student"] == 1.0
    assert frame.shape[1] == 1 + 1 + len(OCCUPATIONS) + 1


def test_unknown_occupation_goes_to_its_own_column() -> None:
    users, items = tiny_tables()
    with pytest.warns(UnknownCategoryWarning):
        frame = user_features(users, IdIndex.from_tables(users, items))
    occupation = frame.filter(like="occupation=")
    assert occupation.loc[3, "occupation=unknown"] == 1.0
    assert occupation.sum(axis=1).tolist() == [1.0, 1.0, 1.0]


def test_missing_year_is_flagged_and_set_to_the_mean() -> None:
    users, items = tiny_tables()
    frame = item_features(items, IdIndex.from_tables(users, items))
    assert list(frame.index) == [2, 5]
    assert frame.loc[2, "year missing"] == 1.0 and frame.loc[2, "year"] == 0.0
    assert frame.loc[5, "year missing"] == 0.0
    assert frame.loc[2, ["genre=Comedy", "genre=Drama"]].tolist() == [1.0, 1.0]
    assert frame.notna().all().all()


def test_real_features_have_no_gaps(movielens) -> None:
    index = IdIndex.from_tables(movielens.users, movielens.items)
    features = build_features(movielens.users, movielens.items, index)
    assert features.user.shape == (943, 24) and features.item.shape == (1682, 21)
    assert np.isfinite(features.user).all() and np.isfinite(features.item).all()
    # Movie 267 has no year: flagged, at the mean.
    row = index.item_index([267])[0]
    year_missing = features.item_names.index("year missing")
    assert features.item[row, year_missing] == 1.0


def test_hybrid_model_reads_the_features_and_survives_a_checkpoint(tmp_path) -> None:
    users, items = tiny_tables()
    index = IdIndex.from_tables(users, items)
    with pytest.warns(UnknownCategoryWarning):
        features = build_features(users, items, index)
    options = {
        "n_factors": 4,
        "mlp_layers": [8, 4],
        "fusion_size": 4,
        "feature_size": 3,
    }
    with seeded(0):
        model = neumf_builder(3, 2, features, **options)(3.5).eval()
    user, item = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1])
    before = model(user, item)

    save_checkpoint(tmp_path / "hybrid.pt", model)
    reloaded, _ = load_checkpoint(tmp_path / "hybrid.pt")
    assert torch.equal(reloaded(user, item), before)
    with (
        torch.no_grad(),
        seeded(1),
    ):  # the features matter: change them, change the output
        model.item_features.copy_(torch.randn_like(model.item_features) * 3)
    assert not torch.equal(model(user, item), before)


def test_a_newcomer_is_encoded_like_a_known_user() -> None:
    users, items = tiny_tables()
    with pytest.warns(UnknownCategoryWarning):
        frame = user_features(users, IdIndex.from_tables(users, items))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the table's astronaut is old news
        row = user_feature_row(users, age=20, gender="F", occupation="student")
    np.testing.assert_allclose(row, frame.loc[7].to_numpy(), atol=1e-6)
    with pytest.warns(UnknownCategoryWarning, match="pilot"):
        row = user_feature_row(users, occupation="pilot")
    named = pd.Series(row, index=frame.columns)
    assert named["occupation=unknown"] == 1.0
    assert named.filter(like="occupation=").sum() == 1.0
    # Left-out fields take the mean over the users: age 0, a third women.
    assert named["age"] == pytest.approx(0.0, abs=1e-6)
    assert named["gender=F"] == pytest.approx(1 / 3)


def test_a_newcomer_field_the_table_lacks_is_refused() -> None:
    users, _ = tiny_tables()
    with pytest.raises(ValueError, match='use "F" or "M"'):
        user_feature_row(users.query("user_id != 3"), gender="X")
    with pytest.raises(ValueError, match="has no age column"):
        user_feature_row(users[["user_id", "gender"]], age=30)
