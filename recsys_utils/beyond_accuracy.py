r"""Beyond accuracy: what a set of recommendation lists looks like as a whole.

Rating error and hit rate ask whether a model predicts what a user liked.
These metrics ask what the lists are made of [kaminskas2016]_:

* :func:`catalogue_coverage`: how much of the catalogue is ever recommended;
* :func:`popularity_share`: how many recommended slots go to a given set of
  popular movies;
* :func:`intra_list_diversity`: how different the movies within a list are,
  by their genres;
* :func:`novelty`: how unexpected the movies are, by their self-information
  :math:`-\log_2 p(i)`.

Each takes ``lists``, one sequence of item ids per user (a dict of them, as
:func:`recsys_utils.recommend.top_n_lists` returns, works as well), and a
plain description of the movies; :func:`genre_sets`, :func:`item_popularity`
and :func:`most_rated` build those descriptions from the MovieLens tables.

References
----------
.. [kaminskas2016] M. Kaminskas and D. Bridge, "Diversity, Serendipity,
   Novelty, and Coverage: A Survey and Empirical Analysis of
   Beyond-Accuracy Objectives in Recommender Systems", ACM TiiS 7(1), 2016.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from recsys_utils.data import genre_columns

Lists = Iterable[Sequence[int]] | Mapping[int, Sequence[int]]


def _as_lists(lists: Lists) -> list[list[int]]:
    values = lists.values() if isinstance(lists, Mapping) else lists
    result = [[int(i) for i in items] for items in values]
    if not result:
        raise ValueError("lists is empty; give at least one recommendation list")
    return result


def catalogue_coverage(lists: Lists, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list.

    Parameters
    ----------
    lists : iterable of sequences of int
        Each user's recommended item ids.
    n_items : int
        Size of the catalogue.

    Returns
    -------
    float
        ``len(union of lists) / n_items``, in [0, 1].

    Examples
    --------
    >>> catalogue_coverage([[1, 2], [2, 3]], n_items=10)
    0.3
    """
    if n_items < 1:
        raise ValueError(f"n_items={n_items!r} must be >= 1")
    distinct = set(itertools.chain.from_iterable(_as_lists(lists)))
    return len(distinct) / n_items


def popularity_share(lists: Lists, popular_items: Collection[int]) -> float:
    """Share of all recommended slots taken by ``popular_items``.

    Parameters
    ----------
    lists : iterable of sequences of int
        Each user's recommended item ids.
    popular_items : collection of int
        The item ids counted as popular, for example the 100 most rated
        (:func:`most_rated`).

    Returns
    -------
    float
        Slots holding a popular movie over all slots, in [0, 1].

    Examples
    --------
    >>> popularity_share([[1, 2], [1, 3]], popular_items={1})
    0.5
    """
    slots = list(itertools.chain.from_iterable(_as_lists(lists)))
    if not slots:
        raise ValueError("every list is empty; there are no slots to count")
    popular = {int(i) for i in popular_items}
    return sum(item in popular for item in slots) / len(slots)


def jaccard_distance(a: Collection, b: Collection) -> float:
    r""":math:`1 - |A \cap B| / |A \cup B|`; 0 for two empty sets."""
    a, b = set(a), set(b)
    union = a | b
    return 1.0 - len(a & b) / len(union) if union else 0.0


def intra_list_diversity(
    lists: Lists, item_genres: Mapping[int, Collection[str]]
) -> float:
    r"""Mean pairwise Jaccard distance of genre sets within a list, over lists.

    For a list :math:`L` of :math:`n \ge 2` movies,

    .. math::

        \mathrm{ILD}(L) = \frac{2}{n(n-1)} \sum_{i < j} 1 -
        \frac{|G_i \cap G_j|}{|G_i \cup G_j|},

    with :math:`G_i` the genres of movie :math:`i`; the result is the mean
    over lists. A list of one movie has no pairs and is skipped.

    Parameters
    ----------
    lists : iterable of sequences of int
        Each user's recommended item ids.
    item_genres : mapping
        ``item_id -> collection of genre names`` (see :func:`genre_sets`).

    Returns
    -------
    float
        In [0, 1]: 0 when every list repeats one genre set.

    Examples
    --------
    >>> genres = {1: {"Comedy"}, 2: {"Comedy", "Romance"}, 3: {"Drama"}}
    >>> intra_list_diversity([[1, 2, 3]], genres)  # (0.5 + 1 + 1) / 3
    0.8333333333333334
    """
    per_list = []
    for items in _as_lists(lists):
        if len(items) < 2:
            continue
        missing = [i for i in items if i not in item_genres]
        if missing:
            raise KeyError(f"movie {missing[0]} has no entry in item_genres")
        distances = [
            jaccard_distance(item_genres[a], item_genres[b])
            for a, b in itertools.combinations(items, 2)
        ]
        per_list.append(np.mean(distances))
    if not per_list:
        raise ValueError("no list has two movies; diversity needs pairs")
    return float(np.mean(per_list))


def novelty(lists: Lists, item_popularity: Mapping[int, float]) -> float:
    r"""Mean self-information :math:`-\log_2 p(i)` of the recommended movies.

    :math:`p(i)` is the share of users who rated movie :math:`i`
    (:func:`item_popularity`); a movie every user rated has novelty 0, one
    rated by 1 user in 1024 has novelty 10 bits. The mean is taken within
    each list, then over lists.

    Parameters
    ----------
    lists : iterable of sequences of int
        Each user's recommended item ids.
    item_popularity : mapping
        ``item_id -> p(i)`` in (0, 1].

    Returns
    -------
    float
        In bits.

    Examples
    --------
    >>> novelty([[1, 2]], {1: 0.5, 2: 0.25})  # (1 + 2) / 2
    1.5
    """
    per_list = []
    for items in _as_lists(lists):
        if not items:
            continue
        p = np.array([item_popularity.get(i, 0.0) for i in items], dtype=np.float64)
        if np.any(p <= 0) or np.any(p > 1):
            bad = items[int(np.flatnonzero((p <= 0) | (p > 1))[0])]
            raise ValueError(
                f"movie {bad} has popularity {item_popularity.get(bad)!r}; "
                "p(i) must be in (0, 1], so every recommended movie needs a rating"
            )
        per_list.append(np.mean(-np.log2(p)))
    if not per_list:
        raise ValueError("every list is empty; there is nothing to score")
    return float(np.mean(per_list))


# --------------------------------------------------------------------------
# Descriptions of the movies, from the MovieLens tables


def genre_sets(items: pd.DataFrame) -> dict[int, frozenset[str]]:
    """``item_id -> frozenset of genre names`` from an items table."""
    genres = genre_columns(items)
    flags = items[genres].to_numpy(dtype=bool)
    return {
        int(item): frozenset(g for g, on in zip(genres, row, strict=True) if on)
        for item, row in zip(items["item_id"], flags, strict=True)
    }


def item_popularity(ratings: pd.DataFrame) -> dict[int, float]:
    """``item_id -> share of users who rated it`` (users who rated anything)."""
    n_users = ratings["user_id"].nunique()
    raters = ratings.groupby("item_id")["user_id"].nunique()
    return {int(item): count / n_users for item, count in raters.items()}


def most_rated(ratings: pd.DataFrame, n: int = 100) -> set[int]:
    """The ``n`` most rated movies (ties to the smaller item id)."""
    counts = ratings.groupby("item_id").size().reset_index(name="n")
    counts = counts.sort_values(["n", "item_id"], ascending=[False, True])
    return set(counts["item_id"].head(n).astype(int))
