"""Classical rating predictors from scikit-surprise, tuned on validation only.

Five baselines share one interface, :func:`fit_baseline`:

* ``"global mean"``: every rating is predicted as the mean training rating
  :math:`\\mu`;
* ``"BaselineOnly"``: :math:`\\hat r_{ui} = \\mu + b_u + b_i`, the biases
  fitted by alternating least squares [koren2010]_;
* ``"SVD"``: biased matrix factorisation trained by SGD,
  :math:`\\hat r_{ui} = \\mu + b_u + b_i + q_i^\\top p_u` [koren2009]_;
* ``"SVD++"``: SVD plus implicit feedback from *which* movies a user rated,
  :math:`\\hat r_{ui} = \\mu + b_u + b_i + q_i^\\top (p_u + |I_u|^{-1/2}
  \\sum_{j \\in I_u} y_j)` [koren2008]_;
* ``"KNNBaseline"``: item-based neighbours with the Pearson-baseline
  similarity, predicting the baseline plus the neighbours' weighted
  deviations from their own baselines [koren2010]_.

The implementations are those of scikit-surprise [hug2020]_; this module
only tunes them, on the training and validation parts, and predicts whole
tables at once. The test part of a split never reaches this module.

References
----------
.. [hug2020] N. Hug, "Surprise: A Python library for recommender systems",
   Journal of Open Source Software 5(52), 2174, 2020.
.. [koren2008] Y. Koren, "Factorization meets the neighborhood: a multifaceted
   collaborative filtering model", KDD 2008.
.. [koren2009] Y. Koren, R. Bell and C. Volinsky, "Matrix factorization
   techniques for recommender systems", IEEE Computer 42(8), 2009.
.. [koren2010] Y. Koren, "Factor in the neighbors: scalable and accurate
   collaborative filtering", ACM TKDD 4(1), 2010.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from surprise import (
    SVD,
    AlgoBase,
    BaselineOnly,
    Dataset,
    KNNBaseline,
    Reader,
    SVDpp,
    Trainset,
)

from recsys_utils.metrics import RatingScale, rmse

logger = logging.getLogger(__name__)

#: The baselines :func:`fit_baseline` knows, in the order the book shows them.
BASELINES: tuple[str, ...] = (
    "global mean",
    "BaselineOnly",
    "SVD",
    "SVD++",
    "KNNBaseline",
)

#: The settings tried for each baseline: every combination of the values.
#: Sized so that tuning all five on one canonical fold (70,000 training and
#: 10,000 validation ratings) takes under two minutes on one core; SVD++
#: costs about 9 s a fit, so its grid is the smallest. The ranges were widened
#: on validation RMSE of fold u1 until the chosen value was inside them or the
#: edge was flat (SVD with lr_all 0.015 or 60 epochs, BaselineOnly with
#: regularisation 1 or 2 scored within 0.001 of the chosen setting).
GRIDS: dict[str, dict[str, tuple]] = {
    "global mean": {},
    "BaselineOnly": {
        "n_epochs": (10, 20),
        "reg_u": (2, 5, 15),
        "reg_i": (2, 5, 10),
    },
    "SVD": {
        "n_factors": (50, 100),
        "n_epochs": (20, 40),
        "lr_all": (0.005, 0.01),
        "reg_all": (0.05, 0.1, 0.15),
    },
    "SVD++": {
        "n_factors": (20,),
        "n_epochs": (20,),
        "lr_all": (0.005, 0.01),
        "reg_all": (0.02, 0.1),
    },
    "KNNBaseline": {
        "k": (20, 40, 60),
        "shrinkage": (50, 100),
    },
}

#: Every setting a grid may name, per baseline (the grids above use them all).
PARAMETERS: dict[str, tuple[str, ...]] = {
    name: tuple(grid) for name, grid in GRIDS.items()
}

# Predicting in chunks bounds the gathered factor matrices at
# (chunk, n_factors) floats, whatever the number of pairs asked for.
_CHUNK = 65_536


class GlobalMean(AlgoBase):
    """Predict the mean training rating for every user and movie."""

    def fit(self, trainset: Trainset) -> GlobalMean:
        AlgoBase.fit(self, trainset)
        return self

    def estimate(self, u, i) -> float:
        return self.trainset.global_mean


def _check_name(name: str) -> None:
    if name not in BASELINES:
        raise ValueError(
            f"name={name!r} is not a baseline; use one of {', '.join(BASELINES)}"
        )


def build_algo(name: str, params: Mapping[str, Any], *, seed: int) -> AlgoBase:
    """A fresh, unfitted surprise algorithm for one setting of one baseline.

    ``params`` uses the flat names of :data:`GRIDS`; the ones surprise keeps in
    option dictionaries (``reg_u``, ``shrinkage``, ...) are moved there.
    ``seed`` becomes ``random_state`` of the algorithms that draw random
    numbers (SVD and SVD++); the ALS baselines and the neighbours are
    deterministic.
    """
    _check_name(name)
    unknown = sorted(set(params) - set(PARAMETERS[name]))
    if unknown:
        raise ValueError(
            f"{name} has no setting {', '.join(unknown)}; "
            f"use {', '.join(PARAMETERS[name]) or 'none'}"
        )
    params = dict(params)
    if name == "global mean":
        return GlobalMean()
    if name == "BaselineOnly":
        return BaselineOnly(bsl_options={"method": "als", **params}, verbose=False)
    if name == "SVD":
        return SVD(**params, random_state=seed)
    if name == "SVD++":
        # Caching the ratings only trades memory for speed; the fit is the same.
        return SVDpp(**params, random_state=seed, cache_ratings=True)
    shrinkage = params.pop("shrinkage", 100)
    return KNNBaseline(
        **params,
        sim_options={
            "name": "pearson_baseline",
            "user_based": False,
            "shrinkage": shrinkage,
        },
        bsl_options={"method": "als"},
        verbose=False,
    )


def rating_range(ratings: pd.DataFrame) -> tuple[float, float]:
    """Lowest and highest level of the ratings' scale: (1, 5), or (0.5, 5) in half stars."""
    scale = RatingScale.from_ratings(ratings["rating"])
    return (scale.minimum, scale.maximum)


