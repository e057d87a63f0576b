r"""From a trained model to movie recommendations a person can read.

Every model of the book predicts a rating for a (user, movie) pair; a
recommendation is the ``k`` movies a user has not rated with the highest
prediction. A classifier ranks by its expected rating :math:`\sum_r r\,p_r`;
a regressor by its output before clipping to its scale ([1, 5] in whole stars),
so two movies both predicted above 5 keep the model's order. Ties are broken
by ``item_id``, ascending, so a list never depends on sorting accidents.

Three questions are answered here:

* :func:`recommend`: the best unseen movies for a known user, each with a
  short reason taken from the model's own item representations;
* :func:`similar_movies`: the nearest movies to a movie, by cosine
  similarity of those representations (:func:`item_vectors`);
* :func:`recommend_newcomer`: a list for someone the model never saw, by
  folding in a handful of ratings, by the hybrid model's demographic
  features, or by damped popularity, in that order of preference.

:func:`top_n_lists` scores many users at once for the beyond-accuracy
metrics of :mod:`recsys_utils.beyond_accuracy`, and :func:`load_recommender`
turns a chapter's checkpoint into a :class:`Recommender` without retraining.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from recsys_utils.data import IdIndex, MovieLens, genre_columns, load_movielens_100k
from recsys_utils.devices import model_device
from recsys_utils.fallback import Fallback
from recsys_utils.features import user_feature_row
from recsys_utils.metrics import (
    FIVE_STARS,
    RatingScale,
    expected_rating,
    rating_to_class,
)
from recsys_utils.models import AutoencoderRecommender, MatrixFactorization, NeuMF
from recsys_utils.training import (
    CheckpointError,
    RatingTensors,
    load_checkpoint,
    predict,
    seeded,
)

logger = logging.getLogger(__name__)

#: A movie rated at least this is one the user liked; reasons point to those.
LIKED_RATING = 4

#: Pseudo-ratings at the global mean added to each movie's ratings before
#: its mean ranks it for a newcomer: :math:`(\sum r + m\,\mu) / (n + m)`.
POPULARITY_DAMPING = 10.0
#: Movies with fewer ratings than this are left out of the popularity list.
POPULARITY_MIN_RATINGS = 20

#: Adam steps, learning rate and L2 weight of the fold-in (see :func:`fold_in`).
FOLD_IN_STEPS = 300
FOLD_IN_LEARNING_RATE = 0.05
FOLD_IN_L2 = 1.0

# Pairs scored per forward pass: about 65k, a few MB of activations for
# the book's models, so 943 users x 1682 movies take 25 passes.
_SCORE_BATCH = 65_536

Method = Literal["fold-in", "hybrid features", "popularity"]


@dataclass(frozen=True)
class Recommendations:
    """A newcomer's list and how it was made.

    Attributes
    ----------
    table : DataFrame
        ``item_id, title, release_year, genres, predicted_rating, reason``,
        best first.
    method : {"fold-in", "hybrid features", "popularity"}
        Which of the three paths of :func:`recommend_newcomer` made the list.
    note : str
        One sentence saying what the method did, for a reader.
    """

    table: pd.DataFrame
    method: Method
    note: str


# --------------------------------------------------------------------------
# What a model knows about movies and users


def model_label(model: nn.Module) -> str:
    """How to name ``model`` to a reader: its class, and whether it reads features.

    NeuMF with content features is the book's hybrid model ("hybrid NeuMF");
    an autoencoder that reads them says so too.
    """
    name = type(model).__name__
    config = model.config
    if not (config.n_user_features or config.n_item_features):
        return name
    return f"hybrid {name}" if isinstance(model, NeuMF) else f"{name} with features"


def item_vectors(model: nn.Module) -> np.ndarray:
    """The model's learned representation of every movie, shape (n_items, d).

    * :class:`~recsys_utils.models.NeuMF`: the GMF and MLP item embeddings
      side by side, ``d = n_factors + mlp_layers[0] // 2``;
    * :class:`~recsys_utils.models.MatrixFactorization`: the item factors;
    * :class:`~recsys_utils.models.AutoencoderRecommender`: the item
      embedding that enters the encoder.

    Biases and content features are not part of the vector: they say how
    well liked or what kind a movie is, not which movies it resembles in
    the eyes of the users.
    """
    if isinstance(model, NeuMF | AutoencoderRecommender):
        table = model.item_embedding
    elif isinstance(model, MatrixFactorization):
        table = model.item_factors
    else:
        raise TypeError(
            f"{type(model).__name__} has no known item table; use NeuMF, "
            "MatrixFactorization or AutoencoderRecommender"
        )
    return table.weight.detach().cpu().numpy().copy()  # a snapshot, not a view


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # A zero vector has no direction: its similarity to anything is 0.
    return vectors / np.where(norms > 0, norms, 1.0)


def _tables(
    model: nn.Module, side: Literal["user", "item"]
) -> list[tuple[str, nn.Embedding]]:
    """Every embedding table with one row per user (or movie), by its dotted name."""
    n_rows = model.config.n_users if side == "user" else model.config.n_items
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Embedding)
        and name.rpartition(".")[2].startswith(side)
        and module.num_embeddings == n_rows
    ]


def with_average_rows(
    model: nn.Module, *, users: Iterable[int] = (), items: Iterable[int] = ()
) -> nn.Module:
    """A copy of ``model`` in which the given users and movies are average ones.

    Rows of users or movies that had no training rating were never fitted
    (weight decay alone moved them). Here every embedding and bias row of the
    given dense ``users`` and ``items`` is set to the mean of the other rows
    of its table, the model's average user or movie. A hybrid model keeps
    their own feature rows, so only its feature branch tells them apart: the
    cold-start behaviour the hybrid models are meant to have.

    Returns
    -------
    nn.Module
        The copy, in evaluation mode; ``model`` is not touched.
    """
    changed = copy.deepcopy(model)
    for rows, tables in (
        (np.asarray(list(users), dtype=np.int64), _tables(changed, "user")),
        (np.asarray(list(items), dtype=np.int64), _tables(changed, "item")),
    ):
        if rows.size == 0:
            continue
        for _, table in tables:
            keep = np.ones(table.num_embeddings, dtype=bool)
            keep[rows] = False
            with torch.no_grad():
                weight = table.weight
                weight[torch.as_tensor(rows)] = weight[torch.as_tensor(keep)].mean(
                    dim=0
                )
    return changed.eval()


def add_user(
    model: nn.Module, user_features: np.ndarray | torch.Tensor | None = None
) -> nn.Module:
    """A copy of ``model`` with one more user, whose index is the old ``n_users``.

    The new row of every user table (embeddings and user bias) starts at the
    mean of the existing users' rows: the model's average user. A model that
    reads user features gets ``user_features`` as the new user's row, or the
    mean feature row when it is None. ``config.n_users`` grows by one. The
    original model is not touched.

    Parameters
    ----------
    model : nn.Module
        One of the book's models.
    user_features : array of shape (n_user_features,), optional
        The newcomer's encoded demographics (see
        :func:`recsys_utils.features.user_feature_row`).

    Returns
    -------
    nn.Module
        The grown copy, in evaluation mode.
    """
    config = model.config
    if user_features is not None and not config.n_user_features:
        raise ValueError(
            f"{type(model).__name__} reads no user features; leave user_features out "
            "or use a hybrid model"
        )
    grown = copy.deepcopy(model)
    for name, table in _tables(grown, "user"):
        weight = table.weight.detach()
        bigger = nn.Embedding(weight.shape[0] + 1, weight.shape[1]).to(weight)
        with torch.no_grad():
            bigger.weight[:-1] = weight
            bigger.weight[-1] = weight.mean(dim=0)
        parent, _, attribute = name.rpartition(".")
        setattr(grown.get_submodule(parent), attribute, bigger)
    if config.n_user_features:
        table = grown.user_features
        row = (
            table.mean(dim=0)
            if user_features is None
            else torch.as_tensor(user_features, dtype=table.dtype, device=table.device)
        )
        if tuple(row.shape) != (config.n_user_features,):
            raise ValueError(
                f"user_features has shape {tuple(row.shape)}; the model reads "
                f"({config.n_user_features},), encode it with user_feature_row"
            )
        grown.user_features = torch.cat([table, row[None, :]])
    grown.config = dataclasses.replace(config, n_users=config.n_users + 1)
    return grown.eval()


# --------------------------------------------------------------------------
# Scoring and ranking


@torch.no_grad()
def score_items(model: nn.Module, user_index: Iterable[int]) -> np.ndarray:
    """Ranking scores of every movie for each user, shape (n_given_users, n_items).

    The expected rating for a classifier; the unclipped output for a
    regressor. Users are dense indices; pairs go through the model in
    batches of about 65k, in evaluation mode.
    """
    user_index = np.asarray(list(user_index), dtype=np.int64)
    n_items = model.config.n_items
    device = next(model.parameters()).device
    items = torch.arange(n_items, device=device)
    users_per_batch = max(1, _SCORE_BATCH // n_items)
    was_training = model.training
    model.eval()
    scores = np.empty((len(user_index), n_items), dtype=np.float64)
    for start in range(0, len(user_index), users_per_batch):
        block = torch.as_tensor(
            user_index[start : start + users_per_batch], device=device
        )
        out = model(block.repeat_interleave(n_items), items.repeat(len(block)))
        if model.config.task == "classification":
            out = torch.softmax(out, dim=1) @ torch.as_tensor(
                model.config.scale.array, dtype=out.dtype, device=device
            )
        scores[start : start + len(block)] = (
            out.double().cpu().numpy().reshape(len(block), n_items)
        )
    model.train(was_training)
    return scores


def pair_scorer(
    model: nn.Module, index: IdIndex, fallback: Fallback | None = None
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Predicted ratings of flat arrays of raw user and movie ids.

    The function returned is a ``predict_fn`` for
    :func:`~recsys_utils.ranking.score_candidates`. It predicts as the
    chapters report: ratings clipped to the scale, the expected rating for a
    classifier. With ``fallback``, the pairs whose user or movie the
    fallback's training ratings never saw get its rule instead, as in the
    model chapters' test figures; without it they get the model's own output.
    """
    device = model_device(model)
    scale = model.config.scale

    def score(user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        pairs = pd.DataFrame({"user_id": user_ids, "item_id": item_ids, "rating": 0.0})
        output = predict(model, RatingTensors.from_frame(pairs, index, device))
        if fallback is not None:
            output, _ = fallback.apply(pairs, output)
        return expected_rating(output, scale) if output.ndim == 2 else output

    return score


def _top_k(scores: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores outside ``exclude``, best first.

    A stable sort of the negated scores keeps equal scores in position
    order, which is ``item_id`` order because :class:`IdIndex` sorts ids.
    """
    order = np.argsort(-scores, kind="stable")
    return order[~exclude[order]][:k]


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k={k!r} must be a whole number >= 1")
    return int(k)


def _index(data: MovieLens, index: IdIndex | None, model: nn.Module) -> IdIndex:
    index = index or IdIndex.from_tables(data.users, data.items)
    sizes = (model.config.n_users, model.config.n_items)
    if sizes != (index.n_users, index.n_items):
        raise ValueError(
            f"the model has {sizes[0]} users and {sizes[1]} movies, the data "
            f"{index.n_users} and {index.n_items}; pass the data the model was "
            "trained on"
        )
    return index


def _user_position(index: IdIndex, user_id: int) -> int:
    try:
        return int(index.user_index([user_id])[0])
    except KeyError:
        raise KeyError(
            f"unknown user id {user_id}; use an id of the users table "
            f"({index.user_ids[0]}..{index.user_ids[-1]}) or recommend_newcomer"
        ) from None


def _item_position(index: IdIndex, item_id: int) -> int:
    try:
        return int(index.item_index([item_id])[0])
    except KeyError:
        raise KeyError(
            f"unknown movie id {item_id}; use an id of the items table "
            f"({index.item_ids[0]}..{index.item_ids[-1]})"
        ) from None


def _genre_names(items: pd.DataFrame) -> pd.Series:
    """Each movie's genres as a short string, "Comedy, Romance", by item_id."""
    genres = genre_columns(items)
    flags = items.set_index("item_id")[genres].to_numpy(dtype=bool)
    return pd.Series(
        [
            ", ".join(g for g, on in zip(genres, row, strict=True) if on)
            for row in flags
        ],
        index=items["item_id"].to_numpy(),
    )


def _movie_table(data: MovieLens, item_ids: np.ndarray) -> pd.DataFrame:
    """``item_id, title, release_year, genres`` of the given movies, in that order."""
    items = data.items.set_index("item_id")
    return pd.DataFrame(
        {
            "item_id": np.asarray(item_ids, dtype=np.int64),
            "title": items.loc[item_ids, "title"].to_numpy(),
            "release_year": items.loc[item_ids, "release_year"].array,
            "genres": _genre_names(data.items).loc[item_ids].to_numpy(),
        }
    )


def _rated(data: MovieLens, user_id: int) -> pd.DataFrame:
    ratings = data.ratings
    return ratings.loc[ratings["user_id"] == user_id, ["item_id", "rating"]]


# --------------------------------------------------------------------------
# Reasons


def _title_list(titles: list[str]) -> str:
    return (
        titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} and {titles[-1]}"
    )


def _reasons(
    model: nn.Module,
    data: MovieLens,
    index: IdIndex,
    recommended: np.ndarray,
    rated: pd.DataFrame,
    n_examples: int = 2,
) -> list[str]:
    """A few words per recommended movie (dense indices) saying why.

    The liked movies (rated at least :data:`LIKED_RATING`) most similar to
    it in the model's item space, by cosine; where none is similar (cosine
    <= 0) or the model has no item table, the genres it shares with the
    liked movies. Empty when the user liked nothing.
    """
    liked = rated[rated["rating"] >= LIKED_RATING]
    if liked.empty or len(recommended) == 0:
        return [""] * len(recommended)
    liked_position = index.item_index(liked["item_id"].to_numpy())
    liked_rating = liked["rating"].to_numpy()
    titles = data.items.set_index("item_id")["title"]
    try:
        unit = _unit_rows(item_vectors(model))
        similarity = unit[recommended] @ unit[liked_position].T  # (k, n_liked)
    except TypeError:
        similarity = np.zeros((len(recommended), len(liked_position)))

    genres = genre_columns(data.items)
    flags = data.items.set_index("item_id")[genres]
    liked_counts = flags.loc[liked["item_id"]].sum()
    reasons = []
    for row, position in enumerate(recommended):
        # Most similar first; among equals, the higher rating.
        order = np.lexsort((-liked_rating, -similarity[row]))
        best = [j for j in order[:n_examples] if similarity[row, j] > 0]
        if best:
            names = [titles.loc[index.item_id(liked_position[j])] for j in best]
            scores = sorted({int(liked_rating[j]) for j in best}, reverse=True)
            rated_as = " and ".join(str(s) for s in scores)
            reasons.append(f"like {_title_list(names)}, which you rated {rated_as}")
            continue
        own = flags.loc[index.item_id(position)]
        shared = liked_counts[own[own].index]
        shared = shared[shared > 0].sort_values(ascending=False, kind="stable")
        reasons.append(
            f"{_title_list(list(shared.index[:n_examples]))}, like movies you rated "
            f"{LIKED_RATING}+"
            if len(shared)
            else ""
        )
    return reasons


# --------------------------------------------------------------------------
# Known users and movies


def recommend(
    model: nn.Module,
    user_id: int,
    k: int = 10,
    *,
    data: MovieLens,
    index: IdIndex | None = None,
) -> pd.DataFrame:
    """The ``k`` best movies a known user has not rated, best first.

    Parameters
    ----------
    model : nn.Module
        A trained model of the book.
    user_id : int
        A MovieLens user id.
    k : int
        How many movies; fewer come back when the user has rated all but a
        few of the catalogue.
    data : MovieLens
        The release the model was trained on; every rating in
        ``data.ratings`` (training, validation and test alike) counts as
        seen.
    index : IdIndex, optional
        The model's id index; built from ``data`` when left out.

    Returns
    -------
    DataFrame
        ``item_id, title, release_year, genres, predicted_rating, reason``.
        ``predicted_rating`` is the expected rating of a classifier, the
        output clipped to its scale (1..5 in whole stars) of a regressor; rows
        follow the unclipped score, ties by ``item_id``.

    Raises
    ------
    KeyError
        For an unknown user id.
    ValueError
        For ``k < 1`` or data that does not match the model.
    """
    k = _check_k(k)
    index = _index(data, index, model)
    position = _user_position(index, user_id)
    rated = _rated(data, user_id)
    seen = np.zeros(index.n_items, dtype=bool)
    seen[index.item_index(rated["item_id"].to_numpy())] = True
    scores = score_items(model, [position])[0]
    return _ranked_table(model, data, index, scores, seen, k, rated)


def _ranked_table(
    model: nn.Module,
    data: MovieLens,
    index: IdIndex,
    scores: np.ndarray,
    seen: np.ndarray,
    k: int,
    rated: pd.DataFrame,
) -> pd.DataFrame:
    best = _top_k(scores, seen, k)
    table = _movie_table(data, index.item_id(best))
    scale = model.config.scale
    table["predicted_rating"] = np.clip(scores[best], scale.minimum, scale.maximum)
    table["reason"] = _reasons(model, data, index, best, rated)
    return table


def similar_movies(
    model: nn.Module,
    item_id: int,
    k: int = 10,
    *,
    data: MovieLens,
    index: IdIndex | None = None,
) -> pd.DataFrame:
    r"""The ``k`` movies nearest to one movie in the model's item space.

    Similarity is the cosine of the item vectors of :func:`item_vectors`,
    :math:`\cos(q_a, q_b) = q_a^\top q_b / (\|q_a\| \|q_b\|)`, in [-1, 1];
    the movie itself is left out, ties go to the smaller ``item_id``.

    Returns
    -------
    DataFrame
        ``item_id, title, release_year, genres, similarity``, most similar
        first.

    Raises
    ------
    KeyError
        For an unknown movie id.
    ValueError
        For ``k < 1``.
    """
    k = _check_k(k)
    index = _index(data, index, model)
    position = _item_position(index, item_id)
    unit = _unit_rows(item_vectors(model))
    similarity = unit @ unit[position]  # (n_items,)
    itself = np.zeros(len(similarity), dtype=bool)
    itself[position] = True
    best = _top_k(similarity, itself, k)
    table = _movie_table(data, index.item_id(best))
    table["similarity"] = similarity[best]
    return table


# --------------------------------------------------------------------------
# Newcomers


def _as_ratings(
    ratings: Mapping[int, float] | pd.DataFrame, scale: RatingScale = FIVE_STARS
) -> pd.DataFrame:
    if isinstance(ratings, pd.DataFrame):
        if not {"item_id", "rating"} <= set(ratings.columns):
            raise ValueError(
                "ratings as a DataFrame needs the columns item_id and rating"
            )
        frame = ratings[["item_id", "rating"]].copy()
    else:
        frame = pd.DataFrame(
            {"item_id": list(ratings.keys()), "rating": list(ratings.values())}
        )
    frame = frame.astype({"item_id": np.int64, "rating": np.float64})
    bad = ~frame["rating"].between(scale.minimum, scale.maximum)
    if bad.any():
        raise ValueError(
            f"rating {frame['rating'][bad].iloc[0]} of movie "
            f"{frame['item_id'][bad].iloc[0]} is outside "
            f"{scale.label(scale.minimum)}..{scale.label(scale.maximum)}"
        )
    if frame["item_id"].duplicated().any():
        raise ValueError("a movie is rated twice; give each movie one rating")
    return frame.reset_index(drop=True)


def fold_in(
    model: nn.Module,
    item_index: np.ndarray,
    rating: np.ndarray,
    *,
    user_features: np.ndarray | None = None,
    n_steps: int = FOLD_IN_STEPS,
    learning_rate: float = FOLD_IN_LEARNING_RATE,
    l2: float = FOLD_IN_L2,
    seed: int = 0,
) -> nn.Module:
    r"""Fit a newcomer's user rows to a few ratings, leaving the model as it is.

    The model is grown by one user (:func:`add_user`, rows at the mean
    user :math:`\bar\theta`), every existing parameter is frozen, and the
    new user's rows (embeddings and bias), written
    :math:`\theta = \bar\theta + s \odot z` with :math:`s` the standard
    deviation of the known users on each dimension, minimise

    .. math::

        \sum_j \ell(f_\theta(i_j), r_j) + \lambda \|z\|^2

    by ``n_steps`` full-batch steps of Adam on :math:`z` (from 0), with
    :math:`\ell` the squared error for a regressor and the cross-entropy
    for a classifier and :math:`\lambda` = ``l2``. This is a MAP estimate
    under a Gaussian prior fitted to the known users. The pull towards the
    mean keeps two ratings from making an extreme user; measuring it, and
    taking the steps, in units of the users' own spread treats every table
    alike, so a dimension on which all users agree barely moves and one
    constant suits every model. The model runs in evaluation mode (no
    dropout, batch normalisation with its running statistics), as at
    prediction.

    Parameters
    ----------
    model : nn.Module
        A trained model of the book; it is not modified.
    item_index : array of shape (n,)
        Dense indices of the rated movies.
    rating : array of shape (n,)
        Their ratings, on the model's scale (1..5 in whole stars).
    user_features : array of shape (n_user_features,), optional
        The newcomer's feature row, for a hybrid model.
    n_steps, learning_rate, l2 :
        Adam steps, its learning rate (in standard deviations) and
        :math:`\lambda`.
    seed : int
        Seeds torch's generator during the fit (nothing random happens in
        evaluation mode today; the seed keeps it so if a model changes).

    Returns
    -------
    nn.Module
        The grown copy; the newcomer is user ``model.config.n_users``.
    """
    grown = add_user(model, user_features)
    for parameter in grown.parameters():
        parameter.requires_grad_(False)
    tables = {f"{name}.weight": table.weight for name, table in _tables(grown, "user")}
    mean = {name: weight[-1].clone() for name, weight in tables.items()}
    # How much the known users differ on each dimension, shape (d,) per table.
    spread = {
        name: weight[:-1].std(dim=0).clamp_min(1e-6) for name, weight in tables.items()
    }
    z = {name: torch.zeros_like(row, requires_grad=True) for name, row in mean.items()}

    def rows() -> dict[str, torch.Tensor]:
        return {name: mean[name] + spread[name] * z[name] for name in tables}

    device = mean[next(iter(mean))].device
    item = torch.tensor(np.asarray(item_index, dtype=np.int64), device=device)
    target = torch.tensor(np.asarray(rating, dtype=np.float32), device=device)
    user = torch.full_like(item, model.config.n_users)
    optimizer = torch.optim.Adam(z.values(), lr=learning_rate)
    with seeded(seed):
        for _ in range(n_steps):
            weights = {
                name: torch.cat([tables[name][:-1], row[None, :]])
                for name, row in rows().items()
            }
            out = torch.func.functional_call(grown, weights, (user, item))
            if grown.config.task == "regression":
                loss = (out - target).pow(2).sum()
            else:
                # Whole stars round the target first, as a rating of 4.0 is class 3.
                scale = grown.config.scale
                classes = rating_to_class(
                    target.round() if scale.whole else target, scale
                )
                loss = nn.functional.cross_entropy(out, classes, reduction="sum")
            pull = sum(value.pow(2).sum() for value in z.values())
            optimizer.zero_grad(set_to_none=True)
            (loss + l2 * pull).backward()
            optimizer.step()
    with torch.no_grad():
        for name, row in rows().items():
            tables[name][-1] = row
    return grown


def popular_movies(
    ratings: pd.DataFrame,
    *,
    damping: float = POPULARITY_DAMPING,
    min_ratings: int = POPULARITY_MIN_RATINGS,
) -> pd.DataFrame:
    r"""Movies by damped mean rating, best first.

    Each movie's score is :math:`(\sum r + m\,\mu) / (n + m)`, with
    :math:`m` = ``damping`` pseudo-ratings at the global mean :math:`\mu`,
    so a movie rated 5 once does not beat one rated 4.5 by hundreds; movies
    with fewer than ``min_ratings`` ratings are left out. Ties go to the
    smaller ``item_id``.

    Returns
    -------
    DataFrame
        ``item_id, n_ratings, mean_rating, damped_mean``.
    """
    mu = float(ratings["rating"].mean())
    stats = ratings.groupby("item_id")["rating"].agg(["size", "sum"])
    stats = stats[stats["size"] >= min_ratings]
    table = pd.DataFrame(
        {
            "item_id": stats.index.to_numpy(dtype=np.int64),
            "n_ratings": stats["size"].to_numpy(),
            "mean_rating": (stats["sum"] / stats["size"]).to_numpy(),
            "damped_mean": (
                (stats["sum"] + damping * mu) / (stats["size"] + damping)
            ).to_numpy(),
        }
    )
    return table.sort_values(
        ["damped_mean", "item_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def recommend_newcomer(
    model: nn.Module,
    *,
    data: MovieLens,
    index: IdIndex | None = None,
    age: float | None = None,
    gender: str | None = None,
    occupation: str | None = None,
    ratings: Mapping[int, float] | pd.DataFrame | None = None,
    k: int = 10,
    seed: int = 0,
) -> Recommendations:
    """Recommend movies to someone the model has never seen.

    Three paths, the first that applies wins:

    1. ``"fold-in"``: with at least one rating, the newcomer's user rows are
       fitted to them by :func:`fold_in` (a hybrid model also gets the
       demographics, or the mean feature row), and the movies the newcomer
       did not rate are ranked as for a known user;
    2. ``"hybrid features"``: with demographics only and a model that reads
       user features, the newcomer is the mean user with their own feature
       row (:func:`add_user`); the feature branch alone moves the list, and
       nothing is trained;
    3. ``"popularity"``: otherwise, :func:`popular_movies` (damped mean
       rating, :data:`POPULARITY_DAMPING` pseudo-ratings, movies with at
       least :data:`POPULARITY_MIN_RATINGS` ratings); ``predicted_rating``
       is then the damped mean.

    Parameters
    ----------
    model : nn.Module
        A trained model of the book; it is not modified.
    data : MovieLens
        The release the model was trained on.
    index : IdIndex, optional
        The model's id index; built from ``data`` when left out.
    age, gender, occupation : optional
        Demographics, encoded by :func:`~recsys_utils.features.user_feature_row`.
    ratings : dict or DataFrame, optional
        ``item_id -> rating`` (on the model's scale), or a frame with those two columns.
    k : int
        Length of the list.
    seed : int
        Seed of the fold-in.

    Returns
    -------
    Recommendations
    """
    k = _check_k(k)
    index = _index(data, index, model)
    demographics = {"age": age, "gender": gender, "occupation": occupation}
    has_demographics = any(v is not None for v in demographics.values())
    features = None
    if model.config.n_user_features and has_demographics:
        features = user_feature_row(data.users, **demographics)

    given = _as_ratings(ratings, model.config.scale) if ratings is not None else None
    if given is not None and len(given):
        try:
            rated_position = index.item_index(given["item_id"].to_numpy())
        except KeyError as error:
            raise KeyError(f"{error.args[0]}; rate movies of the items table") from None
        grown = fold_in(
            model,
            rated_position,
            given["rating"].to_numpy(),
            user_features=features,
            seed=seed,
        )
        seen = np.zeros(index.n_items, dtype=bool)
        seen[rated_position] = True
        scores = score_items(grown, [model.config.n_users])[0]
        table = _ranked_table(grown, data, index, scores, seen, k, given)
        note = (
            f"fitted the newcomer's user rows to {len(given)} rating(s) by "
            f"{FOLD_IN_STEPS} Adam steps, pulled towards the mean user with "
            f"weight {FOLD_IN_L2:g} per squared standard deviation of the known "
            "users; the rest of the model is unchanged"
        )
        return Recommendations(table, "fold-in", note)

    if features is not None:
        grown = add_user(model, features)
        scores = score_items(grown, [model.config.n_users])[0]
        seen = np.zeros(index.n_items, dtype=bool)
        table = _ranked_table(
            grown,
            data,
            index,
            scores,
            seen,
            k,
            pd.DataFrame(columns=["item_id", "rating"]),
        )
        table["reason"] = "rated highly for people with your demographics"
        note = (
            "the mean user's embeddings with the newcomer's own demographic "
            "features; the hybrid model's feature branch makes the difference"
        )
        return Recommendations(table, "hybrid features", note)

    popular = popular_movies(data.ratings).head(k)
    table = _movie_table(data, popular["item_id"].to_numpy())
    table["predicted_rating"] = popular["damped_mean"].to_numpy()
    table["reason"] = [
        f"mean rating {m:.2f} from {n} ratings"
        for m, n in zip(popular["mean_rating"], popular["n_ratings"], strict=True)
    ]
    why = (
        "the model reads no demographics"
        if has_demographics
        else "no ratings or demographics were given"
    )
    note = (
        f"{why}: movies with at least {POPULARITY_MIN_RATINGS} ratings by mean "
        f"rating damped with {POPULARITY_DAMPING:g} pseudo-ratings at the global mean"
    )
    return Recommendations(table, "popularity", note)


# --------------------------------------------------------------------------
# Many users at once


def top_n_lists(
    model: nn.Module,
    users: Iterable[int],
    k: int,
    data: MovieLens,
    index: IdIndex | None = None,
) -> dict[int, np.ndarray]:
    """Each given user's ``k`` best unseen movies, as item ids, best first.

    The same ranking as :func:`recommend` (every rating in ``data.ratings``
    counts as seen), without titles or reasons, for many users at once:
    all 943 x 1682 pairs of MovieLens 100k score in batches of about 65k.

    Returns
    -------
    dict
        ``user_id -> ndarray of item ids``, shape (k,) or shorter for a user
        with fewer than ``k`` unseen movies; in the order of ``users``.
    """
    k = _check_k(k)
    index = _index(data, index, model)
    user_ids = np.asarray(list(users))
    positions = index.user_index(user_ids)
    seen = np.zeros((index.n_users, index.n_items), dtype=bool)
    seen[
        index.user_index(data.ratings["user_id"].to_numpy()),
        index.item_index(data.ratings["item_id"].to_numpy()),
    ] = True
    lists = {}
    block = max(1, _SCORE_BATCH // index.n_items) * 8
    for start in range(0, len(positions), block):
        part = positions[start : start + block]
        scores = score_items(model, part)
        for row, position in enumerate(part):
            lists[int(index.user_id(position))] = index.item_id(
                _top_k(scores[row], seen[position], k)
            )
    return lists


# --------------------------------------------------------------------------
# From a checkpoint


@dataclass(frozen=True)
class Recommender:
    """A trained model with the data it was trained on, ready to recommend.

    Build it with :func:`load_recommender` (or :meth:`from_checkpoint`); the
    methods are :func:`recommend`, :func:`similar_movies` and
    :func:`recommend_newcomer` with the model and data filled in.
    """

    model: nn.Module
    data: MovieLens
    index: IdIndex
    meta: dict

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        data: MovieLens | None = None,
        *,
        data_dir: str | Path | None = None,
    ) -> Recommender:
        """The same as :func:`load_recommender`."""
        return load_recommender(path, data, data_dir=data_dir)

    def recommend(self, user_id: int, k: int = 10) -> pd.DataFrame:
        return recommend(self.model, user_id, k, data=self.data, index=self.index)

    def similar_movies(self, item_id: int, k: int = 10) -> pd.DataFrame:
        return similar_movies(self.model, item_id, k, data=self.data, index=self.index)

    def recommend_newcomer(self, **options) -> Recommendations:
        return recommend_newcomer(
            self.model, data=self.data, index=self.index, **options
        )


def load_recommender(
    path: str | Path,
    data: MovieLens | None = None,
    *,
    data_dir: str | Path | None = None,
) -> Recommender:
    """Load a chapter's checkpoint and the data it was trained on.

    ``data`` defaults to MovieLens 100k read from ``data_dir`` (default
    ``$RECSYS_DATA_DIR`` or ``data/``), without downloading; the checkpoint
    is read first, so a wrong path fails before the data is read.

    Raises
    ------
    CheckpointError
        When the file is missing or not a checkpoint of this book, or when
        its model does not match the data's users and movies.
    """
    model, meta = load_checkpoint(path)
    if data is None:
        data = load_movielens_100k(data_dir, download=False)
    index = IdIndex.from_tables(data.users, data.items)
    if (model.config.n_users, model.config.n_items) != (index.n_users, index.n_items):
        raise CheckpointError(
            f"{path}: the model has {model.config.n_users} users and "
            f"{model.config.n_items} movies, the data {index.n_users} and "
            f"{index.n_items}; pass the data it was trained on"
        )
    return Recommender(model, data, index, dict(meta))
