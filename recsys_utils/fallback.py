r"""What a model predicts for a user or a movie it never saw in training.

A model's embedding for a user or movie with no training rating was never
fitted: only weight decay touched it, so its output for that pair is an
accident of initialisation. :class:`Fallback` replaces such outputs by a
stated rule computed from the training ratings alone, and counts how often it
did so, so that the chapters can report it.

The rule, fixed in advance rather than tuned:

* a known user and an unseen movie get the user's mean training rating;
* an unseen user and a known movie get the movie's mean training rating;
* when both are unseen, the global mean training rating.

Each mean is damped towards the global one by ``damping`` pseudo-ratings,
:math:`(\sum r + k\,\mu) / (n + k)`, so a user with two ratings does not
get an extreme prediction. Classifiers get the same rule applied to the
distribution over the rating levels instead of the mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.metrics import FIVE_STARS, RatingScale

#: Pseudo-ratings at the global mean added to each user's or movie's own.
DAMPING = 5.0


@dataclass(frozen=True)
class FallbackCount:
    """How many rows of one split the fallback answered."""

    n_ratings: int
    unseen_users: int  # rows whose user has no training rating
    unseen_items: int  # rows whose movie has no training rating
    replaced: int  # rows with either (or both)

    def to_dict(self) -> dict[str, int]:
        return {
            "n_ratings": self.n_ratings,
            "unseen_users": self.unseen_users,
            "unseen_items": self.unseen_items,
            "replaced": self.replaced,
        }


@dataclass(frozen=True)
class Fallback:
    """Damped per-user and per-movie rating statistics of a training set.

    Build it with :meth:`from_ratings`; :meth:`apply` rewrites a model's
    predictions where the fallback rule applies.
    """

    global_distribution: np.ndarray  # (n_levels,) share of each rating level
    user_distribution: pd.DataFrame  # index user_id, one column per level, damped
    item_distribution: pd.DataFrame  # index item_id, one column per level, damped
    scale: RatingScale = FIVE_STARS

    @classmethod
    def from_ratings(
        cls,
        train: pd.DataFrame,
        damping: float = DAMPING,
        scale: RatingScale = FIVE_STARS,
    ) -> Fallback:
        if damping < 0:
            raise ValueError(f"damping={damping!r} must be >= 0")
        # Whole stars as ints, half stars as floats: either way equal to the levels.
        values = train["rating"].astype(int if scale.whole else float)
        onehot = pd.get_dummies(values).reindex(
            columns=list(scale.levels), fill_value=0
        )
        onehot = onehot.astype(np.float64)
        prior = onehot.mean().to_numpy()

        def damped(key: str) -> pd.DataFrame:
            sums = onehot.groupby(train[key].to_numpy()).sum()
            counts = sums.sum(axis=1).to_numpy()[:, None]
            return (sums + damping * prior) / (counts + damping)

        return cls(prior, damped("user_id"), damped("item_id"), scale)

    @property
    def global_mean(self) -> float:
        return float(
            self.global_distribution @ np.array(self.scale.levels, dtype=np.float64)
        )

    def _distributions(
        self, user_id: np.ndarray, item_id: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fallback distributions (n, n_levels) and the unseen-user / unseen-movie masks."""
        user_known = np.isin(user_id, self.user_distribution.index)
        item_known = np.isin(item_id, self.item_distribution.index)
        result = np.tile(self.global_distribution, (len(user_id), 1))
        only_user = user_known & ~item_known
        only_item = item_known & ~user_known
        result[only_user] = self.user_distribution.loc[user_id[only_user]].to_numpy()
        result[only_item] = self.item_distribution.loc[item_id[only_item]].to_numpy()
        return result, ~user_known, ~item_known

    def covers(self, ratings: pd.DataFrame) -> np.ndarray:
        """True for each row whose user or movie has no training rating."""
        return ~(
            np.isin(ratings["user_id"].to_numpy(), self.user_distribution.index)
            & np.isin(ratings["item_id"].to_numpy(), self.item_distribution.index)
        )

    def apply(
        self, ratings: pd.DataFrame, output: np.ndarray
    ) -> tuple[np.ndarray, FallbackCount]:
        """Replace the model's ``output`` for the rows the rule covers.

        Parameters
        ----------
        ratings : DataFrame
            The rows predicted, with ``user_id`` and ``item_id``.
        output : ndarray
            Predicted ratings, shape (n,), or class probabilities, shape
            (n, n_levels).

        Returns
        -------
        output : ndarray
            A copy with the unseen rows replaced.
        count : FallbackCount
        """
        user_id = ratings["user_id"].to_numpy()
        item_id = ratings["item_id"].to_numpy()
        distribution, unseen_user, unseen_item = self._distributions(user_id, item_id)
        replace = unseen_user | unseen_item
        output = np.array(output, copy=True)
        if output.ndim == 2:
            output[replace] = distribution[replace].astype(output.dtype)
        else:
            expected = distribution[replace] @ np.array(
                self.scale.levels, dtype=np.float64
            )
            output[replace] = expected.astype(output.dtype)
        count = FallbackCount(
            len(ratings),
            int(unseen_user.sum()),
            int(unseen_item.sum()),
            int(replace.sum()),
        )
        return output, count
