"""Set-up shared by the chapters: figure style and how warnings are shown."""

from __future__ import annotations

import sys
import warnings

import pandas as pd

from recsys_utils.experiment import CrossValidation, Outcome
from recsys_utils.fallback import DAMPING
from recsys_utils.params import RunParameters
from recsys_utils.plots import use_book_style
from recsys_utils.training import FitResult

_shown: set[str] = set()


def _show_inline(message, category, filename, lineno, file=None, line=None) -> None:
    text = f"{category.__name__}: {message}"
    if text not in _shown:  # the kernel resets warning filters; deduplicate here
        _shown.add(text)
        print(text, file=sys.stdout)


def setup_chapter() -> None:
    """Style the figures, and print warnings as one line of the chapter's output.

    The book treats anything on stderr as a build failure, so that a broken
    chapter cannot slip through. Warnings are part of the story (a metric
    that is undefined for a model, say), so they are printed to stdout
    instead, each distinct message once, where the reader meets them.
    """
    use_book_style()
    _shown.clear()
    warnings.showwarning = _show_inline


def stopping_note(fit: FitResult) -> str:
    """How a run ended: stopped early, or at the epoch limit (still improving or not)."""
    if fit.stopped_early:
        return f"stopped early; best epoch {fit.best_epoch} of {fit.epochs_run}"
    if fit.best_epoch == fit.epochs_run:
        return f"reached the limit of {fit.epochs_run} epochs while still improving"
    return f"ran all {fit.epochs_run} epochs; best epoch {fit.best_epoch}"


def describe_training(fit: FitResult, *, patience: int, loss_name: str = "loss") -> str:
    """A few sentences on a training history, every figure read from it."""
    history = fit.history
    falls = int((history["train_loss"].diff() < 0).sum())
    steps = len(history) - 1
    sentences = [
        f"The training {loss_name} fell from one epoch to the next in {falls} of "
        f"{steps} epochs."
        if steps
        else "Training ran for a single epoch."
    ]
    if fit.stopped_early:
        sentences.append(
            f"The validation error was lowest at epoch {fit.best_epoch}, and after "
            f"{patience} epochs without improvement training stopped."
        )
    elif fit.best_epoch == fit.epochs_run:
        sentences.append(
            f"The validation error was still improving at the last epoch "
            f"({fit.epochs_run}): more epochs could lower it further."
        )
    else:
        sentences.append(
            f"The validation error was lowest at epoch {fit.best_epoch}; training ran "
            f"for all {fit.epochs_run} epochs."
        )
    if (history["val_loss"] < history["train_loss"]).any():
        sentences.append(
            f"In some epochs the validation {loss_name} is below the training "
            f"{loss_name}: dropout and embedding noise act only while training."
        )
    gap = history["val_loss"].iloc[-1] - history["train_loss"].iloc[-1]
    if fit.best_epoch < fit.epochs_run and gap > 0:
        sentences.append(
            f"By the last epoch the validation {loss_name} exceeded the training "
            f"{loss_name} by {gap:.3f}: past the best epoch, training fits the training "
            f"ratings more than the task."
        )
    sentences.append(f"The weights kept are those of epoch {fit.best_epoch}.")
    return " ".join(sentences)


_LABELS = {"rmse": "RMSE", "mae": "MAE", "accuracy": "accuracy", "f1": "macro F1"}


def paired_sentence(paired: pd.DataFrame, metric: str, *, alpha: float = 0.05) -> str:
    """Read one row of :func:`recsys_utils.experiment.paired_fold_comparison` aloud."""
    row = paired.loc[metric]
    change, p_value = row["mean difference"], row["p-value (paired t)"]
    lower_is_better = metric in ("rmse", "mae")
    if change == 0:
        return f"{_LABELS.get(metric, metric)} is unchanged"
    better = change < 0 if lower_is_better else change > 0
    verdict = (
        "consistent over the folds"
        if p_value < alpha
        else "within the noise of five folds"
    )
    return (
        f"{_LABELS.get(metric, metric)} {'improves' if better else 'worsens'} by "
        f"{abs(change):.4f} on average (p = {p_value:.3f}, {verdict})"
    )


def fallback_note(outcome: Outcome) -> str:
    """Say how many test ratings the fallback rule answered, and what it is."""
    count = outcome.fallback["test"]
    if count.replaced == 0:
        return (
            "Every test rating is of a user and a movie seen in training, so the "
            "model predicted all of them."
        )
    share = count.replaced / count.n_ratings
    parts = [
        f"{n:,} {what}"
        for n, what in (
            (count.unseen_items, "of movies without a single training rating"),
            (count.unseen_users, "of users without one"),
        )
        if n
    ]
    return (
        f"{count.replaced:,} of the {count.n_ratings:,} test ratings ({share:.2%}) are "
        f"{' and '.join(parts)}. Their embeddings were never trained, so those "
        "ratings are predicted by a fixed rule instead: the user's mean training "
        f"rating for an unseen movie, the movie's for an unseen user, each damped "
        f"towards the global mean by {DAMPING:g} pseudo-ratings; the metrics above "
        "include them."
    )


_WORDS = {5: "five"}


def folds_phrase(dataset: str) -> str:
    """How the prose names the cross-validation folds of a release."""
    return "the five canonical folds" if dataset == "ml-100k" else "five random folds"


def folds_note(cv: CrossValidation, params: RunParameters) -> str:
    """Say which five folds the cross-validation used, every figure read from them."""
    sizes = [outcome.split.sizes()["test"] for outcome in cv.folds.values()]
    total = sum(sizes)  # the test parts partition the ratings
    names = list(cv.folds)
    span = (
        f"{min(sizes):,}"
        if min(sizes) == max(sizes)
        else f"{min(sizes):,} to {max(sizes):,}"
    )
    if params.dataset == "ml-100k":
        how = (
            f"The folds are GroupLens' canonical {names[0]} to {names[-1]}: each tests on "
            f"a block of {span} ratings of u.data in file order"
        )
    else:
        how = (
            f"{params.dataset} ships no canonical folds, so the folds {names[0]} to "
            f"{names[-1]} are random: one permutation of its {total:,} ratings, seeded "
            f"by seed={params.seed}, cut into {_WORDS.get(len(sizes), len(sizes))} test "
            f"parts of {span} ratings"
        )
    return (
        f"{how}, so that every rating is tested exactly once; each fold carves its "
        "validation ratings from its training part, as the primary split does."
    )


def reference_note(dataset: str) -> str:
    """Why a chapter on another release shows no published figures beside its own."""
    return (
        f"The published figures compared here were measured on ml-100k; this run is on "
        f"{dataset}, so the comparison is left out (run with dataset='ml-100k' for it)."
    )
