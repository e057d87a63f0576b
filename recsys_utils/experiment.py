"""One experiment = one split, one model, trained and scored; and its files.

The chapters call :func:`run_experiment` once per protocol and
:func:`save_results` once at the end; later chapters read the JSON and
CSV files written here, so no number is ever copied by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from torch import nn

from recsys_utils import distributed, paths
from recsys_utils._io import atomic_path, write_text_atomic
from recsys_utils.data import IdIndex, MovieLens
from recsys_utils.fallback import Fallback, FallbackCount
from recsys_utils.metrics import RatingReport, expected_rating, rating_report
from recsys_utils.models import count_parameters
from recsys_utils.params import RunParameters, resolve_device
from recsys_utils.splits import Split, cross_validation_folds, make_split
from recsys_utils.training import (
    Calibration,
    FitResult,
    RatingTensors,
    TrainConfig,
    calibrate,
    fit,
    predict,
    save_checkpoint,
    seeded,
)

#: Builds a fresh model given the mean training rating (the regressors' offset).
ModelBuilder = Callable[[float], nn.Module]


@dataclass(frozen=True)
class Outcome:
    """A trained model, how it trained, and how it scored.

    ``valid_report`` scores the validation part, the only score that may
    choose between models; ``report`` scores the test part, for the record.
    """

    split: Split
    fit: FitResult
    report: RatingReport
    predictions: pd.DataFrame  # user_id, item_id, rating, prediction[, p1..p5]
    valid_report: RatingReport
    calibration: Calibration | None = None  # regressors only
    # Rows of the test / validation part with a user or movie unseen in training.
    fallback: dict[str, FallbackCount] | None = None
    # The validation part's table, as ``predictions`` is the test part's.
    valid_predictions: pd.DataFrame | None = None

    def summary(self) -> dict:
        return {
            "split": self.split.name,
            "sizes": self.split.sizes(),
            "epochs_run": self.fit.epochs_run,
            "best_epoch": self.fit.best_epoch,
            "train_seconds": round(self.fit.train_seconds, 3),
            "metrics": self.report.to_dict(),
            "valid_metrics": self.valid_report.to_dict(),
            "calibration": (
                {"shift": self.calibration.shift, "scale": self.calibration.scale}
                if self.calibration
                else None
            ),
            "fallback": (
                {part: count.to_dict() for part, count in self.fallback.items()}
                if self.fallback
                else None
            ),
        }


def train_config(params: RunParameters) -> TrainConfig:
    return TrainConfig(
        n_epochs=params.n_epochs,
        batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        weight_decay=params.weight_decay,
        early_stopping=params.early_stopping,
        patience=params.patience,
        seed=params.seed,
        device=resolve_device(params.device),
        n_threads=params.n_threads,
        class_weighting=params.class_weighting,
    )


def run_experiment(
    data: MovieLens,
    params: RunParameters,
    build: ModelBuilder,
    *,
    split: str | Split | None = None,
    checkpoint_path: str | Path | None = None,
    verbose: bool = True,
    config: TrainConfig | None = None,
) -> Outcome:
    """Split, build, train with early stopping on validation, score on test.

    A regressor's linear recalibration (``params.calibrate``) is fitted on the
    validation part too. The test part is used once, at the end, for the report.
    ``split`` names a split for :func:`~recsys_utils.splits.make_split` (default
    ``params.split``) or is a :class:`~recsys_utils.splits.Split` made elsewhere.
    Ratings whose user or movie has no training rating are predicted by the
    stated rule of :mod:`recsys_utils.fallback`, and counted in the outcome.
    With ``params.resume`` and a ``checkpoint_path``, an interrupted run
    carries on from its last finished epoch (see :func:`~recsys_utils.training.fit`).
    ``config`` replaces the training settings derived from ``params`` (for
    example to set ``mixed_precision`` or a device such as ``"cuda:1"``).
    Under torchrun only rank 0 writes the checkpoint.
    """
    if isinstance(split, Split):  # a split made elsewhere, e.g. a cold-start one
        parts = split
    else:
        parts = make_split(
            data.ratings,
            split or params.split,
            seed=params.seed,
            valid_fraction=params.valid_fraction,
        )
    index = IdIndex.from_tables(data.users, data.items)
    config = config or train_config(params)
    train, valid, test = (
        RatingTensors.from_frame(frame, index, config.device)
        for frame in (parts.train, parts.valid, parts.test)
    )
    with seeded(params.seed):
        model = build(float(parts.train["rating"].mean())).to(config.device)
    result = fit(
        model,
        train,
        valid,
        config,
        checkpoint_path=checkpoint_path,
        resume=params.resume,
        verbose=verbose,
    )
    calibration = None
    if params.calibrate and model.config.task == "regression":
        calibration = calibrate(
            model,
            valid,
            rmse_tolerance=params.calibration_tolerance,
            mixed_precision=config.mixed_precision,
        )
        # The checkpoint must predict what we report.
        if checkpoint_path is not None and distributed.is_main_process():
            save_checkpoint(
                checkpoint_path,
                model,
                meta={
                    "epoch": result.best_epoch,
                    "calibration": [calibration.shift, calibration.scale],
                },
            )

    fallback = Fallback.from_ratings(parts.train, scale=model.config.scale)
    precision = {"mixed_precision": config.mixed_precision}
    report, predictions, test_count = score(
        model, parts.test, test, fallback, **precision
    )
    valid_report, valid_predictions, valid_count = score(
        model, parts.valid, valid, fallback, **precision
    )
    return Outcome(
        parts,
        result,
        report,
        predictions,
        valid_report,
        calibration,
        {"test": test_count, "valid": valid_count},
        valid_predictions,
    )


def score(
    model: nn.Module,
    ratings: pd.DataFrame,
    tensors: RatingTensors,
    fallback: Fallback | None = None,
    *,
    mixed_precision: bool | None = False,
) -> tuple[RatingReport, pd.DataFrame, FallbackCount | None]:
    """Predict ``ratings`` and score the predictions.

    Returns the report, a table and, with a ``fallback``, how many rows it
    answered. The table holds user_id, item_id, rating and prediction (the
    expected rating for a classifier, whose class probabilities follow as
    p1..p5, or p0.5..p5 on half stars), and ``fallback`` (True where the
    rule replaced the model). ``mixed_precision`` is handed to
    :func:`~recsys_utils.training.predict`.
    """
    scale = model.config.scale
    output = predict(model, tensors, mixed_precision=mixed_precision)
    count = None
    if fallback is not None:
        output, count = fallback.apply(ratings, output)
    predictions = ratings[["user_id", "item_id", "rating"]].reset_index(drop=True)
    y_true = predictions["rating"].to_numpy()
    if output.ndim == 2:
        report = rating_report(y_true, proba=output, scale=scale)
        predictions["prediction"] = expected_rating(output, scale)
        for position, rating in enumerate(scale.levels):
            predictions[f"p{scale.label(rating)}"] = output[:, position]
    else:
        report = rating_report(y_true, y_pred=output, scale=scale)
        predictions["prediction"] = output
    if fallback is not None:
        predictions["fallback"] = fallback.covers(predictions)
    return report, predictions, count


def select_variant(outcomes: dict[str, Outcome], *, mae_tolerance: float = 0.01) -> str:
    """Choose a variant on validation data only, without giving up MAE for F1.

    Among the variants whose validation MAE is within ``mae_tolerance`` of the
    best validation MAE, the one with the highest validation macro F1 wins
    (NaN F1 counts as lowest). Ties go to the first variant given.
    """
    best_mae = min(o.valid_report.mae for o in outcomes.values())
    eligible = [
        n for n, o in outcomes.items() if o.valid_report.mae <= best_mae + mae_tolerance
    ]

    def f1(name: str) -> float:
        value = outcomes[name].valid_report.f1
        return -math.inf if math.isnan(value) else value

    return max(eligible, key=f1)


def variants_table(outcomes: dict[str, Outcome]) -> pd.DataFrame:
    """Validation metrics of each variant, one row each."""
    rows = {
        name: {
            "epochs": o.fit.epochs_run,
            **{f"val {k}": v for k, v in o.valid_report.summary().items()},
        }
        for name, o in outcomes.items()
    }
    return pd.DataFrame(rows).T


#: Metrics of the cross-validation table, in display order.
CV_METRICS: tuple[str, ...] = (
    "rmse", "mae", "accuracy", "precision", "recall", "f1", "f1_weighted",
)  # fmt: skip


def _flat_metrics(report: RatingReport) -> dict[str, float]:
    row = {name: getattr(report, name) for name in CV_METRICS}
    row.update({f"auc_{r:g}": v for r, v in report.auc.items()})
    row.update({f"f1_{r:g}": v for r, v in report.f1_per_rating.items()})
    return row


@dataclass(frozen=True)
class CrossValidation:
    """One outcome per fold (see :func:`cross_validate`), and their mean and spread."""

    folds: dict[str, Outcome]

    def table(self) -> pd.DataFrame:
        """One row per fold, one column per metric (per-rating AUC and F1 included)."""
        rows = {name: _flat_metrics(o.report) for name, o in self.folds.items()}
        return pd.DataFrame(rows).T.rename_axis("fold")

    def summary(self) -> pd.DataFrame:
        """Mean and sample standard deviation of every metric over the folds."""
        table = self.table()
        return pd.DataFrame({"mean": table.mean(), "std": table.std(ddof=1)})

    def to_dict(self) -> dict:
        summary = self.summary()
        return {
            "folds": self.table().to_dict(orient="index"),
            "mean": summary["mean"].to_dict(),
            "std": summary["std"].to_dict(),
            "epochs_run": {n: o.fit.epochs_run for n, o in self.folds.items()},
            "train_seconds": {
                n: round(o.fit.train_seconds, 3) for n, o in self.folds.items()
            },
        }


def cross_validate(
    data: MovieLens,
    params: RunParameters,
    build: ModelBuilder,
    *,
    done: dict[str, Outcome] | None = None,
    verbose: bool = False,
) -> CrossValidation:
    """Train and score on each of five folds with the same parameters.

    The folds are :func:`~recsys_utils.splits.cross_validation_folds` of
    ``params.dataset``: the canonical u1..u5 for ml-100k, five seeded random
    folds (``random1``..``random5``) for the other releases. Folds already
    run with these parameters can be passed in ``done`` (for example the
    chapter's u1 run) and are not trained again.
    """
    done = done or {}
    folds = {}
    for fold in cross_validation_folds(params.dataset):
        if fold in done:
            folds[fold] = done[fold]
            continue
        folds[fold] = run_experiment(data, params, build, split=fold, verbose=False)
        if verbose:
            report = folds[fold].report
            print(
                f"{fold}: RMSE {report.rmse:.4f}  MAE {report.mae:.4f}  "
                f"accuracy {report.accuracy:.4f}  F1 {report.f1:.4f}  "
                f"({folds[fold].fit.epochs_run} epochs)"
            )
    return CrossValidation(folds)


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_results(
    chapter: str,
    params: RunParameters,
    outcomes: dict[str, Outcome],
    *,
    primary: str,
    model_options: dict | None = None,
    cross_validation: CrossValidation | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``results/<chapter>.json``.

    It holds the parameters, the primary run's split, epochs, training time
    and test metrics at the top level, every run under ``runs``, and the
    cross-validation over the five folds under ``cross_validation``.
    """
    main = outcomes[primary]
    model = main.fit.model
    document = {
        "chapter": chapter,
        "model": type(model).__name__,
        "task": model.config.task,
        "parameters": {**params.to_dict(), **(model_options or {})},
        "n_parameters": count_parameters(model),
        **main.summary(),
        "runs": {name: outcome.summary() for name, outcome in outcomes.items()},
        **(
            {"cross_validation": cross_validation.to_dict()} if cross_validation else {}
        ),
        **(extra or {}),
    }
    path = paths.results_dir() / f"{chapter}.json"
    write_text_atomic(path, json.dumps(_json_ready(document), indent=2) + "\n")
    return path


def save_predictions(chapter: str, outcome: Outcome) -> Path:
    """Write ``results/<chapter>_predictions.csv``: the test part's prediction table."""
    path = paths.results_dir() / f"{chapter}_predictions.csv"
    with atomic_path(path) as tmp:
        outcome.predictions.to_csv(tmp, index=False, float_format="%.6f")
    return path


FOLD_PREDICTION_COLUMNS: tuple[str, ...] = (
    "split", "part", "user_id", "item_id", "rating", "prediction",
)  # fmt: skip


def save_fold_predictions(chapter: str, outcomes: dict[str, Outcome]) -> Path:
    """Write ``results/<chapter>_fold_predictions.csv``: every split's two parts.

    One row per validation and test rating of each outcome (for example the
    five canonical folds and the random split), with the predicted rating.
    Later chapters combine models from these files, for instance fitting a
    blend on the validation rows and scoring it on the test rows.
    """
    tables = []
    for name, outcome in outcomes.items():
        for part, table in (
            ("valid", outcome.valid_predictions),
            ("test", outcome.predictions),
        ):
            if table is None:
                raise ValueError(f"{name}: the outcome holds no {part} predictions")
            tables.append(
                table[["user_id", "item_id", "rating", "prediction"]].assign(
                    split=name, part=part
                )
            )
    frame = pd.concat(tables, ignore_index=True)[list(FOLD_PREDICTION_COLUMNS)]
    path = paths.results_dir() / f"{chapter}_fold_predictions.csv"
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    return path


def load_fold_predictions(chapter: str) -> pd.DataFrame:
    """Read what :func:`save_fold_predictions` wrote; a clear error if it is absent."""
    path = paths.results_dir() / f"{chapter}_fold_predictions.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; run the chapter {chapter} first (make book)"
        )
    return pd.read_csv(path)


