"""Content features for the hybrid models: who the user is, what the movie is.

Users: age (standardised), gender, occupation (one-hot, with a column for an
occupation outside the known list), each where the release has it: 100k and
1M do, 10M and later releases have no demographics, so their user matrix
has no columns. Movies: the genre flags of the release (multi-hot; 19 for
100k, 18 for 1M, 20 later) and the release year (standardised, with a flag
for a missing year, whose standardised value is then 0, the mean). Rows
follow :class:`IdIndex`, so row ``k`` describes the user or movie of
embedding row ``k``.

Features describe users and movies, never ratings, so computing the
standardisation over the whole users and items tables leaks nothing from
any test part.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.data import OCCUPATIONS, IdIndex, genre_columns


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
    """Age, gender and occupation of each user, one row per embedding row.

    Each of the three columns is encoded only if the users table has it; a
    table with ``user_id`` alone (a release without demographics) gives a
    frame with one row per user and no columns. The occupation list is the
    column's categories when it is categorical (1M), else :data:`OCCUPATIONS`
    (100k).
    """
    users = users.set_index("user_id").loc[index.user_ids]
    frame = pd.DataFrame(index=users.index)
    if "age" in users:
        frame["age"] = _standardise(users["age"])
    if "gender" in users:
        frame["gender=F"] = (users["gender"] == "F").to_numpy()
    if "occupation" in users:
        occupation = users["occupation"]
        frame = frame.join(
            _one_hot(occupation, _known_occupations(occupation), "occupation")
        )
    return frame.astype("float32")


def _known_occupations(occupation: pd.Series) -> tuple[str, ...]:
    if isinstance(occupation.dtype, pd.CategoricalDtype):
        return tuple(occupation.cat.categories)
    return OCCUPATIONS


def user_feature_row(
    users: pd.DataFrame,
    *,
    age: float | None = None,
    gender: str | None = None,
    occupation: str | None = None,
) -> np.ndarray:
    """Encode a newcomer's demographics exactly as :func:`user_features` encodes a user.

    Parameters
    ----------
    users : DataFrame
        The users table the model's features were built from. Its age mean
        and standard deviation standardise ``age``, and its columns decide
        which features exist.
    age, gender, occupation : optional
        What the newcomer told us; gender is ``"F"`` or ``"M"``. A field
        left out gets the mean of its columns over ``users``, the value
        that says least about the newcomer.

    Returns
    -------
    ndarray of shape (n_user_features,), float32
        In the column order of :func:`user_features`.

    Raises
    ------
    ValueError
        When a field is given that the users table does not have, or the
        gender is neither ``"F"`` nor ``"M"``.
    """
    with warnings.catch_warnings():
        # The table's own unknown occupations were reported when the model's
        # features were built; only the newcomer's are news here.
        warnings.simplefilter("ignore", UnknownCategoryWarning)
        reference = user_features(
            users, IdIndex(np.sort(users["user_id"].to_numpy()), np.array([]))
        )
    # Missing fields stay at the population mean (0 for the standardised age).
    row = reference.mean().astype("float64")
    given = {"age": age, "gender": gender, "occupation": occupation}
    for name, value in given.items():
        if value is not None and name not in users:
            raise ValueError(
                f"{name}={value!r} was given but the users table has no {name} "
                "column; leave it out for this release"
            )
    if age is not None:
        ages = users["age"].astype("float64")
        std = ages.std(ddof=0)
        row["age"] = (float(age) - ages.mean()) / (std if std > 0 else 1.0)
    if gender is not None:
        if gender not in ("F", "M"):
            raise ValueError(f'gender={gender!r} is not allowed: use "F" or "M"')
        row["gender=F"] = float(gender == "F")
    if occupation is not None:
        one_hot = _one_hot(
            pd.Series([occupation]),
            _known_occupations(users["occupation"]),
            "occupation",
        )
        for column in one_hot.columns:
            row[column] = float(one_hot[column].iloc[0])
    return row.to_numpy(dtype=np.float32)


def item_features(items: pd.DataFrame, index: IdIndex) -> pd.DataFrame:
    """Genres and release year of each movie, one row per embedding row."""
    genres = genre_columns(items)
    items = items.set_index("item_id").loc[index.item_ids]
    frame = items[genres].astype("float32")
    frame.columns = [f"genre={g}" for g in genres]
    frame["year"] = _standardise(items["release_year"])
    frame["year missing"] = items["release_year"].isna().to_numpy()
    return frame.astype("float32")


def build_features(
    users: pd.DataFrame, items: pd.DataFrame, index: IdIndex
) -> Features:
    """Both feature matrices, ready to hand to a hybrid model.

    Returns
    -------
    Features
        ``user`` has shape (n_users, n_user_features), ``item`` has shape
        (n_items, n_item_features), both float32.

    Notes
    -----
    Without demographics (``users`` holds only ``user_id``, as for ml-10m,
    ml-20m, ml-25m and ml-latest-small) ``user`` has shape (n_users, 0).
    The model builders read that width as "no user features": the hybrid
    model then has no user-feature branch and knows a user only through
    the user embeddings, while movies still bring their genres and year.
    """
    user, item = user_features(users, index), item_features(items, index)
    return Features(
        user.to_numpy(), item.to_numpy(), tuple(user.columns), tuple(item.columns)
    )


def _kinds(names: tuple[str, ...], labels: dict[str, str]) -> list[str]:
    """The readable kinds of feature present among the column names, in order."""
    found = []
    for name in names:
        kind = labels.get(name.split("=")[0])
        if kind and kind not in found:
            found.append(kind)
    return found


_USER_KINDS = {"age": "age", "gender": "gender", "occupation": "occupation"}
_ITEM_KINDS = {"genre": "genres", "year": "release year"}


def describe_features(features: Features, dataset: str) -> str:
    """A sentence saying which features a hybrid model reads, from the matrices.

    Both halves are read from the column names, so the sentence says what
    the model was really given: on ml-100k and ml-1m the user's age, gender
    and occupation and the movie's genres and release year; on the releases
    without demographics the movie's features alone.
    """

    def listed(kinds: list[str]) -> str:
        return (
            kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
        )

    users = _kinds(features.user_names, _USER_KINDS)
    items = _kinds(features.item_names, _ITEM_KINDS)
    width = f"{features.user.shape[1]} user and {features.item.shape[1]} movie columns"
    item_part = f"the movie's {listed(items)}" if items else "no movie features"
    if users:
        return (
            f"On {dataset} the model reads the user's {listed(users)} and {item_part} "
            f"({width})."
        )
    return (
        f"{dataset} records nothing about its users, so the model reads only "
        f"{item_part} ({features.item.shape[1]} columns) and knows a user through "
        "the user's embeddings alone."
    )
