"""The figures every model chapter draws, shown inline and saved as PNG.

Each function returns a matplotlib Figure; :func:`save_figure` writes it to
``plots/<chapter>_<name>.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.metrics import confusion_matrix, roc_curve

from recsys_utils import paths
from recsys_utils._io import atomic_path
from recsys_utils.metrics import FIVE_STARS, RatingReport, RatingScale, rating_to_class

WIDTH = 10.0  # inches: the book's text width at 100 dpi


def use_book_style() -> None:
    """Seaborn's clean style at a size that reads well at the book's width."""
    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    plt.rcParams.update(
        {"figure.dpi": 100, "savefig.dpi": 120, "savefig.bbox": "tight"}
    )


def save_figure(fig: plt.Figure, chapter: str, name: str) -> Path:
    path = paths.plots_dir() / f"{chapter}_{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def training_history(
    history: pd.DataFrame, best_epoch: int, *, loss_name: str = "loss"
) -> plt.Figure:
    """Training and validation loss, and validation RMSE / MAE, per epoch."""
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    ax_loss.plot(
        history["epoch"], history["train_loss"], marker="o", ms=3, label="train"
    )
    ax_loss.plot(
        history["epoch"], history["val_loss"], marker="o", ms=3, label="validation"
    )
    ax_loss.set(xlabel="epoch", ylabel=loss_name, title="Loss")
    ax_metric.plot(
        history["epoch"], history["val_rmse"], marker="o", ms=3, label="validation RMSE"
    )
    ax_metric.plot(
        history["epoch"], history["val_mae"], marker="o", ms=3, label="validation MAE"
    )
    ax_metric.set(xlabel="epoch", ylabel="rating error", title="Validation error")
    for ax in (ax_loss, ax_metric):
        ax.axvline(
            best_epoch,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"best epoch ({best_epoch})",
        )
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def regression_errors(
    y_true: np.ndarray, y_pred: np.ndarray, report: RatingReport
) -> plt.Figure:
    """MAE and RMSE per true rating, the error distribution, predicted against true."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    error = y_pred - y_true
    frame = pd.DataFrame({"true rating": y_true, "prediction": y_pred, "error": error})
    per_rating = frame.groupby("true rating")["error"].agg(
        MAE=lambda e: np.abs(e).mean(), RMSE=lambda e: np.sqrt((e**2).mean())
    )

    fig, axes = plt.subplots(1, 3, figsize=(WIDTH * 1.2, 3.6))
    per_rating.plot.bar(ax=axes[0], rot=0)
    axes[0].set(
        ylabel="error",
        title=f"Per rating (overall MAE {report.mae:.3f}, RMSE {report.rmse:.3f})",
    )
    axes[0].title.set_fontsize("small")
    sns.histplot(error, bins=60, ax=axes[1])
    axes[1].set(xlabel="prediction - truth", title="Error distribution")
    sns.violinplot(
        data=frame, x="true rating", y="prediction", ax=axes[2], cut=0, inner="quartile"
    )
    # The violins sit at 0, 1, ... in the order of the true ratings present.
    present = np.sort(np.unique(y_true))
    axes[2].plot(
        range(len(present)), present, color="black", linestyle=":", linewidth=1
    )
    axes[2].set(title="Predicted against true")
    fig.tight_layout()
    return fig


def confusion(
    y_true: np.ndarray, y_class: np.ndarray, scale: RatingScale = FIVE_STARS
) -> plt.Figure:
    """Confusion matrix as counts and normalised by true rating (rows)."""
    # Class indices: scikit-learn takes half-star ratings for a continuous target.
    counts = confusion_matrix(
        rating_to_class(np.asarray(y_true), scale),
        rating_to_class(np.asarray(y_class), scale),
        labels=range(scale.n_levels),
    )
    labels = [scale.label(level) for level in scale.levels]
    with np.errstate(invalid="ignore"):
        normalised = counts / counts.sum(axis=1, keepdims=True)
    # Ten half-star levels need wider cells than five whole stars to stay legible.
    grow = max(1.0, scale.n_levels / 7)
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH * grow, 4.0 * grow))
    for ax, matrix, fmt, title in (
        (axes[0], counts, "d", "Counts"),
        (axes[1], normalised, ".2f", "Share of each true rating"),
    ):
        sns.heatmap(
            matrix,
            annot=True,
            fmt=fmt,
            cmap="Blues",
            cbar=False,
            ax=ax,
            xticklabels=labels,
            yticklabels=labels,
        )
        ax.set(xlabel="predicted rating", ylabel="true rating", title=title)
    fig.tight_layout()
    return fig


