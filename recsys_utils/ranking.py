"""Ranking metrics: does a model put the movies a user liked near the top?

Rating error says how close a predicted rating is; a recommender is used to
rank. This module scores rankings under the sampled protocol of Neural
Collaborative Filtering [he2017]_, adapted to a held-out set of ratings:

1. every test rating of at least ``min_rating`` (4 by default) is a *case*:
   the user liked that movie;
2. the case's candidates are that movie and ``n_negatives`` (99) movies the
   user has rated nowhere in the whole table (training, validation or test),
   drawn uniformly without replacement by ``np.random.default_rng(seed)``;
3. the model scores all 100 candidates; the liked movie's 0-based rank is the
   number of negatives scored strictly higher plus half the number scored
   equal (its expected rank when ties are broken at random, so ties never
   favour it: a constant scorer ranks it 49.5);
4. hit rate and NDCG at ``k`` average over cases, so a user with more liked
   test movies weighs more.

He et al. hold out each user's latest interaction, one case per user, and
treat every interaction as positive; here the cases are the test ratings of a
split and only liked ones count. A sampled metric is not the full-catalogue
metric: it can rank models differently and is biased towards models that do
well on popular movies, so read it as a comparison under one protocol, not as
an estimate of hit rate over all 1,682 movies [krichene2020]_.

References
----------
.. [he2017] X. He, L. Liao, H. Zhang, L. Nie, X. Hu and T.-S. Chua, "Neural
   Collaborative Filtering", WWW 2017.
.. [krichene2020] W. Krichene and S. Rendle, "On Sampled Metrics for Item
   Recommendation", KDD 2020.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from recsys_utils.metrics import UndefinedRatingMetricWarning

logger = logging.getLogger(__name__)

#: A model's scores of flat arrays of user and movie ids, shape (n,).
PredictFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Cases drawn per block: the block's random keys, (block, n_items) floats,
# stay at about 14 MB for MovieLens 100k.
_SAMPLING_BLOCK = 1024


def _check_ranks(ranks, k: int) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.float64)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer")
    if ranks.ndim != 1 or len(ranks) == 0:
        raise ValueError(f"ranks has shape {ranks.shape}; expected (n,) with n > 0")
    if np.isnan(ranks).any() or (ranks < 0).any():
        raise ValueError("ranks must be 0-based, non-negative and not NaN")
    return ranks


def hit_rate_at_k(ranks, k: int) -> float:
    """Share of cases whose relevant movie ranks in the top ``k``.

    Parameters
    ----------
    ranks : array of shape (n,)
        0-based rank of the one relevant movie of each case (a half-integer
        where ties were split).
    k : int
        Length of the list shown.

    Returns
    -------
    float
        :math:`\\frac{1}{n} \\sum_c [\\mathrm{rank}_c < k]`.
    """
    ranks = _check_ranks(ranks, k)
    return float(np.mean(ranks < k))


def ndcg_at_k(ranks, k: int) -> float:
    """Normalised discounted cumulative gain at ``k`` with one relevant movie.

    With a single relevant movie the ideal DCG is 1, so each case scores
    :math:`1 / \\log_2(\\mathrm{rank} + 2)` if its 0-based rank is below
    ``k`` and 0 otherwise; the result is the mean over cases.

    Parameters
    ----------
    ranks : array of shape (n,)
        0-based rank of the relevant movie of each case.
    k : int
        Length of the list shown.
    """
    ranks = _check_ranks(ranks, k)
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(np.mean(gains))


def candidate_ranks(scores) -> np.ndarray:
    """0-based rank of column 0 among each row's candidates, shape (n,).

    Negatives scored strictly higher count 1, negatives scored equal count
    1/2: the expected rank under a random order of the ties, which neither
    rewards nor punishes a model for ties (and ranks a constant scorer's
    positive in the middle).

    Parameters
    ----------
    scores : array of shape (n, 1 + n_negatives)
        Column 0 scores the relevant movie, the others the negatives.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(
            f"scores has shape {scores.shape}; expected (n, 1 + n_negatives)"
        )
    if np.isnan(scores).any():
        raise ValueError("scores hold NaN; a ranking needs every candidate scored")
    positive = scores[:, :1]
    higher = (scores[:, 1:] > positive).sum(axis=1)
    ties = (scores[:, 1:] == positive).sum(axis=1)
    return higher + 0.5 * ties


