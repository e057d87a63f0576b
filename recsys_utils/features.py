"""Content features for the hybrid models: who the user is, what the movie is.

Users: age (standardised), gender, occupation (one-hot, with a column for an
occupation outside the known list). Movies: the 19 genre flags (multi-hot)
and the release year (standardised, with a flag for a missing year, whose
standardised value is then 0, the mean). Rows follow :class:`IdIndex`, so
row ``k`` describes the user or movie of embedding row ``k``.

Features describe users and movies, never ratings, so computing the
standardisation over the whole users and items tables leaks nothing from
any test part.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.data import GENRES, OCCUPATIONS, IdIndex


class UnknownCategoryWarning(UserWarning):
    """A categorical value is outside the known list and went to its 'unknown' column."""


@dataclass(frozen=True)
class Features:
    """Feature matrices aligned with the embedding rows, and their column names."""

    user: np.ndarray  # (n_users, n_user_features) float32
    item: np.ndarray  # (n_items, n_item_features) float32
    user_names: tuple[str, ...]
    item_names: tuple[str, ...]


def _standardise(values: pd.Series) -> np.ndarray:
    values = values.astype("float64")
    std = values.std(ddof=0)
    scaled = (values - values.mean()) / (std if std > 0 else 1.0)
    return scaled.fillna(0.0).to_numpy()


def _one_hot(values: pd.Series, known: tuple[str, ...], name: str) -> pd.DataFrame:
    unknown = ~values.isin(known)
    if unknown.any():
        examples = sorted(values[unknown].astype(str).unique())[:5]
        warnings.warn(
            f"{int(unknown.sum())} {name} values outside the known list ({examples}) "
            f"are encoded in the column {name}=unknown",
            UnknownCategoryWarning,
            stacklevel=3,
        )
    columns = {f"{name}={v}": (values == v).to_numpy() for v in known}
    columns[f"{name}=unknown"] = unknown.to_numpy()
    return pd.DataFrame(columns, index=values.index)


def user_features(users: pd.DataFrame, index: IdIndex) -> pd.DataFrame:
    """Age, gender and occupation of each user, one row per embedding row."""
    users = users.set_index("user_id").loc[index.user_ids]
    frame = pd.DataFrame({"age": _standardise(users["age"])}, index=users.index)
    frame["gender=F"] = (users["gender"] == "F").to_numpy()
    frame = frame.join(_one_hot(users["occupation"], OCCUPATIONS, "occupation"))
    return frame.astype("float32")


def item_features(items: pd.DataFrame, index: IdIndex) -> pd.DataFrame:
    """Genres and release year of each movie, one row per embedding row."""
    items = items.set_index("item_id").loc[index.item_ids]
    frame = items[list(GENRES)].astype("float32")
    frame.columns = [f"genre={g}" for g in GENRES]
    frame["year"] = _standardise(items["release_year"])
    frame["year missing"] = items["release_year"].isna().to_numpy()
    return frame.astype("float32")


def build_features(
    users: pd.DataFrame, items: pd.DataFrame, index: IdIndex
) -> Features:
    """Both feature matrices, ready to hand to a hybrid model."""
    user, item = user_features(users, index), item_features(items, index)
    return Features(
        user.to_numpy(), item.to_numpy(), tuple(user.columns), tuple(item.columns)
    )
