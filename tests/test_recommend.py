"""Recommendations from trained models: known users, similar movies, newcomers, CLI.

Most checks use a hand-made matrix factorisation on a six-movie catalogue,
whose predictions are set by hand (3 + item bias + user . item), so every
expected list can be written out. A tiny NeuMF and a tiny hybrid NeuMF,
trained for a few epochs on the u1 fold, check the same code on real data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_utils import __main__ as cli
from recsys_utils.data import GENRES, IdIndex, MovieLens
from recsys_utils.experiment import run_experiment
from recsys_utils.fallback import Fallback
from recsys_utils.features import build_features
from recsys_utils.metrics import UndefinedRatingMetricWarning
from recsys_utils.models import (
    AutoencoderConfig,
    AutoencoderRecommender,
    MatrixFactorization,
    MatrixFactorizationConfig,
    neumf_builder,
)
from recsys_utils.params import RunParameters
from recsys_utils.recommend import (
    POPULARITY_DAMPING,
    Recommender,
    add_user,
    item_vectors,
    load_recommender,
    model_label,
    pair_scorer,
    popular_movies,
    recommend,
    recommend_newcomer,
    score_items,
    similar_movies,
    top_n_lists,
    with_average_rows,
)
from recsys_utils.training import (
    CheckpointError,
    save_checkpoint,
    seeded,
    torch_threads,
)

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------
# A six-movie catalogue with a hand-made model

MOVIES = [  # item_id, title, genres
    (10, "Toy Story (1995)", ("Animation", "Children's", "Comedy")),
    (20, "Clueless (1995)", ("Comedy", "Romance")),
    (30, "Groundhog Day (1993)", ("Comedy",)),
    (40, "Shawshank Redemption, The (1994)", ("Drama",)),
    (50, "Schindler's List (1993)", ("Drama", "War")),
    (60, "Dead Man Walking (1995)", ("Drama",)),
]
COMEDIES, DRAMAS = (10, 20, 30), (40, 50, 60)


def tiny_data() -> MovieLens:
    """Three users; user 1 has rated every movie but 60."""
    items = pd.DataFrame(
        {
            "item_id": np.array([m[0] for m in MOVIES], dtype=np.int32),
            "title": [m[1] for m in MOVIES],
            "release_year": pd.array([int(m[1][-5:-1]) for m in MOVIES], dtype="Int16"),
        }
    )
    for genre in GENRES:
        items[genre] = [genre in m[2] for m in MOVIES]
    users = pd.DataFrame(
        {
            "user_id": np.array([1, 2, 3], dtype=np.int32),
            "age": np.array([20, 40, 60], dtype=np.int16),
            "gender": ["F", "M", "F"],
            "occupation": ["student", "writer", "retired"],
            "zip_code": ["1", "2", "3"],
        }
    )
    rows = [(1, 10, 5), (1, 20, 4), (1, 30, 5), (1, 40, 2), (1, 50, 1)]
    rows += [(2, 10, 4), (2, 20, 5), (3, 30, 3)]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    ratings = ratings.astype({"user_id": np.int32, "item_id": np.int32})
    ratings["rating"] = ratings["rating"].astype(np.int8)
    ratings["timestamp"] = np.arange(len(ratings), dtype=np.int64)
    return MovieLens(ratings, users, items, "grouplens-folder")


def hand_mf(
    item_bias=(0.0,) * 6,
    item_factors=((0.0, 0.0),) * 6,
    user_factors=((0.0, 0.0),) * 3,
    user_bias=(0.0,) * 3,
) -> MatrixFactorization:
    """Predicts 3 + user_bias + item_bias + user_factors . item_factors."""
    model = MatrixFactorization(MatrixFactorizationConfig(3, 6, n_factors=2))
    with torch.no_grad():
        model.output.linear.weight.fill_(1.0)
        model.output.linear.bias.zero_()
        model.output.offset.fill_(3.0)
        model.output.user_bias.weight.copy_(torch.tensor(user_bias)[:, None])
        model.output.item_bias.weight.copy_(torch.tensor(item_bias)[:, None])
        model.user_factors.weight.copy_(torch.tensor(user_factors))
        model.item_factors.weight.copy_(torch.tensor(item_factors))
    return model.eval()


@pytest.fixture(scope="module")
def tiny() -> MovieLens:
    return tiny_data()


# --------------------------------------------------------------------------
# Two tiny models trained on the real data


def _train(movielens: MovieLens, features=None):
    index = IdIndex.from_tables(movielens.users, movielens.items)
    build = neumf_builder(
        index.n_users,
        index.n_items,
        features,
        n_factors=8,
        mlp_layers=(16, 8),
        fusion_size=8,
        feature_size=8,
    )
    params = RunParameters(n_epochs=3, batch_size=4096, n_threads=1, patience=3)
    with warnings.catch_warnings():
        # Three epochs rarely predict a 1 or a 5; the scores do not matter here.
        warnings.simplefilter("ignore", UndefinedRatingMetricWarning)
        return run_experiment(movielens, params, build, verbose=False).fit.model


@pytest.fixture(scope="module")
def neumf(movielens):
    return _train(movielens)


@pytest.fixture(scope="module")
def hybrid(movielens):
    index = IdIndex.from_tables(movielens.users, movielens.items)
    return _train(movielens, build_features(movielens.users, movielens.items, index))


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


# --------------------------------------------------------------------------
# Known users


def test_recommend_ranks_unseen_movies_by_prediction(tiny) -> None:
    model = hand_mf(item_bias=(0.5, 1.0, -0.2, 0.8, 0.1, 2.5))
    table = recommend(model, 2, k=3, data=tiny)  # user 2 rated 10 and 20
    assert table["item_id"].tolist() == [60, 40, 50]
    # 60 scores 5.5: shown clipped to 5, still ranked first.
    assert table["predicted_rating"].tolist() == pytest.approx([5.0, 3.8, 3.1])
    assert list(table.columns) == [
        "item_id",
        "title",
        "release_year",
        "genres",
        "predicted_rating",
        "reason",
    ]


def test_recommend_returns_what_exists_when_k_is_larger(tiny) -> None:
    table = recommend(hand_mf(), 1, k=10, data=tiny)  # user 1 rated all but 60
    assert table["item_id"].tolist() == [60]


def test_equal_predictions_keep_item_id_order(tiny) -> None:
    table = recommend(hand_mf(), 3, k=10, data=tiny)  # user 3 rated 30
    assert table["item_id"].tolist() == [10, 20, 40, 50, 60]
    assert (table["predicted_rating"] == 3.0).all()


def test_equal_predictions_over_the_whole_catalogue(movielens) -> None:
    # 1682 equal scores: an unstable sort would shuffle them.
    flat = MatrixFactorization(MatrixFactorizationConfig(943, 1682, n_factors=2))
    torch.nn.init.zeros_(flat.user_factors.weight)
    rated = set(movielens.ratings.loc[movielens.ratings["user_id"] == 1, "item_id"])
    unseen = [i for i in movielens.items["item_id"] if i not in rated]
    table = recommend(flat.eval(), 1, k=200, data=movielens)
    assert table["item_id"].tolist() == unseen[:200]
    lists = top_n_lists(flat, [1], 200, movielens)
    assert lists[1].tolist() == unseen[:200]


def test_titles_genres_and_reason_of_a_known_movie(tiny) -> None:
    # User 3 rated only 30 (3 stars): liked nothing, so no reason is invented.
    table = recommend(hand_mf(item_bias=(1, 0, 0, 0, 0, 0)), 3, k=1, data=tiny)
    row = table.iloc[0]
    assert row["item_id"] == 10
    assert row["title"] == "Toy Story (1995)"
    assert row["release_year"] == 1995
    assert row["genres"] == "Animation, Children's, Comedy"
    assert row["reason"] == ""


def test_reason_names_the_most_similar_liked_movie(tiny) -> None:
    # User 2 liked 10 (4) and 20 (5); movie 30 points the way of 20 only.
    factors = ((1, 0), (0, 1), (0.1, 1), (1, 1), (-1, 0), (0, -1))
    table = recommend(
        hand_mf(item_bias=(0, 0, 1, 0, 0, 0), item_factors=factors), 2, k=1, data=tiny
    )
    assert table["item_id"].tolist() == [30]
    assert table["reason"].iloc[0] == (
        "like Clueless (1995) and Toy Story (1995), which you rated 5 and 4"
    )


def test_reason_falls_back_to_shared_genres(tiny) -> None:
    # Movie 30 points away from both liked movies: its genres speak instead.
    factors = ((1, 0), (0, 1), (-1, -1), (1, 1), (-1, 0), (0, -1))
    table = recommend(
        hand_mf(item_bias=(0, 0, 1, 0, 0, 0), item_factors=factors), 2, k=1, data=tiny
    )
    assert table["reason"].iloc[0] == "Comedy, like movies you rated 4+"


def test_recommend_on_real_data(neumf, movielens) -> None:
    table = recommend(neumf, 42, k=15, data=movielens)
    rated = set(movielens.ratings.loc[movielens.ratings["user_id"] == 42, "item_id"])
    assert len(table) == 15
    assert not rated & set(table["item_id"])
    assert table["predicted_rating"].is_monotonic_decreasing
    titles = movielens.items.set_index("item_id")["title"]
    assert table["title"].tolist() == titles.loc[table["item_id"]].tolist()
    assert table["reason"].str.startswith("like ").all()


def test_classifier_ranks_by_expected_rating(tiny) -> None:
    from recsys_utils.models import NeuMF, NeuMFConfig

    with seeded(0):
        model = NeuMF(
            NeuMFConfig(3, 6, n_factors=4, mlp_layers=(8, 4), task="classification")
        ).eval()
    scores = score_items(model, [2])[0]
    with torch.no_grad():
        proba = torch.softmax(model(torch.full((6,), 2), torch.arange(6)), dim=1)
    assert scores == pytest.approx((proba @ torch.arange(1.0, 6.0)).numpy())
    table = recommend(model, 3, k=5, data=tiny)
    assert table["predicted_rating"].tolist() == pytest.approx(
        sorted(np.delete(scores, 2), reverse=True)
    )


def test_pair_scorer_clips_like_the_chapters(tiny) -> None:
    index = IdIndex.from_tables(tiny.users, tiny.items)
    model = hand_mf(
        item_bias=(0.5, 0.0, 0.0, 0.0, 0.0, 3.0), user_bias=(0.0, -0.5, 0.0)
    )
    score = pair_scorer(model, index)
    # 3 + 0.5; 3 - 0.5; 3 + 3 clipped to the top of the scale.
    assert score(np.array([1, 2, 3]), np.array([10, 20, 60])) == pytest.approx(
        [3.5, 2.5, 5.0]
    )


def test_pair_scorer_applies_the_fallback_to_unseen_users_and_movies(tiny) -> None:
    index = IdIndex.from_tables(tiny.users, tiny.items)
    model = hand_mf(item_bias=(0.5,) * 6)
    # Nobody rated movie 60; leaving user 3 out makes them unseen as well.
    fallback = Fallback.from_ratings(tiny.ratings[tiny.ratings["user_id"] != 3])
    users, items = np.array([1, 3, 2]), np.array([10, 30, 60])
    scores = pair_scorer(model, index, fallback)(users, items)
    rule, count = fallback.apply(
        pd.DataFrame({"user_id": users, "item_id": items}), np.zeros(3)
    )
    assert count.replaced == 2
    assert scores[0] == pytest.approx(3.5)
    assert scores[1:] == pytest.approx(rule[1:])
    assert not np.allclose(scores[1:], 3.5)


def test_pair_scorer_of_a_classifier_is_its_expected_rating(tiny) -> None:
    from recsys_utils.models import NeuMF, NeuMFConfig

    index = IdIndex.from_tables(tiny.users, tiny.items)
    with seeded(0):
        model = NeuMF(
            NeuMFConfig(3, 6, n_factors=4, mlp_layers=(8, 4), task="classification")
        ).eval()
    scores = pair_scorer(model, index)(np.full(6, 3), np.array([m[0] for m in MOVIES]))
    with torch.no_grad():
        proba = torch.softmax(model(torch.full((6,), 2), torch.arange(6)), dim=1)
    assert scores == pytest.approx((proba @ torch.arange(1.0, 6.0)).numpy(), abs=1e-6)


def test_unknown_ids_and_bad_k_are_refused(tiny) -> None:
    model = hand_mf()
    with pytest.raises(KeyError, match="unknown user id 999"):
        recommend(model, 999, data=tiny)
    with pytest.raises(KeyError, match="unknown movie id 999"):
        similar_movies(model, 999, data=tiny)
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match="must be a whole number >= 1"):
            recommend(model, 1, k=bad, data=tiny)
        with pytest.raises(ValueError, match="must be a whole number >= 1"):
            similar_movies(model, 10, k=bad, data=tiny)


def test_model_of_other_data_is_refused(neumf, tiny) -> None:
    with pytest.raises(ValueError, match="pass the data the model was trained on"):
        recommend(neumf, 1, data=tiny)


# --------------------------------------------------------------------------
# Similar movies


def test_similar_movies_puts_the_nearest_first_and_leaves_the_movie_out(
    tiny,
) -> None:
    # 20 points almost the way of 10; 30 half-way; 40 across; 50, 60 opposite.
    factors = ((1, 0), (0.9, 0.1), (1, 1), (0, 1), (-1, 0.1), (-1, 0))
    table = similar_movies(hand_mf(item_factors=factors), 10, k=10, data=tiny)
    assert table["item_id"].tolist() == [20, 30, 40, 50, 60]
    cosine_20 = 0.9 / np.hypot(0.9, 0.1)
    assert table["similarity"].tolist() == pytest.approx(
        [cosine_20, 1 / np.sqrt(2), 0.0, -1 / np.hypot(1, 0.1), -1.0]
    )
    assert list(table.columns) == [
        "item_id",
        "title",
        "release_year",
        "genres",
        "similarity",
    ]
    assert similar_movies(hand_mf(item_factors=factors), 10, k=2, data=tiny)[
        "item_id"
    ].tolist() == [20, 30]


def test_item_vectors_of_each_model(neumf) -> None:
    vectors = item_vectors(neumf)
    assert vectors.shape == (1682, 8 + 16 // 2)
    np.testing.assert_array_equal(vectors, neumf.item_embedding.weight.detach())
    config = AutoencoderConfig(3, 6, n_factors=5, encoder_layers=(8,), latent_size=2)
    autoencoder = AutoencoderRecommender(config)
    assert item_vectors(autoencoder).shape == (6, 5)
    with pytest.raises(TypeError, match="no known item table"):
        item_vectors(torch.nn.Linear(2, 2))


# --------------------------------------------------------------------------
# Newcomers


def test_add_user_grows_every_user_table_and_leaves_the_original(neumf) -> None:
    before = {name: value.clone() for name, value in neumf.state_dict().items()}
    grown = add_user(neumf)
    assert grown.config.n_users == neumf.config.n_users + 1 == 944
    table, original = grown.user_embedding.weight, neumf.user_embedding.weight
    assert table.shape[0] == 944
    torch.testing.assert_close(table[:-1], original)
    torch.testing.assert_close(table[-1], original.mean(dim=0))
    assert grown.output.user_bias.weight.shape == (944, 1)
    assert grown.item_embedding.weight.shape[0] == 1682  # movies untouched
    assert neumf.config.n_users == 943
    for name, value in neumf.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_add_user_appends_a_feature_row_to_a_hybrid_model(hybrid) -> None:
    row = np.arange(hybrid.config.n_user_features, dtype=np.float32)
    grown = add_user(hybrid, row)
    assert grown.user_features.shape == (944, hybrid.config.n_user_features)
    np.testing.assert_array_equal(grown.user_features[-1].numpy(), row)
    torch.testing.assert_close(
        add_user(hybrid).user_features[-1], hybrid.user_features.mean(dim=0)
    )
    assert hybrid.user_features.shape[0] == 943
    with pytest.raises(ValueError, match="shape"):
        add_user(hybrid, row[:3])


def test_fold_in_follows_the_ratings(tiny) -> None:
    # Comedies point one way, dramas the other; known users differ along it.
    model = hand_mf(
        item_factors=((1, 0),) * 3 + ((-1, 0),) * 3,
        user_factors=((1, 0.5), (-1, -0.5), (0, 0)),
        user_bias=(0.2, -0.2, 0.0),
    )
    before = {name: value.clone() for name, value in model.state_dict().items()}
    result = recommend_newcomer(
        model, data=tiny, ratings={10: 5, 20: 5, 40: 1, 50: 1}, k=10
    )
    assert result.method == "fold-in"
    table = result.table.set_index("item_id")
    assert list(table.index) == [30, 60]  # the rated movies are left out
    # The mean user predicts 3 for both; the newcomer likes the comedy.
    assert (
        table.loc[30, "predicted_rating"]
        > 3.5
        > 2.5
        > table.loc[60, "predicted_rating"]
    )
    assert table.loc[30, "reason"] == (
        "like Toy Story (1995) and Clueless (1995), which you rated 5"
    )
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_fold_in_is_pulled_towards_the_mean_user(tiny) -> None:
    model = hand_mf(
        item_factors=((1, 0),) * 3 + ((-1, 0),) * 3,
        user_factors=((1, 0.5), (-1, -0.5), (0, 0)),
        user_bias=(0.2, -0.2, 0.0),
    )

    def predicted_comedy(ratings):
        table = recommend_newcomer(model, data=tiny, ratings=ratings).table
        return table.set_index("item_id").loc[30, "predicted_rating"]

    one = predicted_comedy({10: 5})
    three = predicted_comedy({10: 5, 20: 5, 40: 1})
    assert 3.0 < one < three < 5.0  # more evidence moves further, never to 5


def test_fold_in_on_a_trained_model(neumf, movielens) -> None:
    before = {name: value.clone() for name, value in neumf.state_dict().items()}
    movies = [1, 50, 100, 181, 258, 286]
    fans = recommend_newcomer(neumf, data=movielens, ratings=dict.fromkeys(movies, 5))
    haters = recommend_newcomer(
        neumf, data=movielens, ratings=pd.DataFrame({"item_id": movies, "rating": 1})
    )
    assert fans.method == haters.method == "fold-in"
    assert not set(movies) & set(fans.table["item_id"])
    assert (
        fans.table["predicted_rating"].mean() > haters.table["predicted_rating"].mean()
    )
    for name, value in neumf.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_demographics_drive_a_hybrid_model(hybrid, movielens) -> None:
    young = recommend_newcomer(
        hybrid, data=movielens, age=19, gender="F", occupation="student", k=20
    )
    old = recommend_newcomer(
        hybrid, data=movielens, age=70, gender="M", occupation="retired", k=20
    )
    assert young.method == old.method == "hybrid features"
    assert young.table["item_id"].tolist() != old.table["item_id"].tolist()
    index = IdIndex.from_tables(movielens.users, movielens.items)
    from recsys_utils.features import user_feature_row

    grown = add_user(
        hybrid,
        user_feature_row(movielens.users, age=19, gender="F", occupation="student"),
    )
    scores = score_items(grown, [943])[0]
    best = index.item_index(young.table["item_id"].to_numpy())
    assert young.table["predicted_rating"].to_numpy() == pytest.approx(
        np.clip(scores[best], 1, 5)
    )


def test_pure_model_with_demographics_falls_back_to_popularity(
    neumf, movielens
) -> None:
    result = recommend_newcomer(neumf, data=movielens, age=30, gender="F", k=5)
    assert result.method == "popularity"
    assert "reads no demographics" in result.note
    expected = popular_movies(movielens.ratings).head(5)
    assert result.table["item_id"].tolist() == expected["item_id"].tolist()
    assert recommend_newcomer(neumf, data=movielens).method == "popularity"


def test_popularity_is_a_damped_mean(tiny) -> None:
    table = popular_movies(tiny.ratings, damping=POPULARITY_DAMPING, min_ratings=2)
    mu = 29 / 8  # the eight ratings sum to 29
    m = POPULARITY_DAMPING
    # 10: 5 + 4, 20: 4 + 5, 30: 5 + 3; movies 40 and 50 have one rating.
    assert table["item_id"].tolist() == [10, 20, 30]  # 10 beats 20 on the id
    assert table["damped_mean"].tolist() == pytest.approx(
        [(9 + m * mu) / (2 + m), (9 + m * mu) / (2 + m), (8 + m * mu) / (2 + m)]
    )
    assert table["n_ratings"].tolist() == [2, 2, 2]


def test_newcomer_input_is_checked(tiny) -> None:
    model = hand_mf()
    with pytest.raises(KeyError, match="unknown item id"):
        recommend_newcomer(model, data=tiny, ratings={999: 5})
    with pytest.raises(ValueError, match="outside 1..5"):
        recommend_newcomer(model, data=tiny, ratings={10: 6})
    with pytest.raises(ValueError, match="must be a whole number >= 1"):
        recommend_newcomer(model, data=tiny, k=0)
    # No ratings at all is the popularity path, not an error.
    assert recommend_newcomer(model, data=tiny, ratings={}).method == "popularity"


# --------------------------------------------------------------------------
# Many users, checkpoints, the command line


def test_top_n_lists_match_recommend(tiny, neumf, movielens) -> None:
    model = hand_mf(item_bias=(0.5, 1.0, -0.2, 0.8, 0.1, 2.5))
    lists = top_n_lists(model, [3, 1, 2], 4, tiny)
    assert list(lists) == [3, 1, 2]
    for user, items in lists.items():
        expected = recommend(model, user, k=4, data=tiny)["item_id"].to_numpy()
        np.testing.assert_array_equal(items, expected)
    assert lists[1].tolist() == [60]
    users = movielens.users["user_id"].to_numpy()
    lists = top_n_lists(neumf, users, 10, movielens)
    assert len(lists) == 943 and all(len(items) == 10 for items in lists.values())
    for user in (1, 500, 943):
        expected = recommend(neumf, user, k=10, data=movielens)["item_id"].to_numpy()
        np.testing.assert_array_equal(lists[user], expected)


@pytest.fixture(scope="module")
def checkpoint(neumf, tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("rec") / "tiny.pt", neumf)


def test_recommender_from_a_checkpoint(checkpoint, neumf, movielens, tiny) -> None:
    recommender = Recommender.from_checkpoint(checkpoint, movielens)
    pd.testing.assert_frame_equal(
        recommender.recommend(42, 5), recommend(neumf, 42, 5, data=movielens)
    )
    assert recommender.similar_movies(1, 3)["item_id"].tolist() == (
        similar_movies(neumf, 1, 3, data=movielens)["item_id"].tolist()
    )
    assert recommender.recommend_newcomer(k=3).method == "popularity"
    with pytest.raises(CheckpointError, match="pass the data it was trained on"):
        load_recommender(checkpoint, tiny)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_recommender(checkpoint.with_name("absent.pt"), movielens)


def test_model_label_names_the_hybrid_models(neumf, hybrid) -> None:
    assert model_label(neumf) == "NeuMF"
    assert model_label(hybrid) == "hybrid NeuMF"
    features = torch.zeros(3, 2), torch.zeros(6, 1)
    with_features = AutoencoderRecommender(
        AutoencoderConfig(3, 6, n_user_features=2, n_item_features=1), *features
    )
    assert model_label(with_features) == "AutoencoderRecommender with features"
    assert model_label(hand_mf()) == "MatrixFactorization"


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "recsys_utils", "recommend", *arguments],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_prints_a_user_table(checkpoint, neumf, movielens) -> None:
    done = run_cli("--checkpoint", str(checkpoint), "--user", "42", "-k", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Top 3 unseen movies for user 42 (NeuMF)"
    assert lines[1].split()[:2] == ["item_id", "title"]
    expected = recommend(neumf, 42, k=3, data=movielens)
    for line, (_, row) in zip(lines[2:], expected.iterrows(), strict=True):
        assert line.split()[0] == str(row["item_id"])
        assert row["title"] in line and f"{row['predicted_rating']:.2f}" in line


def test_cli_refuses_an_unknown_user_in_one_line(checkpoint) -> None:
    done = run_cli("--checkpoint", str(checkpoint), "--user", "4242")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: unknown user id 4242;")
    assert len(done.stderr.strip().splitlines()) == 1


def test_cli_refuses_a_missing_checkpoint_in_one_line(tmp_path) -> None:
    done = run_cli("--checkpoint", str(tmp_path / "no.pt"), "--user", "1")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == (
        f"error: {tmp_path / 'no.pt'}: no such checkpoint; run the chapter that "
        "trains it first"
    )


# The remaining cases run in this process: a subprocess costs seconds of imports.


def test_cli_prints_similar_movies(checkpoint, capsys) -> None:
    argv = [
        "recommend",
        "--checkpoint",
        str(checkpoint),
        "--similar-to",
        "1",
        "-k",
        "2",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 movies most similar to Toy Story (1995)")
    assert len(out.splitlines()) == 4
    assert out.splitlines()[1].split() == [
        "item_id",
        "title",
        "release_year",
        "genres",
        "similarity",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--similar-to", "4242"), "error: unknown movie id 4242;"),
        (("--user", "42", "-k", "0"), "error: -k 0 must be >= 1"),
    ],
)
def test_cli_refuses_bad_input(checkpoint, capsys, arguments, message) -> None:
    assert cli.main(["recommend", "--checkpoint", str(checkpoint), *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message)
    assert len(captured.err.strip().splitlines()) == 1


def test_average_rows_replace_only_the_given_users_and_movies(hybrid) -> None:
    before = {name: value.clone() for name, value in hybrid.state_dict().items()}
    changed = with_average_rows(hybrid, users=[0, 5], items=[7])
    others = np.ones(943, dtype=bool)
    others[[0, 5]] = False
    table, original = changed.user_embedding.weight, hybrid.user_embedding.weight
    torch.testing.assert_close(table[0], original[torch.as_tensor(others)].mean(0))
    torch.testing.assert_close(table[5], table[0])
    torch.testing.assert_close(table[1], original[1])
    torch.testing.assert_close(
        changed.output.user_bias.weight[5], changed.output.user_bias.weight[0]
    )
    kept = np.ones(1682, dtype=bool)
    kept[7] = False
    torch.testing.assert_close(
        changed.item_embedding.weight[7],
        hybrid.item_embedding.weight[torch.as_tensor(kept)].mean(0),
    )
    # the hybrid model still tells two average users apart by their features
    pairs = (torch.tensor([0, 5]), torch.tensor([3, 3]))
    first, second = changed(*pairs)
    assert not torch.isclose(first, second)
    for name, value in hybrid.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