def to_trainset(ratings: pd.DataFrame) -> Trainset:
    """A surprise training set of a ratings table (user_id, item_id, rating).

    Its rating scale, which surprise clips predictions to, is read from the
    ratings (see :func:`rating_range`).
    """
    reader = Reader(rating_scale=rating_range(ratings))
    data = Dataset.load_from_df(ratings[["user_id", "item_id", "rating"]], reader)
    return data.build_full_trainset()


@dataclass(frozen=True)
class _Predictor:
    """What fast prediction needs, read once from a fitted algorithm.

    ``users`` and ``items`` hold the raw ids in inner-id order. For the models
    with a closed form, ``pu`` already includes SVD++'s implicit term, so that
    each predicts mu + bu[u] + bi[i] + pu[u] . qi[i] for a known user and
    movie, and drops the terms it does not know, as surprise does.
    """

    users: pd.Index
    items: pd.Index
    mu: float
    bu: np.ndarray | None  # (n_users,); None: no closed form, ask surprise
    bi: np.ndarray | None  # (n_items,)
    pu: np.ndarray | None  # (n_users, n_factors)
    qi: np.ndarray | None  # (n_items, n_factors)

    def inner(self, user_ids, item_ids) -> tuple[np.ndarray, np.ndarray]:
        """Inner ids of raw ids; -1 where the model never saw the id."""
        return (
            self.users.get_indexer(pd.Index(np.asarray(user_ids))),
            self.items.get_indexer(pd.Index(np.asarray(item_ids))),
        )


