"""Comparing many models on the same folds: published figures, tests, the table.

The benchmarks chapter fits the classical baselines and reads the five model
chapters' results; this module holds what turns those into a verdict: the
published figures to set beside them, a paired test over folds, a bootstrap
over test ratings, the combined table with the best value of each column,
and the sentences of the conclusion, every number read from the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from recsys_utils.metrics import RatingScale


@dataclass(frozen=True)
class PublishedResult:
    """One figure from the literature, with its protocol and citation key."""

    model: str
    protocol: str
    rmse: float
    source: str  # a key of book/references.bib


#: Published ML-100k RMSEs. Not measured by this book: each is the paper's own
#: figure under its own protocol, quoted with its citation.
LITERATURE: tuple[PublishedResult, ...] = (
    PublishedResult("GLocal-K", "canonical split u1", 0.8889, "han2021"),
    PublishedResult("IGMC", "canonical split u1", 0.905, "zhang2020"),
    PublishedResult("GC-MC", "canonical split u1", 0.910, "vandenberg2017"),
    PublishedResult(
        "GC-MC with side features", "canonical split u1", 0.905, "vandenberg2017"
    ),
    PublishedResult("SVD (scikit-surprise)", "5-fold random CV", 0.934, "hug2020"),
    PublishedResult("SVD++ (scikit-surprise)", "5-fold random CV", 0.919, "hug2020"),
)


def literature_table() -> pd.DataFrame:
    """:data:`LITERATURE` as a table, one row per published model."""
    return pd.DataFrame(
        [
            {
                "model": r.model,
                "protocol": r.protocol,
                "RMSE": r.rmse,
                "source": r.source,
            }
            for r in LITERATURE
        ]
    ).set_index("model")


# --------------------------------------------------------------------------
# Is a difference real?


def paired_fold_tests(fold_rmse: pd.DataFrame, best: str) -> pd.DataFrame:
    """Paired t-tests of ``best`` against every other model over the same folds.

    Parameters
    ----------
    fold_rmse : DataFrame
        One row per model, one column per fold, RMSE in each cell; every model
        must have been scored on the same folds.
    best : str
        The row every other row is compared with.

    Returns
    -------
    DataFrame
        One row per other model: its mean RMSE, the mean and standard
        deviation of its per-fold lead over ``best`` (other - best, so
        positive means ``best`` is better) and the two-sided p-value of a
        paired t-test. Five folds give four degrees of freedom: only a lead
        that holds on every fold comes out small.
    """
    if best not in fold_rmse.index:
        raise KeyError(f"{best!r} is not a row of the fold table")
    if fold_rmse.isna().any().any():
        missing = fold_rmse.index[fold_rmse.isna().any(axis=1)].tolist()
        raise ValueError(
            f"models {missing} lack a fold; score every model on each fold"
        )
    ours = fold_rmse.loc[best].to_numpy(dtype=float)
    rows = {}
    for model, values in fold_rmse.drop(index=best).iterrows():
        theirs = values.to_numpy(dtype=float)
        lead = theirs - ours
        rows[model] = {
            "mean RMSE": theirs.mean(),
            "lead of best": lead.mean(),
            "std of lead": lead.std(ddof=1),
            "p-value (paired t)": float(stats.ttest_rel(theirs, ours).pvalue),
        }
    return pd.DataFrame(rows).T


@dataclass(frozen=True)
class BootstrapResult:
    """RMSE(b) - RMSE(a) on the test ratings, with a bootstrap interval."""

    difference: float
    low: float
    high: float
    p_value: float
    n_resamples: int


def bootstrap_rmse_difference(
    y_true: np.ndarray,
    y_a: np.ndarray,
    y_b: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Paired bootstrap of the RMSE difference between two models' predictions.

    The test ratings are resampled with replacement ``n_resamples`` times,
    the same rows for both models, and RMSE(b) - RMSE(a) is recomputed on
    each resample. The interval is the percentile interval; the p-value is
    twice the share of resamples on the far side of zero (two-sided), at
    least ``1 / n_resamples``.
    """
    y_true, y_a, y_b = (np.asarray(y, dtype=np.float64) for y in (y_true, y_a, y_b))
    if not (y_true.shape == y_a.shape == y_b.shape) or y_true.ndim != 1:
        raise ValueError("y_true, y_a and y_b must be flat arrays of one length")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples!r} must be >= 1")
    error_a, error_b = (y_a - y_true) ** 2, (y_b - y_true) ** 2
    rng = np.random.default_rng(seed)
    n = len(y_true)
    differences = np.empty(n_resamples)
    block = max(1, 2_000_000 // n)  # bound memory: block x n indices at a time
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        rows = rng.integers(0, n, size=(size, n))
        differences[start : start + size] = np.sqrt(
            error_b[rows].mean(axis=1)
        ) - np.sqrt(error_a[rows].mean(axis=1))
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    far_side = min((differences <= 0).mean(), (differences >= 0).mean())
    return BootstrapResult(
        difference=float(np.sqrt(error_b.mean()) - np.sqrt(error_a.mean())),
        low=float(low),
        high=float(high),
        p_value=float(min(1.0, max(2 * far_side, 1 / n_resamples))),
        n_resamples=n_resamples,
    )


# --------------------------------------------------------------------------
# The table

#: Columns of the benchmark table where lower is better; higher elsewhere.
LOWER_IS_BETTER: tuple[str, ...] = (
    "RMSE",
    "MAE",
    "5-fold RMSE",
    "5-fold RMSE std",
    "random-split RMSE",
    "train s",
    "predict s / 20k",
    "parameters",
)
#: Columns that describe cost, not quality: never "best" in the conclusion.
COST_COLUMNS: tuple[str, ...] = ("train s", "predict s / 20k", "parameters")


def best_per_column(table: pd.DataFrame) -> pd.Series:
    """The row holding the best value of each numeric column (NaN ignored)."""
    best = {}
    for column in table.columns:
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().any() and column != "5-fold RMSE std":
            lower = column in LOWER_IS_BETTER
            best[column] = values.idxmin() if lower else values.idxmax()
    return pd.Series(best)


def highlight_best(table: pd.DataFrame, digits: int = 4):
    """A pandas Styler of ``table`` with the best value of each column in bold."""
    best = best_per_column(table)

    def bold(column: pd.Series) -> list[str]:
        return [
            "font-weight: bold" if best.get(column.name) == row else ""
            for row in column.index
        ]

    return table.style.apply(bold).format(precision=digits, na_rep="–")


def rank_agreement(table: pd.DataFrame, a: str, b: str) -> float:
    """Spearman correlation of two columns' orders, rows with both values only.

    Signs are set so that +1 means both columns put the models in the same
    order of quality (whether lower or higher is better in each).
    """
    both = table[[a, b]].apply(pd.to_numeric, errors="coerce").dropna()
    sign = -1 if (a in LOWER_IS_BETTER) != (b in LOWER_IS_BETTER) else 1
    return float(sign * stats.spearmanr(both[a], both[b]).statistic)


# --------------------------------------------------------------------------
# A blend of models


@dataclass(frozen=True)
class Blend:
    r"""A linear blend :math:`\hat r = w_0 + \sum_m w_m \hat r_m`, clipped to the scale."""

    names: tuple[str, ...]
    weights: np.ndarray  # (1 + len(names),): intercept first
    # Lowest and highest rating level; half-star releases start at 0.5.
    bounds: tuple[float, float] = (1.0, 5.0)

    def predict(self, predictions: dict[str, np.ndarray]) -> np.ndarray:
        """Blend the components' predictions of the same ratings, shape (n,)."""
        missing = [name for name in self.names if name not in predictions]
        if missing:
            raise KeyError(f"the blend needs predictions of {missing}")
        columns = np.column_stack([predictions[name] for name in self.names])
        return np.clip(self.weights[0] + columns @ self.weights[1:], *self.bounds)


def fit_blend(predictions: dict[str, np.ndarray], y_true: np.ndarray) -> Blend:
    """Least-squares blend weights, with an intercept, on held-out ratings.

    ``predictions`` maps each component to its predictions of the ratings
    ``y_true``; they must be ratings the components did not learn from (the
    validation part), or the blend rewards overfitting. Least squares with an
    intercept can always put all weight on one component, so on the ratings
    it was fitted to the blend is never worse than its best component.
    """
    if not predictions:
        raise ValueError("a blend needs at least one component")
    names = tuple(predictions)
    y_true = np.asarray(y_true, dtype=np.float64)
    columns = np.column_stack([np.asarray(predictions[n], float) for n in names])
    if columns.shape[0] != len(y_true):
        raise ValueError(
            f"predictions of {columns.shape[0]} ratings for {len(y_true)} true ones"
        )
    design = np.column_stack([np.ones(len(y_true)), columns])
    weights, *_ = np.linalg.lstsq(design, y_true, rcond=None)
    scale = RatingScale.from_ratings(y_true)
    return Blend(names, weights, (float(scale.minimum), float(scale.maximum)))
