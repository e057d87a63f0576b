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
from torch import nn

from recsys_utils import paths
from recsys_utils._io import atomic_path, write_text_atomic
from recsys_utils.data import IdIndex, MovieLens
from recsys_utils.metrics import RatingReport, expected_rating, rating_report
from recsys_utils.models import count_parameters
from recsys_utils.params import RunParameters, resolve_device
from recsys_utils.splits import Split, make_split
from recsys_utils.training import (
    FitResult,
    RatingTensors,
    TrainConfig,
    fit,
    predict,
    seeded,
)

#: Builds a fresh model given the mean training rating (the regressors' offset).
ModelBuilder = Callable[[float], nn.Module]


@dataclass(frozen=True)
class Outcome:
    """A trained model, how it trained, and how it scored on the test part."""

    split: Split
    fit: FitResult
    report: RatingReport
    predictions: pd.DataFrame  # user_id, item_id, rating, prediction[, p1..p5]

    def summary(self) -> dict:
        return {
            "split": self.split.name,
            "sizes": self.split.sizes(),
            "epochs_run": self.fit.epochs_run,
            "best_epoch": self.fit.best_epoch,
            "train_seconds": round(self.fit.train_seconds, 3),
            "metrics": self.report.to_dict(),
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
    )


def run_experiment(
    data: MovieLens,
    params: RunParameters,
    build: ModelBuilder,
    *,
    split: str | None = None,
    checkpoint_path: str | Path | None = None,
    verbose: bool = True,
) -> Outcome:
    """Split, build, train with early stopping on validation, score on test.

    The test part is used once, after training, for the report.
    """
    split_name = split or params.split
    parts = make_split(
        data.ratings, split_name, seed=params.seed, valid_fraction=params.valid_fraction
    )
    index = IdIndex.from_tables(data.users, data.items)
    config = train_config(params)
    train, valid, test = (
        RatingTensors.from_frame(frame, index, config.device)
        for frame in (parts.train, parts.valid, parts.test)
    )
    with seeded(params.seed):
        model = build(float(parts.train["rating"].mean())).to(config.device)
    result = fit(
        model, train, valid, config, checkpoint_path=checkpoint_path, verbose=verbose
    )

    output = predict(model, test)
    predictions = parts.test[["user_id", "item_id", "rating"]].reset_index(drop=True)
    y_true = predictions["rating"].to_numpy()
    if output.ndim == 2:
        report = rating_report(y_true, proba=output)
        predictions["prediction"] = expected_rating(output)
        for position in range(output.shape[1]):
            predictions[f"p{position + 1}"] = output[:, position]
    else:
        report = rating_report(y_true, y_pred=output)
        predictions["prediction"] = output
    return Outcome(parts, result, report, predictions)


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
    extra: dict | None = None,
) -> Path:
    """Write ``results/<chapter>.json``: parameters, every run, the primary run's metrics."""
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
        **(extra or {}),
    }
    path = paths.results_dir() / f"{chapter}.json"
    write_text_atomic(path, json.dumps(_json_ready(document), indent=2) + "\n")
    return path


def save_predictions(chapter: str, outcome: Outcome) -> Path:
    """Write ``results/<chapter>_predictions.csv`` (user_id, item_id, rating, prediction)."""
    path = paths.results_dir() / f"{chapter}_predictions.csv"
    with atomic_path(path) as tmp:
        outcome.predictions.to_csv(tmp, index=False, float_format="%.6f")
    return path


def load_results(chapter: str) -> dict:
    """Read a chapter's results file; a clear error if that chapter has not run."""
    path = paths.results_dir() / f"{chapter}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; run the chapter {chapter} first (make book)"
        )
    return json.loads(path.read_text(encoding="utf-8"))