def _predictor(name: str, algo: AlgoBase) -> _Predictor:
    trainset = algo.trainset
    n_users, n_items = trainset.n_users, trainset.n_items
    users = pd.Index([trainset.to_raw_uid(u) for u in range(n_users)])
    items = pd.Index([trainset.to_raw_iid(i) for i in range(n_items)])
    mu = float(trainset.global_mean)
    bu = bi = pu = qi = None
    if name == "global mean":
        bu, bi = np.zeros(n_users), np.zeros(n_items)
    elif name in ("BaselineOnly", "SVD", "SVD++"):
        bu, bi = np.asarray(algo.bu), np.asarray(algo.bi)
    if name == "SVD":
        pu, qi = np.asarray(algo.pu), np.asarray(algo.qi)
    elif name == "SVD++":
        # trainset.ur[u] lists (inner item, rating) of the movies u rated
        counts = [len(trainset.ur[u]) for u in range(n_users)]
        inner_users = np.repeat(np.arange(n_users), counts)
        inner_items = np.array(
            [i for u in range(n_users) for i, _ in trainset.ur[u]], dtype=np.int64
        )
        rated = sparse.csr_matrix(
            (np.ones(len(inner_users)), (inner_users, inner_items)),
            shape=(n_users, n_items),
        )
        n_rated = np.asarray(rated.sum(axis=1)).ravel()
        # |I_u|^(-1/2) * sum of y_j over the movies u rated, (n_users, n_factors)
        implicit = (rated @ np.asarray(algo.yj)) / np.sqrt(n_rated)[:, None]
        pu, qi = np.asarray(algo.pu) + implicit, np.asarray(algo.qi)
    return _Predictor(users, items, mu, bu, bi, pu, qi)


@dataclass(frozen=True)
class FittedBaseline:
    """A tuned baseline, refitted on training plus validation ratings.

    Attributes
    ----------
    name : str
        One of :data:`BASELINES`.
    params : dict
        The chosen setting (flat names of :data:`GRIDS`).
    valid_rmse : float
        Validation RMSE of the chosen setting, fitted on the training part only.
    grid_table : DataFrame
        One row per setting tried: its parameters, ``valid_rmse`` and
        ``fit_seconds`` (fit on training plus scoring on validation).
    tune_seconds : float
        Wall time of the whole grid search.
    fit_seconds : float
        Wall time of the final refit on training plus validation ratings.
    algo : surprise.AlgoBase
        The refitted surprise algorithm.
    train_only : FittedBaseline or None
        The chosen setting as the grid search fitted it, on the training part
        alone (what a blend fitted on validation ratings needs); None for a
        model that was not tuned here.
    """

    name: str
    params: dict[str, Any]
    valid_rmse: float
    grid_table: pd.DataFrame
    tune_seconds: float
    fit_seconds: float
    algo: AlgoBase
    _predictor: _Predictor = field(repr=False, compare=False)
    train_only: FittedBaseline | None = field(default=None, repr=False, compare=False)

    @classmethod
    def _from_algo(cls, name: str, algo: AlgoBase, **results) -> FittedBaseline:
        return cls(name=name, algo=algo, _predictor=_predictor(name, algo), **results)

    def unknown(self, user_ids, item_ids) -> np.ndarray:
        """Whether each (user, movie) pair has a user or movie the model never saw.

        Every baseline here predicts such a pair from what it does know: the
        global mean plus the bias of the known user or movie, if any. Surprise
        1.1.5 computes that fallback inside each algorithm and so never flags
        these pairs ``was_impossible``; the count comes from the ids the
        training set holds instead.
        """
        inner_users, inner_items = self._predictor.inner(user_ids, item_ids)
        return (inner_users < 0) | (inner_items < 0)

    def n_unknown(self, ratings: pd.DataFrame) -> int:
        """How many rows of ``ratings`` have a user or movie unknown to the model."""
        return int(self.unknown(ratings["user_id"], ratings["item_id"]).sum())

    def predict_pairs(self, user_ids, item_ids, *, clip: bool = True) -> np.ndarray:
        """Predicted ratings of flat arrays of user and movie ids, shape (n,).

        Float64, clipped to 1..5 as surprise clips unless ``clip=False``:
        ranking wants the raw scores, as clipping ties every movie above 5.
        SVD, SVD++, BaselineOnly and the global mean are computed from the
        learned arrays, in chunks; KNNBaseline goes through ``algo.predict``
        one pair at a time (about 0.15 ms a pair, too slow to rank 100
        candidates for each of 10,000 cases).
        """
        user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
        if user_ids.shape != item_ids.shape or user_ids.ndim != 1:
            raise ValueError(
                f"user_ids {user_ids.shape} and item_ids {item_ids.shape} "
                "must be flat arrays of one length"
            )
        predictor = self._predictor
        if predictor.bu is None:
            y_pred = np.array(
                [
                    self.algo.predict(u, i, clip=False).est
                    for u, i in zip(user_ids, item_ids, strict=True)
                ],
                dtype=np.float64,
            )
        else:
            y_pred = _closed_form(predictor, *predictor.inner(user_ids, item_ids))
        return np.clip(y_pred, *self.algo.trainset.rating_scale) if clip else y_pred

    @property
    def n_parameters(self) -> int:
        """Numbers the fitted model stores to predict: biases, factors, similarities."""
        arrays = ("bu", "bi", "pu", "qi", "yj", "sim")
        return 1 + sum(
            int(np.asarray(getattr(self.algo, name)).size)
            for name in arrays
            if getattr(self.algo, name, None) is not None
        )

    def predict(self, ratings: pd.DataFrame) -> np.ndarray:
        """Predicted ratings of the rows of a table with user_id and item_id."""
        return self.predict_pairs(ratings["user_id"], ratings["item_id"])