@dataclass(frozen=True)
class Candidates:
    """The movies to rank for each case of the sampled protocol.

    Attributes
    ----------
    user_id : array of shape (n,)
        The user of each case.
    item_id : array of shape (n, 1 + n_negatives)
        Column 0 is the liked test movie, the rest are sampled negatives.
    rating : array of shape (n,)
        The user's test rating of the liked movie.
    """

    user_id: np.ndarray
    item_id: np.ndarray
    rating: np.ndarray

    @property
    def n_cases(self) -> int:
        return len(self.user_id)

    @property
    def n_negatives(self) -> int:
        return self.item_id.shape[1] - 1


def sample_candidates(
    all_ratings: pd.DataFrame,
    test: pd.DataFrame,
    *,
    n_negatives: int = 99,
    min_rating: int = 4,
    seed: int,
) -> Candidates:
    """Pair each liked test movie with movies its user never rated.

    Parameters
    ----------
    all_ratings : DataFrame
        Every rating known (training, validation and test), with user_id and
        item_id. Its movies are the catalogue negatives come from, and no
        movie a user rated in it is ever a negative for that user.
    test : DataFrame
        The held-out ratings (user_id, item_id, rating); rows rated at least
        ``min_rating`` become cases, in their order.
    n_negatives : int
        Negatives per case, 99 after [he2017]_.
    min_rating : int
        The lowest rating that counts as liked.
    seed : int
        Seeds ``np.random.default_rng``, the only randomness.

    Returns
    -------
    Candidates
        Per case: the user, and the liked movie followed by its distinct
        negatives.

    Notes
    -----
    Each case draws its own negatives, so a user with several liked test
    movies gets a fresh sample for each. The draw gives every unrated movie a
    uniform random key and keeps the ``n_negatives`` smallest keys, which is
    uniform sampling without replacement, done a block of cases at a time.
    """
    if n_negatives < 1:
        raise ValueError(f"n_negatives={n_negatives!r} must be at least 1")
    known = pd.concat(
        [all_ratings[["user_id", "item_id"]], test[["user_id", "item_id"]]]
    )
    users = pd.Index(np.unique(known["user_id"]))
    items = np.unique(known["item_id"])
    item_index = pd.Index(items)
    # (n_users, n_items): True where the user rated the movie anywhere; the test
    # ratings are added even if all_ratings lacks them, so no positive is drawn.
    rated = np.zeros((len(users), len(items)), dtype=bool)
    rated[
        users.get_indexer(known["user_id"]), item_index.get_indexer(known["item_id"])
    ] = True

    liked = test[test["rating"] >= min_rating]
    case_users = users.get_indexer(liked["user_id"])
    n_unrated = len(items) - rated.sum(axis=1)
    short = np.unique(liked["user_id"].to_numpy()[n_unrated[case_users] < n_negatives])
    if len(short):
        raise ValueError(
            f"users {short[:5].tolist()} have fewer than n_negatives={n_negatives} "
            "unrated movies"
        )

    rng = np.random.default_rng(seed)
    negatives = np.empty((len(liked), n_negatives), dtype=items.dtype)
    for start in range(0, len(liked), _SAMPLING_BLOCK):
        block = case_users[start : start + _SAMPLING_BLOCK]
        keys = rng.random((len(block), len(items)))  # (block, n_items)
        keys[rated[block]] = np.inf
        chosen = np.argpartition(keys, n_negatives - 1, axis=1)[:, :n_negatives]
        negatives[start : start + len(block)] = items[chosen]

    positives = liked["item_id"].to_numpy()[:, None]
    logger.debug(
        "%d cases of %d users, %d negatives each",
        len(liked),
        len(np.unique(case_users)),
        n_negatives,
    )
    return Candidates(
        user_id=liked["user_id"].to_numpy(),
        item_id=np.hstack([positives.astype(items.dtype), negatives]),
        rating=liked["rating"].to_numpy(),
    )