def roc_curves(
    y_true: np.ndarray,
    scores: np.ndarray,
    report: RatingReport,
    scale: RatingScale = FIVE_STARS,
) -> plt.Figure:
    """One-vs-rest ROC curve of each rating, its AUC in the legend."""
    y_true = np.asarray(y_true)
    fig, ax = plt.subplots(figsize=(WIDTH * 0.6, 4.6))
    for position, rating in enumerate(scale.levels):
        positive = y_true == rating
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, scores[:, position])
        ax.plot(
            fpr,
            tpr,
            label=f"rating {scale.label(rating)} (AUC {report.auc[rating]:.3f})",
        )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="ROC, one rating against the rest",
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def per_rating_metrics(report: RatingReport) -> plt.Figure:
    """Precision, recall and F1 of each rating as grouped bars."""
    frame = pd.DataFrame(
        {
            "precision": report.precision_per_rating,
            "recall": report.recall_per_rating,
            "F1": report.f1_per_rating,
        }
    )
    frame.index = [f"{rating:g}" for rating in frame.index]
    frame.index.name = "rating"
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 3.6))
    frame.plot.bar(ax=ax, rot=0)
    ax.set(ylabel="score", ylim=(0, 1), title="Per-rating classification metrics")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def cross_validation(table: pd.DataFrame) -> plt.Figure:
    """Every metric over the canonical folds: mean as a bar, spread as an error bar.

    ``table`` has one row per fold, as :meth:`CrossValidation.table` returns,
    with an ``auc_<rating>`` column per rating level of the release. Each
    fold's value is drawn as a dot on its bar.
    """
    auc_columns = [column for column in table.columns if column.startswith("auc_")]
    groups = (
        ("Rating error", ["rmse", "mae"], ["RMSE", "MAE"]),
        (
            "Classes",
            ["accuracy", "precision", "recall", "f1", "f1_weighted"],
            ["accuracy", "precision", "recall", "F1 macro", "F1 weighted"],
        ),
        (
            "ROC AUC per rating",
            auc_columns,
            [column.removeprefix("auc_") for column in auc_columns],
        ),
    )
    fig, axes = plt.subplots(
        1, 3, figsize=(WIDTH * 1.3, 3.8), gridspec_kw={"width_ratios": [2, 5, 5]}
    )
    for ax, (title, columns, labels) in zip(axes, groups, strict=True):
        values = table[columns].astype(float)
        positions = np.arange(len(columns))
        ax.bar(positions, values.mean(), yerr=values.std(ddof=1), capsize=4, alpha=0.7)
        for position, column in zip(positions, columns, strict=True):
            jitter = np.linspace(-0.15, 0.15, len(values))
            ax.scatter(position + jitter, values[column], color="black", s=10, zorder=3)
        ax.set_xticks(positions, labels, rotation=30 if len(columns) > 3 else 0)
        ax.set(title=title)
    axes[0].set_ylabel(f"mean ± std over {len(table)} folds (dots: folds)")
    fig.tight_layout()
    return fig


def latent_space(
    codes: np.ndarray,
    ratings: np.ndarray,
    item_ids: np.ndarray,
    *,
    seed: int = 0,
    scale: RatingScale = FIVE_STARS,
) -> plt.Figure:
    """The latent codes of (user, movie) pairs projected to 2-D by PCA.

    Left: up to 5,000 pairs, coloured by their true rating. Right: one point
    per movie, the mean of its pairs' codes, coloured by its mean rating and
    sized by its number of ratings. Both panels share one projection.
    """
    from sklearn.decomposition import PCA

    codes, ratings, item_ids = (
        np.asarray(codes),
        np.asarray(ratings),
        np.asarray(item_ids),
    )
    pca = PCA(n_components=2, random_state=seed).fit(codes)
    shown = np.random.default_rng(seed).permutation(len(codes))[:5000]
    pairs = pca.transform(codes[shown])
    frame = pd.DataFrame(codes).assign(item_id=item_ids, rating=ratings)
    movies = frame.groupby("item_id")
    movie_xy = pca.transform(movies[list(range(codes.shape[1]))].mean().to_numpy())
    mean_rating, count = movies["rating"].mean(), movies.size()

    fig, axes = plt.subplots(1, 2, figsize=(WIDTH * 1.1, 4.4))
    cmap = plt.get_cmap("RdYlBu", scale.n_levels)
    half_step = scale.step / 2
    points = axes[0].scatter(
        pairs[:, 0],
        pairs[:, 1],
        c=ratings[shown],
        cmap=cmap,
        vmin=scale.minimum - half_step,
        vmax=scale.maximum + half_step,
        s=4,
        alpha=0.6,
    )
    fig.colorbar(points, ax=axes[0], ticks=scale.levels, label="true rating")
    axes[0].set(title="(user, movie) pairs", xlabel="PC 1", ylabel="PC 2")
    movie_points = axes[1].scatter(
        movie_xy[:, 0],
        movie_xy[:, 1],
        c=mean_rating,
        cmap="RdYlBu",
        s=4 + 40 * count / count.max(),
        alpha=0.7,
    )
    fig.colorbar(movie_points, ax=axes[1], label="mean rating of the movie")
    share = pca.explained_variance_ratio_.sum()
    axes[1].set(
        title=f"Movies (mean code); PCA keeps {share:.0%} of the variance",
        xlabel="PC 1",
    )
    axes[1].title.set_fontsize("small")
    fig.tight_layout()
    return fig