def load_results(chapter: str) -> dict:
    """Read a chapter's results file; a clear error if that chapter has not run."""
    path = paths.results_dir() / f"{chapter}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; run the chapter {chapter} first (make book)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def paired_fold_comparison(
    baseline: dict,
    candidate: CrossValidation,
    metrics: tuple[str, ...] = ("rmse", "mae", "accuracy", "f1"),
) -> pd.DataFrame:
    """Compare two models fold by fold over the same folds.

    ``baseline`` is the ``cross_validation`` entry of another chapter's
    results file. For each metric: both means, the mean and standard
    deviation of the per-fold difference (candidate - baseline), and the
    two-sided p-value of a paired t-test over the folds. With five folds the
    test has four degrees of freedom: only a difference that is consistent
    across folds comes out significant.
    """
    folds = list(candidate.folds)
    missing = [fold for fold in folds if fold not in baseline["folds"]]
    if missing:
        raise ValueError(f"the baseline has no results for folds {missing}")
    table = candidate.table()
    rows = {}
    for metric in metrics:
        ours = table.loc[folds, metric].astype(float).to_numpy()
        theirs = np.array(
            [baseline["folds"][fold][metric] for fold in folds], dtype=float
        )
        difference = ours - theirs
        rows[metric] = {
            "baseline": theirs.mean(),
            "this model": ours.mean(),
            "mean difference": difference.mean(),
            "std of difference": difference.std(ddof=1),
            "p-value (paired t)": float(stats.ttest_rel(ours, theirs).pvalue),
        }
    return pd.DataFrame(rows).T
