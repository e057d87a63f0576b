"""Mini-batch training with early stopping, prediction, checkpoints.

Batches are slices of tensors that hold a whole split, taken in a seeded
random order each epoch: no per-example ``Dataset`` objects, so an epoch of
NeuMF over 80,000 ratings costs a few dozen optimiser steps and little else.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from recsys_utils._io import atomic_path
from recsys_utils.data import IdIndex
from recsys_utils.metrics import FIVE_STARS, RatingScale, rating_report, rating_to_class
from recsys_utils.models import build_model

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's CPU generator seeded, restoring its state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run a block with torch's intra-op thread count set, restoring it afterwards.

    Results depend (slightly) on the thread count, because sums are split
    differently; fixing it makes a run repeatable on any machine with the
    same software. ``None`` leaves torch's own choice.
    """
    previous = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class RatingTensors:
    """One split as tensors: dense user and item indices and the ratings."""

    user: torch.Tensor  # (n,) int64
    item: torch.Tensor  # (n,) int64
    rating: torch.Tensor  # (n,) float32

    @classmethod
    def from_frame(
        cls, ratings: pd.DataFrame, index: IdIndex, device: str = "cpu"
    ) -> RatingTensors:
        return cls(
            torch.as_tensor(
                index.user_index(ratings["user_id"].to_numpy()), device=device
            ),
            torch.as_tensor(
                index.item_index(ratings["item_id"].to_numpy()), device=device
            ),
            torch.as_tensor(
                ratings["rating"].to_numpy(dtype=np.float32), device=device
            ),
        )

    def __len__(self) -> int:
        return len(self.rating)


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Regression stops on validation RMSE, classification on validation loss."""

    n_epochs: int = 50
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    early_stopping: bool = True
    patience: int = 5
    seed: int = 42
    device: str = "cpu"
    # One thread: as fast as two for models this small, and immune to
    # oversubscription when several processes share the cores.
    n_threads: int | None = 1
    # Classification only: weigh each rating inversely to its frequency.
    class_weighting: bool = False


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` learned and how it got there."""

    model: nn.Module
    history: pd.DataFrame  # one row per epoch
    best_epoch: int
    epochs_run: int
    train_seconds: float
    stopped_early: bool


def _loss_fn(task: str, class_weight: torch.Tensor | None = None) -> nn.Module:
    if task == "regression":
        return nn.MSELoss()
    return nn.CrossEntropyLoss(weight=class_weight)