def rmse_by_model(fold_rmse: pd.DataFrame) -> plt.Figure:
    """Mean RMSE over the folds per model, best first, with its spread and each fold.

    ``fold_rmse`` has one row per model and one column per fold.
    """
    order = fold_rmse.mean(axis=1).sort_values().index
    values = fold_rmse.loc[order]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.45 * len(order) + 1.2))
    positions = np.arange(len(order))
    ax.barh(
        positions,
        values.mean(axis=1),
        xerr=values.std(axis=1, ddof=1),
        capsize=3,
        alpha=0.7,
    )
    for position, (_, row) in zip(positions, values.iterrows(), strict=True):
        ax.scatter(row, np.full(len(row), position), color="black", s=8, zorder=3)
    low = values.min().min()
    ax.set_xlim(low - 0.02, values.max().max() + 0.02)
    ax.set_yticks(positions, order)
    ax.invert_yaxis()
    ax.set(
        xlabel=f"RMSE, mean ± std over {values.shape[1]} folds (dots: folds)",
        title="Rating error per model, same folds for all",
    )
    fig.tight_layout()
    return fig


def accuracy_vs_time(table: pd.DataFrame, *, x: str = "train s") -> plt.Figure:
    """Accuracy against training time, one labelled point per model (log time)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    points = table[[x, "accuracy"]].apply(pd.to_numeric, errors="coerce").dropna()
    ax.scatter(points[x], points["accuracy"], zorder=3)
    for model, row in points.iterrows():
        ax.annotate(
            model,
            (row[x], row["accuracy"]),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set(
        xlabel="training time, seconds (log scale)",
        ylabel="accuracy of rounded predictions",
        title="What accuracy costs in training time",
    )
    fig.tight_layout()
    return fig


def per_rating_f1_by_model(f1: pd.DataFrame) -> plt.Figure:
    """Heat map of F1 per rating (columns) for every model (rows)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 0.4 * len(f1) + 1.4))
    sns.heatmap(
        f1.astype(float),
        annot=True,
        fmt=".2f",
        cmap="viridis",
        vmin=0,
        vmax=max(0.7, float(np.nanmax(f1.to_numpy(dtype=float)))),
        cbar_kws={"label": "F1"},
        ax=ax,
    )
    ax.set(xlabel="rating", ylabel="", title="F1 per rating of the rounded predictions")
    fig.tight_layout()
    return fig


def run_time_chart(times: pd.DataFrame) -> plt.Figure:
    """When each chapter ran, one bar per chapter along the build's clock.

    ``times`` is :func:`recsys_utils.performance.load_run_times`: chapters
    that overlap ran side by side, each on one core.
    """
    fig, ax = plt.subplots(figsize=(WIDTH, 0.4 * len(times) + 1.3))
    positions = np.arange(len(times))
    minutes = times[["start", "end"]] / 60
    ax.barh(positions, minutes["end"] - minutes["start"], left=minutes["start"])
    for position, seconds in zip(positions, times["seconds"], strict=True):
        ax.annotate(
            f"{seconds / 60:.1f} min",
            (minutes["end"].iloc[position], position),
            textcoords="offset points",
            xytext=(4, -3),
            fontsize=8,
        )
    ax.set_yticks(positions, times.index)
    ax.invert_yaxis()
    ax.set_xlim(0, minutes["end"].max() * 1.12)
    ax.set(xlabel="minutes since the build started", title="When each chapter ran")
    fig.tight_layout()
    return fig


def scaling_chart(scaling: pd.DataFrame) -> plt.Figure:
    """Seconds per epoch and peak memory against ratings, one line per optimiser.

    ``scaling`` is :func:`recsys_utils.performance.scaling_table`; both axes
    are logarithmic, so a power law is a straight line.
    """
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.8))
    for optimizer, rows in scaling.groupby("optimizer", sort=False):
        rows = rows.sort_values("ratings")
        axes[0].plot(rows["ratings"], rows["seconds_per_epoch"], "o-", label=optimizer)
        axes[1].plot(rows["ratings"], rows["peak_mb"], "o-", label=optimizer)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("ratings in the synthetic set (log scale)")
        ax.legend()
    axes[0].set(ylabel="seconds per epoch", title="Time per epoch")
    axes[1].set(ylabel="peak memory, MiB", title="Memory of the training process")
    fig.tight_layout()
    return fig
