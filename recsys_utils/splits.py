"""Train / validation / test splits of a ratings table.

Three protocols, all seeded:

* the canonical five folds u1..u5 of GroupLens (100k only): fold ``k``
  tests on the ``k``-th block of 20,000 ratings of ``u.data`` in file order
  and trains on the other 80,000, which reproduces ``u{k}.base`` /
  ``u{k}.test``;
* five random folds ``random1``..``random5``, the cross-validation of the
  other releases, whose files are sorted by user so that blocks in file
  order would test on users never seen in training: a seeded permutation of
  all ratings cut into five parts, each rating in exactly one test fold;
* a random train / validation / test split (80/10/10 by default), the
  protocol of the original study this book compares with.

In both, early stopping sees only a validation set carved out of the
training ratings. The test ratings are touched once, for the final report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CANONICAL_FOLDS: tuple[str, ...] = ("u1", "u2", "u3", "u4", "u5")
RANDOM_FOLDS: tuple[str, ...] = tuple(f"random{k}" for k in range(1, 6))
SPLITS: tuple[str, ...] = (*CANONICAL_FOLDS, "random")


@dataclass(frozen=True)
class Split:
    """Three disjoint parts of one ratings table."""

    name: str
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
        }


def canonical_fold(
    ratings: pd.DataFrame, fold: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and test ratings of canonical fold ``u{fold}``.

    ``ratings`` must be in the order of ``u.data``. GroupLens' script sorts
    each part by user and item; the rows are the same, only the order differs.
    """
    if fold not in range(1, len(CANONICAL_FOLDS) + 1):
        raise ValueError(
            f"fold={fold!r} is not a canonical fold; use 1 to {len(CANONICAL_FOLDS)}"
        )
    block = len(ratings) // len(CANONICAL_FOLDS)
    in_test = np.zeros(len(ratings), dtype=bool)
    in_test[(fold - 1) * block : fold * block] = True
    return ratings[~in_test], ratings[in_test]


def random_fold(
    ratings: pd.DataFrame, fold: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and test ratings of random fold ``random{fold}``.

    One seeded permutation of the rows, the same for every fold of a seed,
    is cut into five parts as even as can be; fold ``k`` tests on part
    ``k``, so every rating is in exactly one test fold. Both parts keep the
    table's order.
    """
    if fold not in range(1, len(RANDOM_FOLDS) + 1):
        raise ValueError(
            f"fold={fold!r} is not a random fold; use 1 to {len(RANDOM_FOLDS)}"
        )
    order = np.random.default_rng(seed).permutation(len(ratings))
    in_test = np.zeros(len(ratings), dtype=bool)
    in_test[np.array_split(order, len(RANDOM_FOLDS))[fold - 1]] = True
    return ratings[~in_test], ratings[in_test]


def cross_validation_folds(dataset: str) -> tuple[str, ...]:
    """The five folds a release is cross-validated on: u1..u5 for ml-100k, else random."""
    return CANONICAL_FOLDS if dataset == "ml-100k" else RANDOM_FOLDS


def holdout(
    ratings: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off a random ``fraction`` of the rows; return (rest, held out)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction={fraction!r} must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    n_held = int(round(fraction * len(ratings)))
    held = np.zeros(len(ratings), dtype=bool)
    held[rng.permutation(len(ratings))[:n_held]] = True
    return ratings[~held], ratings[held]


def make_split(
    ratings: pd.DataFrame,
    split: str,
    *,
    seed: int,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Split:
    """Build the named split.

    Parameters
    ----------
    ratings : DataFrame
        The ratings table in ``u.data`` order.
    split : {"u1", ..., "u5", "random1", ..., "random5", "random"}
        A canonical fold, a random fold, or the random split.
    seed : int
        Seeds the random test part (``"random"``), the random folds'
        permutation and the validation carve-out.
    valid_fraction : float
        Share of all ratings that the validation set takes. For a canonical
        fold it is carved from the fold's training part, so ``0.1`` leaves
        80,000 - 10,000 ratings for training.
    test_fraction : float
        Share of all ratings in the random test part (ignored for folds).
    """
    if split in CANONICAL_FOLDS:
        train, test = canonical_fold(ratings, CANONICAL_FOLDS.index(split) + 1)
    elif split in RANDOM_FOLDS:
        train, test = random_fold(ratings, RANDOM_FOLDS.index(split) + 1, seed)
    elif split == "random":
        train, test = holdout(ratings, test_fraction, seed)
    else:
        known = ", ".join((*SPLITS, *RANDOM_FOLDS))
        raise ValueError(f"split={split!r} is unknown; use one of {known}")
    # A distinct stream for the carve-out, so it does not mirror the test draw.
    train, valid = holdout(train, valid_fraction * len(ratings) / len(train), seed + 1)
    return Split(split, train, valid, test)


def cold_start_split(
    ratings: pd.DataFrame,
    *,
    kind: str,
    fraction: float,
    seed: int,
    max_item_ratings: int | None = None,
    valid_fraction: float = 0.1,
) -> Split:
    """Hold out whole users or whole rarely rated movies: every rating of them is test.

    Parameters
    ----------
    ratings : DataFrame
        The ratings table.
    kind : {"users", "movies"}
        ``"users"``: a random ``fraction`` of all users. ``"movies"``: a
        random ``fraction`` of the movies with at most ``max_item_ratings``
        ratings (all movies when it is None).
    fraction : float
        Share of the eligible users or movies held out, in (0, 1).
    seed : int
        Seeds the choice of held-out ids and the validation carve-out.
    valid_fraction : float
        Share of the remaining ratings kept for validation (early stopping).

    Returns
    -------
    Split
        Named ``"new users"`` or ``"new movies"``. No held-out user (or
        movie) has a rating in ``train`` or ``valid``.
    """
    if kind not in ("users", "movies"):
        raise ValueError(f"kind={kind!r} is unknown; use 'users' or 'movies'")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction={fraction!r} must lie strictly between 0 and 1")
    column = "user_id" if kind == "users" else "item_id"
    counts = ratings[column].value_counts().sort_index()
    if max_item_ratings is not None and kind == "movies":
        counts = counts[counts <= max_item_ratings]
    eligible = counts.index.to_numpy()
    n_held = int(round(fraction * len(eligible)))
    if n_held == 0:
        raise ValueError(
            f"fraction={fraction!r} of {len(eligible)} eligible {kind} holds out none; "
            "raise fraction (or max_item_ratings)"
        )
    rng = np.random.default_rng(seed)
    held = rng.choice(eligible, size=n_held, replace=False)
    in_test = ratings[column].isin(held).to_numpy()
    rest, test = ratings[~in_test], ratings[in_test]
    train, valid = holdout(rest, valid_fraction, seed + 1)
    return Split(f"new {kind}", train, valid, test)
