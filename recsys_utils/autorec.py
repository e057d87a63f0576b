r"""Item-based AutoRec: each movie's column of ratings, encoded and reconstructed.

AutoRec [sedhain2015]_ reads the ratings matrix one movie at a time: the
vector :math:`r_i \in \mathbb{R}^{n_{users}}` of the ratings movie :math:`i`
received (0 where a user did not rate it) goes through one hidden layer and
back,

.. math::

    \hat r_i = W' \sigma(W r_i + b) + b',

and the squared error is counted only where a rating exists, plus an L2
penalty :math:`\tfrac{\lambda}{2}(\lVert W \rVert^2 + \lVert W' \rVert^2)`.
The prediction for user :math:`u` is entry :math:`u` of :math:`\hat r_i`.
It sees a movie through everyone who rated it, where the pair models of the
book see one (user, movie) pair at a time, so its errors differ from theirs:
the benchmarks chapter uses it in the blend for that reason.

References
----------
.. [sedhain2015] S. Sedhain, A. K. Menon, S. Sanner and L. Xie, "AutoRec:
   Autoencoders Meet Collaborative Filtering", WWW 2015.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from recsys_utils.data import IdIndex
from recsys_utils.metrics import RatingScale
from recsys_utils.params import check_float, check_int
from recsys_utils.training import seeded, torch_threads


@dataclass(frozen=True)
class AutoRecConfig:
    """Size, penalty and training of :class:`ItemAutoRec` (AutoRec's own settings)."""

    hidden: int = 500
    l2: float = 0.3
    learning_rate: float = 1e-3
    batch_size: int = 64  # movies per step
    n_epochs: int = 200
    patience: int = 10
    seed: int = 42
    n_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("hidden", "batch_size", "n_epochs", "patience", "n_threads"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)
        check_float("l2", self.l2, 0.0, 1e3)
        check_float("learning_rate", self.learning_rate, 1e-8, 10.0)


class ItemAutoRec(nn.Module):
    """The network: a movie's rating vector to a hidden code and back."""

    def __init__(self, n_users: int, hidden: int) -> None:
        super().__init__()
        self.encoder = nn.Linear(n_users, hidden)
        self.decoder = nn.Linear(hidden, n_users)

    def forward(self, ratings: torch.Tensor) -> torch.Tensor:
        """(movies, n_users) ratings, 0 where missing -> (movies, n_users) predictions."""
        return self.decoder(torch.sigmoid(self.encoder(ratings)))

    def penalty(self) -> torch.Tensor:
        return self.encoder.weight.pow(2).sum() + self.decoder.weight.pow(2).sum()


def _matrix(ratings: pd.DataFrame, index: IdIndex) -> tuple[torch.Tensor, torch.Tensor]:
    """The (n_items, n_users) rating matrix and its mask of observed entries."""
    matrix = torch.zeros(index.n_items, index.n_users)
    items = torch.as_tensor(index.item_index(ratings["item_id"].to_numpy()))
    users = torch.as_tensor(index.user_index(ratings["user_id"].to_numpy()))
    matrix[items, users] = torch.as_tensor(ratings["rating"].to_numpy(dtype=np.float32))
    return matrix, (matrix > 0).float()


@dataclass(frozen=True)
class FittedAutoRec:
    """A trained AutoRec and how it trained; predicts any (user, movie) pair."""

    network: ItemAutoRec
    index: IdIndex
    predictions: torch.Tensor  # (n_items, n_users), clipped to the rating scale
    history: pd.DataFrame  # epoch, train_loss, val_rmse, seconds
    best_epoch: int
    train_seconds: float

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.network.parameters())

    def predict_pairs(self, user_ids, item_ids) -> np.ndarray:
        """Predicted ratings of flat arrays of MovieLens ids, shape (n,)."""
        items = self.index.item_index(np.asarray(item_ids))
        users = self.index.user_index(np.asarray(user_ids))
        return self.predictions[items, users].double().numpy()

    def predict(self, ratings: pd.DataFrame) -> np.ndarray:
        return self.predict_pairs(ratings["user_id"], ratings["item_id"])


def fit_autorec(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    index: IdIndex,
    config: AutoRecConfig = AutoRecConfig(),
) -> FittedAutoRec:
    """Train item-based AutoRec on ``train``, stopping early on validation RMSE.

    Mini-batches are ``config.batch_size`` movies in a seeded order; the
    weights of the best validation epoch are kept. A movie without a training
    rating has an all-zero input, so its reconstruction means nothing: it is
    predicted by the mean training rating instead, as the other models' stated
    fallback does. Predictions are clipped to the scale of the training
    ratings (1..5 in whole stars).
    """
    matrix, mask = _matrix(train, index)
    mean = float(train["rating"].mean())
    scale = RatingScale.from_ratings(train["rating"])
    low, high = float(scale.minimum), float(scale.maximum)
    unseen_items = mask.sum(dim=1) == 0
    valid_items = torch.as_tensor(index.item_index(valid["item_id"].to_numpy()))
    valid_users = torch.as_tensor(index.user_index(valid["user_id"].to_numpy()))
    valid_true = torch.as_tensor(valid["rating"].to_numpy(dtype=np.float32))
    generator = torch.Generator().manual_seed(config.seed)

    def predict_all(network: ItemAutoRec) -> torch.Tensor:
        with torch.no_grad():
            out = network(matrix).clamp(low, high)
            out[unseen_items] = mean
        return out

    history, best_rmse, best_epoch, best_state = [], math.inf, 0, None
    started = time.perf_counter()
    with seeded(config.seed), torch_threads(config.n_threads):
        network = ItemAutoRec(index.n_users, config.hidden)
        # Fused: one kernel for the step, a tenth of an epoch less than the default.
        optimizer = torch.optim.Adam(
            network.parameters(), lr=config.learning_rate, fused=True
        )
        n_items = index.n_items
        for epoch in range(1, config.n_epochs + 1):
            epoch_start = time.perf_counter()
            total = 0.0
            for rows in torch.randperm(n_items, generator=generator).split(
                config.batch_size
            ):
                error = (network(matrix[rows]) - matrix[rows]) * mask[rows]
                # The penalty is spread over the batches of an epoch.
                loss = error.pow(2).sum() / len(rows) + config.l2 / 2 * (
                    network.penalty() * len(rows) / n_items
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(rows)
            predicted = predict_all(network)[valid_items, valid_users]
            val_rmse = (predicted - valid_true).pow(2).mean().sqrt().item()
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": total / n_items,
                    "val_rmse": val_rmse,
                    "seconds": time.perf_counter() - epoch_start,
                }
            )
            if not math.isfinite(val_rmse):
                raise FloatingPointError(
                    f"epoch {epoch}: AutoRec's validation RMSE became {val_rmse}; "
                    "lower learning_rate"
                )
            if val_rmse < best_rmse:
                best_rmse, best_epoch = val_rmse, epoch
                best_state = copy.deepcopy(network.state_dict())
            elif epoch - best_epoch >= config.patience:
                break
        network.load_state_dict(best_state)
        network.eval()
        predictions = predict_all(network)
    return FittedAutoRec(
        network,
        index,
        predictions,
        pd.DataFrame(history),
        best_epoch,
        time.perf_counter() - started,
    )
