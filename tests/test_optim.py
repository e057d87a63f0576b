"""Lazy Adam for large embedding tables, and the optimiser the training loop uses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recsys_utils.models import neumf_builder
from recsys_utils.optim import SPARSE_ROWS, LazyAdam, RatingOptimizer
from recsys_utils.training import RatingTensors, TrainConfig, fit, seeded


def _tables(sparse: bool) -> nn.Embedding:
    with seeded(0):
        return nn.Embedding(6, 3, sparse=sparse)


def _steps(table: nn.Embedding, optimizer, batches) -> None:
    for rows in batches:
        optimizer.zero_grad()
        # A loss with a different gradient for every row and every step.
        (table(rows) ** 2 * torch.arange(1.0, 4.0)).sum().backward()
        optimizer.step()


def test_lazy_adam_equals_dense_adam_when_every_row_is_read() -> None:
    dense, sparse = _tables(False), _tables(True)
    # Every row in every batch, some of them twice: their gradients add up.
    batches = [torch.tensor([0, 1, 2, 3, 4, 5, 2, 5])] * 4 + [torch.arange(6)] * 3
    _steps(
        dense, torch.optim.Adam(dense.parameters(), lr=0.05, weight_decay=0.1), batches
    )
    _steps(sparse, LazyAdam(sparse.parameters(), lr=0.05, weight_decay=0.1), batches)
    torch.testing.assert_close(sparse.weight, dense.weight, rtol=1e-5, atol=1e-6)
    assert not torch.equal(sparse.weight, _tables(True).weight)  # it did move


def test_lazy_adam_leaves_unread_rows_and_their_moments_alone() -> None:
    table = _tables(True)
    before = table.weight.detach().clone()
    optimizer = LazyAdam(table.parameters(), lr=0.05, weight_decay=0.1)
    _steps(table, optimizer, [torch.tensor([1, 4])] * 3)
    moved = (table.weight != before).any(dim=1)
    assert moved.tolist() == [False, True, False, False, True, False]
    state = optimizer.state[table.weight]
    assert state["exp_avg"][[0, 2, 3, 5]].abs().sum() == 0
    assert state["step"].item() == 3


def test_lazy_adam_refuses_a_dense_gradient_and_bad_settings() -> None:
    table = _tables(False)
    optimizer = LazyAdam(table.parameters())
    table(torch.tensor([0])).sum().backward()
    with pytest.raises(RuntimeError, match="needs sparse gradients"):
        optimizer.step()
    with pytest.raises(ValueError, match="use lr > 0"):
        LazyAdam(table.parameters(), lr=0.0)


def _model(n_users: int = 30, n_items: int = 40):
    return neumf_builder(n_users, n_items, task="regression", n_factors=4,
                         mlp_layers=(8, 4), fusion_size=4)(3.0)  # fmt: skip


def test_rating_optimizer_is_dense_for_small_tables_and_sparse_for_large() -> None:
    assert not RatingOptimizer(_model(), learning_rate=1e-3, weight_decay=0.0).sparse
    large = _model(n_users=SPARSE_ROWS, n_items=10)
    chosen = RatingOptimizer(large, learning_rate=1e-3, weight_decay=0.0)
    assert chosen.sparse
    assert all(m.sparse for m in large.modules() if isinstance(m, nn.Embedding))
    assert set(chosen.state_dict()) == {"dense", "sparse"}


def test_training_with_lazy_adam_learns_and_matches_dense_closely() -> None:
    """A planted rank-2 structure: sparse and dense runs both learn it."""
    rng = torch.Generator().manual_seed(3)
    n_users, n_items, n = 30, 40, 3000
    user = torch.randint(0, n_users, (n,), generator=rng)
    item = torch.randint(0, n_items, (n,), generator=rng)
    p, q = (
        torch.randn(n_users, 2, generator=rng),
        torch.randn(n_items, 2, generator=rng),
    )
    rating = (3 + (p[user] * q[item]).sum(1)).clamp(1, 5)
    train = RatingTensors(user[:2500], item[:2500], rating[:2500])
    valid = RatingTensors(user[2500:], item[2500:], rating[2500:])
    scores = {}
    for sparse in (False, True):
        with seeded(0):
            model = _model(n_users, n_items)
        config = TrainConfig(n_epochs=40, batch_size=128, learning_rate=1e-2,
                             weight_decay=1e-5, patience=40, sparse_embeddings=sparse)  # fmt: skip
        result = fit(model, train, valid, config, verbose=False)
        scores[sparse] = result.history["val_rmse"].min()
    spread = rating.std().item()
    assert scores[True] < 0.3 * spread and scores[False] < 0.3 * spread
    assert abs(scores[True] - scores[False]) < 0.05