def balanced_class_weights(
    rating: torch.Tensor, scale: RatingScale = FIVE_STARS
) -> torch.Tensor:
    """Cross-entropy weights n / (K n_r) over the K levels: each weighs the same in total.

    A rating absent from ``rating`` gets weight 0 rather than infinity.
    """
    counts = torch.bincount(
        rating_to_class(rating, scale), minlength=scale.n_levels
    ).to(torch.float32)
    weights = len(rating) / (scale.n_levels * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def _target(
    batch_rating: torch.Tensor, task: str, scale: RatingScale = FIVE_STARS
) -> torch.Tensor:
    return (
        batch_rating if task == "regression" else rating_to_class(batch_rating, scale)
    )


@torch.no_grad()
def _outputs(
    model: nn.Module, data: RatingTensors, batch_size: int = 65_536
) -> torch.Tensor:
    """Raw model outputs over a whole split, in evaluation mode."""
    was_training = model.training
    model.eval()
    chunks = [
        model(
            data.user[start : start + batch_size], data.item[start : start + batch_size]
        )
        for start in range(0, len(data), batch_size)
    ]
    model.train(was_training)
    return torch.cat(chunks)


def predict(model: nn.Module, data: RatingTensors) -> np.ndarray:
    """Model predictions for every rating of ``data``.

    Returns predicted ratings clipped to the model's rating scale (1..5 for
    whole stars), shape (n,), for regression, and class probabilities over
    its rating levels, shape (n, n_levels), for classification.
    """
    out = _outputs(model, data)
    if model.config.task == "classification":
        return torch.softmax(out, dim=1).cpu().numpy()
    scale = model.config.scale
    return out.clamp(float(scale.minimum), float(scale.maximum)).cpu().numpy()


def _validate(
    model: nn.Module, data: RatingTensors, loss_fn: nn.Module
) -> dict[str, float]:
    task, scale = model.config.task, model.config.scale
    out = _outputs(model, data)
    loss = loss_fn(out, _target(data.rating, task, scale)).item()
    if task == "classification":
        levels = torch.as_tensor(scale.array, dtype=out.dtype, device=out.device)
        rating = torch.softmax(out, dim=1) @ levels
    else:
        rating = out.clamp(float(scale.minimum), float(scale.maximum))
    error = rating - data.rating
    return {
        "val_loss": loss,
        "val_rmse": error.pow(2).mean().sqrt().item(),
        "val_mae": error.abs().mean().item(),
    }


def training_state_path(checkpoint_path: str | Path) -> Path:
    """Where :func:`fit` keeps the state that lets an interrupted run resume."""
    checkpoint_path = Path(checkpoint_path)
    return checkpoint_path.with_name(checkpoint_path.stem + ".resume.pt")


#: Training settings that must match for a run to resume another one's state.
_RESUME_KEYS: tuple[str, ...] = (
    "batch_size", "learning_rate", "weight_decay", "early_stopping", "patience",
    "seed", "class_weighting",
)  # fmt: skip


@dataclass
class _Progress:
    """Everything :func:`fit` needs to carry on from the end of an epoch."""

    epoch: int = 0
    history: list = field(default_factory=list)
    best_value: float = math.inf
    best_epoch: int = 0
    best_state: dict | None = None
    seconds: float = 0.0


def _save_progress(
    path: Path,
    progress: _Progress,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    config: TrainConfig,
    n_train: int,
) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.to_dict(),
        "train_config": {key: getattr(config, key) for key in _RESUME_KEYS},
        "n_train": n_train,
        "epoch": progress.epoch,
        "history": progress.history,
        "best_value": progress.best_value,
        "best_epoch": progress.best_epoch,
        "best_state": progress.best_state,
        "seconds": progress.seconds,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _restore_progress(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    config: TrainConfig,
    n_train: int,
) -> _Progress:
    """Load a saved training state into the live objects, refusing a mismatch."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path}: cannot resume from it ({type(error).__name__}); delete it to "
            "train from the start"
        ) from None
    expected = {
        "model": model.config.to_dict(),
        "training": {key: getattr(config, key) for key in _RESUME_KEYS},
        "ratings": n_train,
    }
    saved = {
        "model": payload.get("model_config"),
        "training": payload.get("train_config"),
        "ratings": payload.get("n_train"),
    }
    differences = [
        what for what in expected if _jsonable(saved[what]) != _jsonable(expected[what])
    ]
    if payload.get("format") != CHECKPOINT_FORMAT or differences:
        raise CheckpointError(
            f"{path}: saved by a run with other {', '.join(differences) or 'format'} "
            "settings; delete it to train from the start"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    generator.set_state(payload["generator"])
    torch.set_rng_state(payload["torch_rng"])
    return _Progress(
        payload["epoch"],
        list(payload["history"]),
        payload["best_value"],
        payload["best_epoch"],
        payload["best_state"],
        payload["seconds"],
    )


def _jsonable(value):
    """Tuples as lists, so a configuration compares equal to its saved copy."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    return value


def fit(
    model: nn.Module,
    train: RatingTensors,
    valid: RatingTensors,
    config: TrainConfig,
    *,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    verbose: bool = True,
) -> FitResult:
    """Train ``model`` on ``train``, stopping early on ``valid``.

    The weights of the best validation epoch are restored into ``model`` at
    the end and, when ``checkpoint_path`` is given, saved there each time
    validation improves. With ``verbose`` one line per epoch is printed.

    With ``checkpoint_path``, the whole training state (weights, optimiser,
    random generators, history) is also written after every epoch to
    :func:`training_state_path`, atomically, and removed once training ends.
    A run that was interrupted (Ctrl-C, a killed process) leaves that file
    behind; calling again with ``resume=True`` and the same settings carries
    on from the last finished epoch and ends with the same weights as an
    uninterrupted run. Without a state file, ``resume=True`` starts afresh.
    """
    task, scale = model.config.task, model.config.scale
    monitor = "val_rmse" if task == "regression" else "val_loss"
    class_weight = None
    if config.class_weighting and task == "classification":
        class_weight = balanced_class_weights(train.rating, scale)
    loss_fn = _loss_fn(task, class_weight)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        # One kernel for every parameter tensor instead of a dozen small ops
        # each: about a fifth of a NeuMF epoch on the CPU (make benchmark).
        fused=train.user.device.type in ("cpu", "cuda"),
    )
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    n_train = len(train)
    # A last batch of one example would break batch normalisation; fold it into the previous one.
    starts = list(range(0, n_train, config.batch_size))
    if len(starts) > 1 and n_train - starts[-1] == 1:
        starts.pop()
    ends = [*starts[1:], n_train]
    state_path = (
        None if checkpoint_path is None else training_state_path(checkpoint_path)
    )

    with seeded(config.seed), torch_threads(config.n_threads):
        progress = _Progress()
        if resume and state_path is not None and state_path.is_file():
            progress = _restore_progress(
                state_path, model, optimizer, generator, config, n_train
            )
            logger.info("resuming after epoch %d from %s", progress.epoch, state_path)
            if verbose:
                print(f"resuming after epoch {progress.epoch} from {state_path.name}")
        started = time.perf_counter() - progress.seconds
        for epoch in range(progress.epoch + 1, config.n_epochs + 1):
            if config.early_stopping and progress.epoch - progress.best_epoch >= (
                config.patience
            ):
                break
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(n_train, generator=generator).to(train.user.device)
            total = 0.0
            for start, end in zip(starts, ends, strict=True):
                batch = order[start:end]
                out = model(train.user[batch], train.item[batch])
                loss = (
                    loss_fn(out, _target(train.rating[batch], task, scale))
                    + model.penalty()
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * (end - start)

            record = {
                "epoch": epoch,
                "train_loss": total / n_train,
                **_validate(model, valid, loss_fn),
            }
            record["seconds"] = time.perf_counter() - epoch_start
            progress.history.append(record)
            progress.epoch = epoch
            if not math.isfinite(record["train_loss"]) or not math.isfinite(
                record[monitor]
            ):
                raise FloatingPointError(
                    f"epoch {epoch}: the loss became {record['train_loss']} (validation "
                    f"{record[monitor]}); lower learning_rate or check the inputs. The "
                    f"last good weights are those of epoch {progress.best_epoch}"
                )
            improved = record[monitor] < progress.best_value
            if improved:
                progress.best_value, progress.best_epoch = record[monitor], epoch
                progress.best_state = copy.deepcopy(model.state_dict())
                if checkpoint_path is not None:
                    save_checkpoint(
                        checkpoint_path,
                        model,
                        meta={"epoch": epoch, monitor: progress.best_value},
                    )
            if state_path is not None:
                progress.seconds = time.perf_counter() - started
                _save_progress(
                    state_path, progress, model, optimizer, generator, config, n_train
                )
            if verbose:
                mark = " *" if improved else ""
                print(
                    f"epoch {epoch:3d}  train {record['train_loss']:.4f}  val RMSE "
                    f"{record['val_rmse']:.4f}  val MAE {record['val_mae']:.4f}  "
                    f"{record['seconds']:.2f}s{mark}"
                )

    train_seconds = time.perf_counter() - started
    if progress.best_state is not None:
        model.load_state_dict(progress.best_state)
    model.eval()
    if state_path is not None:
        state_path.unlink(missing_ok=True)
    epochs_run = len(progress.history)
    stopped_early = epochs_run < config.n_epochs
    logger.info(
        "trained %d epochs in %.1f s, best epoch %d",
        epochs_run,
        train_seconds,
        progress.best_epoch,
    )
    return FitResult(
        model,
        pd.DataFrame(progress.history),
        progress.best_epoch,
        epochs_run,
        train_seconds,
        stopped_early,
    )


# --------------------------------------------------------------------------
# Recalibrating a regressor

#: Candidate slopes of the recalibration.
CALIBRATION_SCALES: tuple[float, ...] = tuple(round(1 + 0.05 * k, 2) for k in range(13))


@dataclass(frozen=True)
class Calibration:
    """The recalibration kept, and how every candidate slope did on validation."""

    shift: float
    scale: float
    candidates: pd.DataFrame  # one row per slope: shift, val RMSE, val MAE, val F1


def calibrate(
    model: nn.Module,
    valid: RatingTensors,
    *,
    rmse_tolerance: float = 0.005,
    scales: tuple[float, ...] = CALIBRATION_SCALES,
) -> Calibration:
    r"""Fit the regressor's recalibration :math:`a + b\,s` on validation ratings.

    Squared error and regularisation shrink a regressor's predictions towards
    the mean, so that rounded predictions rarely reach the extreme ratings.
    For each slope :math:`b` in ``scales`` the shift minimising squared error
    is :math:`a = \overline{r - b s}`; among the slopes whose validation RMSE
    is within ``rmse_tolerance`` of the best, the one with the highest
    validation macro F1 of the rounded predictions is kept and written into
    the model. With ``rmse_tolerance=0`` this is least squares on the grid.
    """
    model.output.calibration.copy_(torch.tensor([0.0, 1.0]))
    rating_scale = model.config.scale
    low, high = rating_scale.minimum, rating_scale.maximum
    score = _outputs(model, valid).cpu().numpy().astype(np.float64)
    truth = valid.rating.cpu().numpy().astype(np.float64)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined F1 is ranked below any number
        for scale in scales:
            shift = float(np.mean(truth - scale * score))
            report = rating_report(
                truth,
                y_pred=np.clip(shift + scale * score, low, high),
                scale=rating_scale,
            )
            rows.append((scale, shift, report.rmse, report.mae, report.f1))
    candidates = pd.DataFrame(
        rows, columns=["scale", "shift", "val RMSE", "val MAE", "val F1"]
    )
    eligible = candidates[
        candidates["val RMSE"] <= candidates["val RMSE"].min() + rmse_tolerance
    ]
    best = eligible.loc[eligible["val F1"].fillna(-np.inf).idxmax()]
    model.output.calibration.copy_(torch.tensor([best["shift"], best["scale"]]))
    return Calibration(
        float(best["shift"]), float(best["scale"]), candidates.set_index("scale")
    )


# --------------------------------------------------------------------------
# Checkpoints


class CheckpointError(RuntimeError):
    """A checkpoint cannot be loaded safely or does not fit the model asked for."""


def save_checkpoint(
    path: str | Path, model: nn.Module, meta: dict | None = None
) -> Path:
    """Save weights and the configuration that rebuilds the model, atomically.

    Everything stored is a tensor or a plain Python value, so the file loads
    with ``torch.load(..., weights_only=True)``.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": type(model).__name__,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(
    path: str | Path, *, expect_config: dict | None = None
) -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint on the CPU; return (model, meta).

    Only tensors and plain values are unpickled (``weights_only=True``).
    With ``expect_config``, a checkpoint whose configuration differs in any
    of the given keys is refused, naming the differences.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: no such checkpoint; run the chapter that trains it first"
        ) from None
    except Exception as error:  # torch raises UnpicklingError and RuntimeError alike
        raise CheckpointError(
            f"{path}: refused, it is not a plain weights file ({type(error).__name__}); "
            "only load checkpoints this book saved"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a checkpoint of this book (format {CHECKPOINT_FORMAT} expected)"
        )
    config = payload["config"]
    if expect_config is not None:
        differences = [
            f"{key}: file has {config.get(key)!r}, asked for {value!r}"
            for key, value in expect_config.items()
            # the file holds lists where a config holds tuples (mlp_layers)
            if config.get(key) != (list(value) if isinstance(value, tuple) else value)
        ]
        if differences:
            raise CheckpointError(
                f"{path}: configuration differs ({'; '.join(differences)})"
            )
    model = build_model(payload["model"], config)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload["meta"]