def _closed_form(
    predictor: _Predictor, inner_users: np.ndarray, inner_items: np.ndarray
) -> np.ndarray:
    """mu + the known biases + the factor term where both ids are known."""
    y_pred = np.full(len(inner_users), predictor.mu)
    known_user, known_item = inner_users >= 0, inner_items >= 0
    y_pred[known_user] += predictor.bu[inner_users[known_user]]
    y_pred[known_item] += predictor.bi[inner_items[known_item]]
    if predictor.pu is not None:
        both = np.flatnonzero(known_user & known_item)
        for start in range(0, len(both), _CHUNK):
            rows = both[start : start + _CHUNK]
            y_pred[rows] += np.einsum(
                "ij,ij->i",
                predictor.pu[inner_users[rows]],  # (chunk, n_factors)
                predictor.qi[inner_items[rows]],
            )
    return y_pred


def grid_settings(grid: Mapping[str, tuple]) -> list[dict[str, Any]]:
    """Every combination of a grid's values, the last parameter varying fastest."""
    for param, values in grid.items():
        if len(values) == 0:
            raise ValueError(f"the grid gives no value for {param}")
    names = list(grid)
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*grid.values())
    ]


def fit_baseline(
    name: str,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    seed: int,
    grid: Mapping[str, tuple] | None = None,
) -> FittedBaseline:
    """Tune one baseline on validation RMSE, then refit it on train + valid.

    Every combination of ``grid`` is fitted on ``train`` and scored by RMSE on
    ``valid``; the lowest wins (ties go to the first in grid order). The
    winning setting is then fitted again on ``train`` and ``valid`` together,
    so that the returned model learns from every rating outside the test part;
    its ``valid_rmse`` is that of the train-only fit, scored on ratings it had
    not seen.

    Parameters
    ----------
    name : {"global mean", "BaselineOnly", "SVD", "SVD++", "KNNBaseline"}
        The baseline; implementations from scikit-surprise [hug2020]_.
    train, valid : DataFrame
        Ratings with columns user_id, item_id, rating (1..5).
    seed : int
        ``random_state`` of the algorithms that take one, the same for every
        setting and for the refit.
    grid : dict of str to tuple, optional
        Values to try per parameter; default :data:`GRIDS` ``[name]``.

    Returns
    -------
    FittedBaseline
        The refitted model, the chosen setting and the table of every setting.

    Notes
    -----
    The neural models of the book train on the training part only and use the
    validation part for early stopping, so a refitted baseline has learnt from
    more ratings than they have (80,000 rather than 70,000 on a canonical
    fold): the comparison leans slightly towards the baselines. Refitting also means the chosen setting is applied to more data
    than it was chosen on; for these regularised models that matters little,
    and no choice made here looks at the test part.
    """
    _check_name(name)
    grid = GRIDS[name] if grid is None else grid
    settings = grid_settings(grid)
    for params in settings:  # fail on a bad setting before any fit
        build_algo(name, params, seed=seed)

    start = time.perf_counter()
    trainset = to_trainset(train)
    y_valid = valid["rating"].to_numpy(dtype=np.float64)
    rows, best_fit = [], None
    for params in settings:
        fit_start = time.perf_counter()
        model = FittedBaseline._from_algo(
            name,
            build_algo(name, params, seed=seed).fit(trainset),
            params=dict(params),
            valid_rmse=float("nan"),
            grid_table=pd.DataFrame(),
            tune_seconds=0.0,
            fit_seconds=0.0,
        )
        score = rmse(y_valid, model.predict(valid))
        rows.append(
            {
                **params,
                "valid_rmse": score,
                "fit_seconds": time.perf_counter() - fit_start,
            }
        )
        logger.debug("%s %s: valid RMSE %.4f", name, params, score)
        if best_fit is None or score < best_fit.valid_rmse:  # first of equals
            best_fit = replace(model, valid_rmse=score)
    grid_table = pd.DataFrame(rows)
    best = int(grid_table["valid_rmse"].to_numpy().argmin())  # first of equals
    tune_seconds = time.perf_counter() - start

    start = time.perf_counter()
    both = pd.concat([train, valid], ignore_index=True)
    algo = build_algo(name, settings[best], seed=seed).fit(to_trainset(both))
    fit_seconds = time.perf_counter() - start
    logger.info(
        "%s: best of %d settings %s, valid RMSE %.4f, tuned in %.1fs",
        name,
        len(settings),
        settings[best],
        grid_table["valid_rmse"].iloc[best],
        tune_seconds,
    )
    return FittedBaseline._from_algo(
        name,
        algo,
        params=dict(settings[best]),
        valid_rmse=float(grid_table["valid_rmse"].iloc[best]),
        grid_table=grid_table,
        tune_seconds=tune_seconds,
        fit_seconds=fit_seconds,
        # Scores that are not numbers leave the two choices apart: keep neither.
        train_only=best_fit if best_fit.params == settings[best] else None,
    )


def refit_baseline(
    name: str, params: Mapping[str, Any], ratings: pd.DataFrame, *, seed: int
) -> FittedBaseline:
    """Fit one baseline with a setting chosen earlier (no search) on ``ratings``.

    Used to carry a setting tuned on one fold's validation part to the other
    folds; ``valid_rmse`` is NaN and ``grid_table`` empty, since nothing is
    scored here.
    """
    _check_name(name)
    start = time.perf_counter()
    algo = build_algo(name, params, seed=seed).fit(to_trainset(ratings))
    return FittedBaseline._from_algo(
        name,
        algo,
        params=dict(params),
        valid_rmse=float("nan"),
        grid_table=pd.DataFrame(),
        tune_seconds=0.0,
        fit_seconds=time.perf_counter() - start,
    )


def fit_baselines(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    seed: int,
    names: tuple[str, ...] = BASELINES,
) -> dict[str, FittedBaseline]:
    """:func:`fit_baseline` for each of ``names`` with its default grid."""
    for name in names:
        _check_name(name)
    return {name: fit_baseline(name, train, valid, seed=seed) for name in names}
