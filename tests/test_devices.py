"""Mixed precision and host-to-device copies, checked on the CPU alone."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from test_models import planted_tensors, tiny_model

from recsys_utils import devices, training
from recsys_utils.data import IdIndex
from recsys_utils.devices import Precision, resolve_precision, to_device
from recsys_utils.training import RatingTensors, TrainConfig, calibrate, fit, predict


@pytest.fixture(scope="module")
def planted():
    return planted_tensors()


# --------------------------------------------------------------------------
# Which precision


def test_precision_is_off_on_the_cpu_and_mps_unless_forced() -> None:
    assert not resolve_precision(None, "cpu").enabled
    assert not resolve_precision(None, "mps").enabled
    assert not resolve_precision(False, "cuda").enabled
    forced = resolve_precision(True, "cpu")
    assert forced.dtype == torch.bfloat16 and not forced.scale_loss


def test_cuda_takes_bfloat16_where_supported_else_float16_with_scaling(
    monkeypatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision(None, "cuda") == Precision("cuda", torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    half = resolve_precision(None, "cuda:1")
    assert half == Precision("cuda", torch.float16, scale_loss=True)


def test_bad_mixed_precision_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"mixed_precision='yes' .*None, True or"):
        resolve_precision("yes", "cpu")


def test_disabled_autocast_leaves_autocast_off() -> None:
    with Precision("cpu").autocast():
        assert not torch.is_autocast_enabled("cpu")
    with Precision("cpu", torch.bfloat16).autocast():
        assert torch.is_autocast_enabled("cpu")


def test_default_config_trains_in_full_precision_on_the_cpu(
    planted, monkeypatch
) -> None:
    entered = []
    monkeypatch.setattr(
        torch, "autocast", lambda *a, **k: entered.append(a) or pytest.fail()
    )
    train, valid = planted
    fit(tiny_model(), train, valid, TrainConfig(n_epochs=1), verbose=False)
    assert entered == []


def test_bfloat16_training_on_the_cpu_is_finite_and_close_to_float32(
    planted,
) -> None:
    train, valid = planted
    options = {"n_epochs": 15, "batch_size": 128, "learning_rate": 0.01}
    full = fit(tiny_model(), train, valid, TrainConfig(**options), verbose=False)
    mixed = fit(
        tiny_model(),
        train,
        valid,
        TrainConfig(**options, mixed_precision=True),
        verbose=False,
    )
    assert mixed.history["train_loss"].map(math.isfinite).all()
    best_full = full.history["val_rmse"].min()
    best_mixed = mixed.history["val_rmse"].min()
    # bfloat16 keeps 8 bits of mantissa (relative error about 0.4% per
    # product); on this fixture the best RMSEs (near 0.48) differ by about
    # 0.015, and 0.05 leaves room for the rounding to steer training elsewhere.
    assert abs(best_mixed - best_full) < 0.05, (best_mixed, best_full)
    assert best_mixed < 0.9 * valid.rating.std().item()  # it learned something
    calibration = calibrate(mixed.model, valid, mixed_precision=True)
    assert math.isfinite(calibration.shift)
    pred = predict(mixed.model, valid, mixed_precision=True)
    assert pred.dtype == "float32" and ((pred >= 1) & (pred <= 5)).all()


def test_classifier_under_bfloat16_predicts_probabilities(planted) -> None:
    train, valid = planted
    config = TrainConfig(n_epochs=3, batch_size=128, mixed_precision=True)
    result = fit(tiny_model("classification"), train, valid, config, verbose=False)
    proba = predict(result.model, valid, mixed_precision=True)
    assert proba.shape == (len(valid), 5)
    assert abs(proba.sum(axis=1) - 1).max() < 1e-5


# --------------------------------------------------------------------------
# Pinned, non-blocking copies


@pytest.fixture
def pinned_calls(monkeypatch) -> list[tuple[torch.Tensor, torch.device]]:
    """Record what would go through pinned memory, keeping the tensor on the CPU."""
    calls = []

    def fake_pinned_copy(tensor, device):
        calls.append((tensor, device))
        return tensor

    monkeypatch.setattr(devices, "_pinned_copy", fake_pinned_copy)
    return calls


def test_only_cuda_copies_go_through_pinned_memory(pinned_calls) -> None:
    tensor = torch.arange(5)
    assert to_device(tensor, "cpu") is tensor  # nothing copied at all
    assert devices.uses_pinned_copies("cuda:1")
    assert not devices.uses_pinned_copies("mps")
    assert not devices.uses_pinned_copies("cpu")
    assert pinned_calls == []
    to_device(tensor, "cuda")
    assert [device.type for _, device in pinned_calls] == ["cuda"]


def test_whole_splits_bound_for_cuda_are_pinned(pinned_calls) -> None:
    users = pd.DataFrame({"user_id": [1, 2, 3]})
    items = pd.DataFrame({"item_id": [10, 20]})
    ratings = pd.DataFrame(
        {"user_id": [1, 3, 2], "item_id": [20, 10, 10], "rating": [4, 5, 1]}
    )
    index = IdIndex.from_tables(users, items)
    tensors = RatingTensors.from_frame(ratings, index, "cuda")
    assert len(pinned_calls) == 3  # user, item and rating each
    assert tensors.user.tolist() == [0, 2, 1]
    assert tensors.rating.dtype == torch.float32
    RatingTensors.from_frame(ratings, index, "cpu")
    assert len(pinned_calls) == 3


def test_epoch_order_is_drawn_on_the_cpu_and_moved_once(pinned_calls) -> None:
    generator = torch.Generator().manual_seed(7)
    order = training._epoch_order(generator, 10, 10, 0, torch.device("cuda"))
    assert len(pinned_calls) == 1
    assert pinned_calls[0][0].device.type == "cpu"
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(7))
    assert torch.equal(order, expected)


def test_shards_of_the_epoch_order_are_equal_and_disjoint() -> None:
    shards = [
        training._epoch_order(
            torch.Generator().manual_seed(3), 11, 5, rank, torch.device("cpu")
        )
        for rank in (0, 1)
    ]
    assert [len(s) for s in shards] == [5, 5]
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    with pytest.raises(ValueError, match=r"3 training ratings cannot be shared by 2"):
        training._shard_size(3, 2)
