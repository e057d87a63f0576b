"""Mini-batch training with early stopping, prediction, checkpoints.

Batches are slices of tensors that hold a whole split, taken in a seeded
random order each epoch: no per-example ``Dataset`` objects, so an epoch of
NeuMF over 80,000 ratings costs a few dozen optimiser steps and little else.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from recsys_utils import distributed, noise
from recsys_utils._io import atomic_path
from recsys_utils.data import IdIndex
from recsys_utils.devices import (
    Precision,
    backward_step,
    model_device,
    resolve_precision,
    to_device,
)
from recsys_utils.metrics import FIVE_STARS, RatingScale, rating_report, rating_to_class
from recsys_utils.models import build_model
from recsys_utils.optim import RatingOptimizer

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
    """One split as tensors: dense user and item indices and the ratings.

    :meth:`from_frame` stores 32-bit indices, 12 bytes a rating in all: the
    embedding lookups take them as they are, and the results are the same as
    with 64-bit ones, at 60% of the memory (25M ratings: 300 MB, not 500).
    """

    user: torch.Tensor  # (n,) int32 (int64 also works)
    item: torch.Tensor  # (n,) int32
    rating: torch.Tensor  # (n,) float32

    @classmethod
    def from_frame(
        cls, ratings: pd.DataFrame, index: IdIndex, device: str = "cpu"
    ) -> RatingTensors:
        """The tensors of ``ratings`` on ``device``.

        For CUDA the host tensors are pinned and copied without blocking
        (:func:`~recsys_utils.devices.to_device`); on the CPU nothing is copied.
        """
        user = index.user_index(ratings["user_id"].to_numpy()).astype(np.int32)
        item = index.item_index(ratings["item_id"].to_numpy()).astype(np.int32)
        return cls(
            to_device(torch.as_tensor(user), device),
            to_device(torch.as_tensor(item), device),
            to_device(
                torch.as_tensor(ratings["rating"].to_numpy(dtype=np.float32)), device
            ),
        )

    def to(self, device: str | torch.device) -> RatingTensors:
        """The same split on ``device`` (itself when it is there already)."""
        return RatingTensors(
            *(to_device(t, device) for t in (self.user, self.item, self.rating))
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
    # Sparse gradients and lazy Adam for the embedding tables (see
    # recsys_utils.optim.RatingOptimizer); None: only for tables too large
    # for a dense update at every step (MovieLens 10M and larger).
    sparse_embeddings: bool | None = None
    # Autocast: None decides by device (on for CUDA, off for the CPU and MPS,
    # so the CPU's published numbers never change); True or False forces it.
    mixed_precision: bool | None = None


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
    model: nn.Module,
    data: RatingTensors,
    batch_size: int = 65_536,
    precision: Precision | None = None,
) -> torch.Tensor:
    """Raw model outputs over a whole split, in evaluation mode, in float32.

    ``data`` may live elsewhere than the model (a split kept on the CPU for a
    model trained on a GPU); each chunk is moved to the model's device.
    """
    device = model_device(model)
    precision = precision or Precision(device.type)
    was_training = model.training
    model.eval()
    with precision.autocast():
        chunks = [
            model(
                to_device(data.user[start : start + batch_size], device),
                to_device(data.item[start : start + batch_size], device),
            )
            for start in range(0, len(data), batch_size)
        ]
    model.train(was_training)
    out = torch.cat(chunks)
    return out.float() if precision.enabled else out


def predict(
    model: nn.Module, data: RatingTensors, *, mixed_precision: bool | None = False
) -> np.ndarray:
    """Model predictions for every rating of ``data``.

    Returns predicted ratings clipped to the model's rating scale (1..5 for
    whole stars), shape (n,), for regression, and class probabilities over
    its rating levels, shape (n, n_levels), for classification.
    ``mixed_precision`` is :attr:`TrainConfig.mixed_precision`'s setting; the
    default, full precision, predicts the same on every call and device type.
    """
    precision = resolve_precision(mixed_precision, model_device(model).type)
    out = _outputs(model, data, precision=precision)
    if model.config.task == "classification":
        return torch.softmax(out, dim=1).cpu().numpy()
    scale = model.config.scale
    return out.clamp(float(scale.minimum), float(scale.maximum)).cpu().numpy()


def _validate(
    model: nn.Module,
    data: RatingTensors,
    loss_fn: nn.Module,
    precision: Precision | None = None,
) -> dict[str, float]:
    task, scale = model.config.task, model.config.scale
    out = _outputs(model, data, precision=precision)
    rating_true = to_device(data.rating, out.device)
    loss = loss_fn(out, _target(rating_true, task, scale)).item()
    if task == "classification":
        levels = torch.as_tensor(scale.array, dtype=out.dtype, device=out.device)
        rating = torch.softmax(out, dim=1) @ levels
    else:
        rating = out.clamp(float(scale.minimum), float(scale.maximum))
    error = rating - rating_true
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
    "seed", "class_weighting", "sparse_embeddings",
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
    optimizer: RatingOptimizer,
    generator: torch.Generator,
    config: TrainConfig,
    n_train: int,
    rank_torch_rngs: list | None = None,
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
    if rank_torch_rngs is not None:  # several processes: each draws its own noise
        payload["rank_torch_rngs"] = rank_torch_rngs
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _restore_progress(
    path: Path,
    model: nn.Module,
    optimizer: RatingOptimizer,
    generator: torch.Generator,
    config: TrainConfig,
    n_train: int,
    *,
    rank: int = 0,
    world_size: int = 1,
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
    try:
        optimizer.load_state_dict(payload["optimizer"])
    except (KeyError, ValueError):
        raise CheckpointError(
            f"{path}: its optimiser state does not fit this run; delete it to train "
            "from the start"
        ) from None
    generator.set_state(payload["generator"])
    torch.set_rng_state(payload["torch_rng"])
    rank_states = payload.get("rank_torch_rngs")
    saved_world = 1 if rank_states is None else len(rank_states)
    if saved_world != world_size:
        raise CheckpointError(
            f"{path}: saved by a run of {saved_world} processes, this one has "
            f"{world_size}; resume with {saved_world} or delete it to train from "
            "the start"
        )
    if rank_states is not None:
        torch.set_rng_state(rank_states[rank])
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
    distributed_data_parallel: bool | None = None,
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

    With ``config.mixed_precision`` on (by default on CUDA only), the forward
    passes of training and validation run under autocast
    (:func:`~recsys_utils.devices.resolve_precision`).

    Under torchrun, with a process group initialised
    (:func:`recsys_utils.distributed.init_from_env`), or with
    ``distributed_data_parallel=True``, the model trains wrapped in
    ``DistributedDataParallel``: see Notes.

    Notes
    -----
    Several processes share each epoch as follows. Every process draws the
    same seeded permutation and takes its own contiguous shard of
    ``len(train) // world_size`` ratings, then cuts it into batches of
    ``batch_size``. Equal shards mean every process runs the same number of
    steps, so no collective operation ever waits for a process that has
    finished; the at most ``world_size - 1`` ratings left over change with the
    permutation, so no rating is left out for good. Contiguous shards rather
    than every ``world_size``-th batch keep the shards equal without dropping
    whole batches. Each step averages the gradients of ``world_size`` batches,
    so an epoch has ``world_size`` times fewer steps than one process takes:
    a larger ``learning_rate`` or a smaller ``batch_size`` makes up for it.

    The training loss in the history is the mean over all shards (a sum
    reduced over the processes). Validation runs on every process with the
    same weights and rank 0's batch-norm statistics; rank 0's figures are then
    broadcast, so every process takes the same early-stopping decision even
    where floating-point sums differ by machine. Dropout and embedding noise
    draw from torch's generator seeded with ``seed + rank``, so processes do
    not repeat each other's noise.

    Batch normalisation keeps per-process batch statistics, with rank 0's
    running statistics broadcast to all (DDP's ``broadcast_buffers``), rather
    than ``SyncBatchNorm``: a batch of 1024 ratings already estimates its mean
    and variance well, and synchronising them would add two all-reduces per
    layer and step, which dominate the step of a model this small.

    With lazy Adam (sparse embedding tables), DDP averages only the dense
    gradients; the tables' row-sparse gradients are averaged by
    :func:`recsys_utils.distributed.average_sparse_gradients` with dense
    collectives, because gloo's sparse all-reduce occasionally corrupted
    memory (about one two-process run in ten here).

    Only rank 0 writes the checkpoint and the resume state, and only it
    prints. To resume, every process reads the state file, so it must sit on
    a folder all of them see, and the run must have as many processes as the
    interrupted one. ``model`` itself, not the wrapper, is returned, so
    ``model.config`` and ``model.penalty()`` work as usual.
    """
    if distributed_data_parallel is None:
        distributed_data_parallel = distributed.is_distributed()
    elif distributed_data_parallel and not distributed.is_distributed():
        raise RuntimeError(
            "distributed_data_parallel=True needs a process group; start under "
            "torchrun and call recsys_utils.distributed.init_from_env() first"
        )
    # Without DDP every process trains alone on all of train (a sweep, say).
    rank = distributed.rank() if distributed_data_parallel else 0
    world_size = distributed.world_size() if distributed_data_parallel else 1
    main_process = distributed.is_main_process()
    verbose = verbose and main_process
    device = train.user.device
    precision = resolve_precision(config.mixed_precision, device.type)
    scaler = precision.grad_scaler()
    task, scale = model.config.task, model.config.scale
    monitor = "val_rmse" if task == "regression" else "val_loss"
    class_weight = None
    if config.class_weighting and task == "classification":
        class_weight = balanced_class_weights(train.rating, scale)
    loss_fn = _loss_fn(task, class_weight)
    sparse = config.sparse_embeddings
    if distributed_data_parallel and device.type == "cuda":
        # NCCL all-reduces dense tensors only; a GPU updates dense tables fast.
        if sparse:
            raise ValueError(
                "sparse_embeddings=True cannot run under DDP on CUDA (NCCL has no "
                "sparse all-reduce): use None or False"
            )
        sparse = False
    optimizer = RatingOptimizer(
        model,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        sparse=sparse,
    )
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    n_train = len(train)
    n_shard = _shard_size(n_train, world_size)
    # A last batch of one example would break batch normalisation; fold it into the previous one.
    starts = list(range(0, n_shard, config.batch_size))
    if len(starts) > 1 and n_shard - starts[-1] == 1:
        starts.pop()
    ends = [*starts[1:], n_shard]
    state_path = (
        None if checkpoint_path is None else training_state_path(checkpoint_path)
    )
    network, sync_sparse = model, None
    if distributed_data_parallel:
        # DDP averages the dense gradients; the lazy-Adam tables' sparse ones
        # are averaged here (see distributed.average_sparse_gradients).
        tables = optimizer.sparse_parameters
        network = _wrap(model, device, outside=tables)
        if tables:
            sync_sparse = functools.partial(
                distributed.average_sparse_gradients, tables
            )

    with seeded(config.seed + rank), torch_threads(config.n_threads):
        progress = _Progress()
        if resume and state_path is not None and state_path.is_file():
            progress = _restore_progress(
                state_path, model, optimizer, generator, config, n_train,
                rank=rank, world_size=world_size,
            )  # fmt: skip
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
            # Fresh pooled noise each epoch, from the generator the resume state saves.
            noise.redraw()
            order = _epoch_order(generator, n_train, n_shard, rank, device)
            # Shuffle this process's shard once, so that each batch is a
            # contiguous slice rather than three gathers of scattered rows.
            user, item = train.user[order], train.item[order]
            target = _target(train.rating[order], task, scale)
            total = 0.0
            for start, end in zip(starts, ends, strict=True):
                with precision.autocast():
                    out = network(user[start:end], item[start:end])
                    loss = loss_fn(out, target[start:end]) + model.penalty()
                optimizer.zero_grad(set_to_none=True)
                backward_step(loss, optimizer, scaler, sync_sparse)
                total += loss.item() * (end - start)

            record = {
                "epoch": epoch,
                "train_loss": _mean_over_shards(total, n_shard, world_size),
                **_validate_everywhere(model, valid, loss_fn, precision, world_size),
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
                if checkpoint_path is not None and main_process:
                    save_checkpoint(
                        checkpoint_path,
                        model,
                        meta={"epoch": epoch, monitor: progress.best_value},
                    )
            if state_path is not None:
                progress.seconds = time.perf_counter() - started
                # Gathered on every process, written by rank 0 alone.
                rank_rngs = (
                    distributed.all_gather_objects(torch.get_rng_state())
                    if world_size > 1
                    else None
                )
                if main_process:
                    _save_progress(
                        state_path, progress, model, optimizer, generator, config,
                        n_train, rank_rngs,
                    )  # fmt: skip
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
    if state_path is not None and main_process:
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


def _shard_size(n_train: int, world_size: int) -> int:
    """Ratings per process and epoch: equal shares, so all take as many steps."""
    n_shard = n_train // world_size
    if world_size > 1 and n_shard < 2:
        raise ValueError(
            f"{n_train} training ratings cannot be shared by {world_size} processes "
            "(each needs 2 for batch normalisation); use fewer processes"
        )
    return n_shard


def _epoch_order(
    generator: torch.Generator,
    n_train: int,
    n_shard: int,
    rank: int,
    device: torch.device,
) -> torch.Tensor:
    """This process's shard of the epoch's permutation, on ``device``.

    The permutation comes from the CPU generator on every device, so the batch
    order is the same whatever trains; it then moves once, without blocking.
    """
    order = torch.randperm(n_train, generator=generator)
    if n_shard < n_train:  # several processes: same permutation, own slice
        order = order[rank * n_shard : (rank + 1) * n_shard]
    return to_device(order, device)


def _mean_over_shards(total: float, n_shard: int, world_size: int) -> float:
    """Mean training loss over every process's shard (its own alone)."""
    if world_size == 1:
        return total / n_shard
    return distributed.all_reduce_float(total) / (n_shard * world_size)


def _validate_everywhere(
    model: nn.Module,
    data: RatingTensors,
    loss_fn: nn.Module,
    precision: Precision,
    world_size: int,
) -> dict[str, float]:
    """Validation figures, the same on every process: rank 0's, broadcast."""
    if world_size == 1:
        return _validate(model, data, loss_fn, precision)
    distributed.broadcast_buffers(model)  # rank 0's batch-norm statistics for all
    record = _validate(model, data, loss_fn, precision)
    values = distributed.broadcast_floats(list(record.values()))
    return dict(zip(record, values, strict=True))


def _wrap(
    model: nn.Module, device: torch.device, outside: Sequence[nn.Parameter] = ()
) -> nn.Module:
    """``model`` in ``DistributedDataParallel``, on this process's device.

    The parameters ``outside`` are left out of DDP's gradient averaging (the
    caller averages them); they start from rank 0's values like the rest.
    """
    from torch.nn.parallel import DistributedDataParallel

    if outside:
        ids = {id(p) for p in outside}
        names = [name for name, p in model.named_parameters() if id(p) in ids]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            model, names
        )
        for parameter in outside:
            # DDP broadcasts only the parameters it keeps.
            torch.distributed.broadcast(parameter.data, src=0)
    device_ids = [device] if device.type == "cuda" else None
    # broadcast_buffers (the default): rank 0's running statistics reach every
    # process at each forward pass; see fit's Notes on batch normalisation.
    return DistributedDataParallel(model, device_ids=device_ids)


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
    mixed_precision: bool | None = False,
) -> Calibration:
    r"""Fit the regressor's recalibration :math:`a + b\,s` on validation ratings.

    Squared error and regularisation shrink a regressor's predictions towards
    the mean, so that rounded predictions rarely reach the extreme ratings.
    For each slope :math:`b` in ``scales`` the shift minimising squared error
    is :math:`a = \overline{r - b s}`; among the slopes whose validation RMSE
    is within ``rmse_tolerance`` of the best, the one with the highest
    validation macro F1 of the rounded predictions is kept and written into
    the model. With ``rmse_tolerance=0`` this is least squares on the grid.
    ``mixed_precision`` should be the one :func:`predict` will use, so that the
    recalibration is fitted on the scores it will correct.
    """
    model.output.calibration.copy_(torch.tensor([0.0, 1.0]))
    precision = resolve_precision(mixed_precision, model_device(model).type)
    rating_scale = model.config.scale
    low, high = rating_scale.minimum, rating_scale.maximum
    score = _outputs(model, valid, precision=precision).cpu().numpy()
    score = score.astype(np.float64)
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