def score_candidates(
    predict_fn: PredictFn, candidates: Candidates, *, batch_size: int = 100_000
) -> np.ndarray:
    """Score every candidate with a model, shape (n_cases, 1 + n_negatives).

    ``predict_fn(user_ids, item_ids)`` receives flat arrays of at most about
    ``batch_size`` pairs (whole cases at a time) and returns one score per
    pair; higher means ranked higher.
    """
    n_cases, width = candidates.item_id.shape
    rows_per_batch = max(1, batch_size // width)
    scores = np.empty((n_cases, width), dtype=np.float64)
    for start in range(0, n_cases, rows_per_batch):
        stop = min(start + rows_per_batch, n_cases)
        item_ids = candidates.item_id[start:stop]  # (rows, width)
        user_ids = np.repeat(candidates.user_id[start:stop], width)
        batch = np.asarray(predict_fn(user_ids, item_ids.ravel()), dtype=np.float64)
        if batch.shape != (item_ids.size,):
            raise ValueError(
                f"predict_fn returned shape {batch.shape}; expected ({item_ids.size},)"
            )
        scores[start:stop] = batch.reshape(item_ids.shape)
    return scores


@dataclass(frozen=True)
class RankingReport:
    """Hit rate and NDCG at ``k`` under the sampled protocol."""

    k: int
    hr: float
    ndcg: float
    n_users: int
    n_cases: int
    n_negatives: int

    def summary(self) -> dict[str, float]:
        return {f"HR@{self.k}": self.hr, f"NDCG@{self.k}": self.ndcg}


def ranking_report(candidates: Candidates, scores, k: int = 10) -> RankingReport:
    """Hit rate and NDCG at ``k`` of a model's scores of the candidates.

    Parameters
    ----------
    candidates : Candidates
        From :func:`sample_candidates`.
    scores : array of shape (n_cases, 1 + n_negatives)
        The model's scores, e.g. from :func:`score_candidates`.
    k : int
        Length of the list shown.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != candidates.item_id.shape:
        raise ValueError(
            f"scores has shape {scores.shape}; expected {candidates.item_id.shape}"
        )
    ranks = candidate_ranks(scores)
    return RankingReport(
        k=k,
        hr=hit_rate_at_k(ranks, k),
        ndcg=ndcg_at_k(ranks, k),
        n_users=len(np.unique(candidates.user_id)),
        n_cases=candidates.n_cases,
        n_negatives=candidates.n_negatives,
    )


def liked_f1(y_true, y_pred, threshold: float = 4) -> float:
    """F1 of "liked" (rating at least ``threshold``) against the truth.

    Both arrays are thresholded as given: a continuous prediction of 3.6 is
    not liked at ``threshold=4``. To count a regressor's rounded class
    instead, pass ``rating_classes(y_pred)`` from :mod:`recsys_utils.metrics`.
    NaN, with an :class:`UndefinedRatingMetricWarning`, where neither the truth
    nor the predictions hold a liked rating.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_pred has shape {y_pred.shape}; expected {y_true.shape}")
    liked_true, liked_pred = y_true >= threshold, y_pred >= threshold
    if not (liked_true.any() or liked_pred.any()):
        warnings.warn(
            f"liked F1 is undefined: no rating is at least {threshold} in the truth "
            "or the predictions; reported as NaN",
            UndefinedRatingMetricWarning,
            stacklevel=2,
        )
        return float("nan")
    return float(skm.f1_score(liked_true, liked_pred))
