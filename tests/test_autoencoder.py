"""The autoencoder recommender: shapes, the variational layer, training, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recsys_utils.models import (
    AutoencoderConfig,
    AutoencoderRecommender,
    autoencoder_builder,
)
from recsys_utils.params import ParameterError
from recsys_utils.training import (
    RatingTensors,
    TrainConfig,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
    seeded,
)

N_USERS, N_ITEMS = 20, 30
TINY = {"n_factors": 6, "encoder_layers": [12, 8], "latent_size": 3}


def tiny(**options) -> AutoencoderRecommender:
    with seeded(0):
        return AutoencoderRecommender(
            AutoencoderConfig(N_USERS, N_ITEMS, **{**TINY, **options})
        )


def pairs(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n) % N_USERS, (torch.arange(n) * 7) % N_ITEMS


@pytest.mark.parametrize("variational", [True, False])
@pytest.mark.parametrize("residual", [True, False])
def test_forward_and_latent_shapes(variational: bool, residual: bool) -> None:
    model = tiny(variational=variational, residual=residual)
    user, item = pairs()
    assert model(user, item).shape == (16,)
    assert model.encode(user, item).shape == (16, 3)


def test_classification_output_has_five_columns() -> None:
    model = tiny(task="classification")
    assert model(*pairs()).shape == (16, 5)


def test_kl_is_finite_and_non_negative_even_for_huge_log_variance() -> None:
    model = tiny(variational=True)
    with torch.no_grad():
        model.to_logvar.bias.fill_(1e4)  # exp(1e4) would overflow without the clamp
    model.train()(*pairs())
    assert torch.isfinite(model._kl) and model._kl >= 0
    assert torch.isfinite(model.penalty())


def test_prediction_uses_the_mean_not_a_sample() -> None:
    model = tiny(variational=True).eval()
    user, item = pairs()
    assert torch.equal(model(user, item), model(user, item))


def test_plain_autoencoder_has_no_penalty() -> None:
    model = tiny(variational=False)
    model.train()(*pairs())
    assert model.penalty() == 0.0


def test_kl_weight_scales_the_penalty() -> None:
    quiet = {"dropout": 0.0, "embedding_noise": 0.0}  # nothing random but the sample
    light, heavy = tiny(kl_weight=0.001, **quiet), tiny(kl_weight=0.1, **quiet)
    light.train()(*pairs())
    heavy.train()(*pairs())
    # Same seed, same weights: only the weight differs (sampling does not enter the KL).
    assert heavy.penalty().item() == pytest.approx(
        100 * light.penalty().item(), rel=1e-5
    )


def test_bad_configuration_is_refused_naming_the_parameter() -> None:
    with pytest.raises(ParameterError, match="encoder_layers"):
        AutoencoderConfig(N_USERS, N_ITEMS, encoder_layers=[])
    with pytest.raises(ParameterError, match="kl_weight"):
        AutoencoderConfig(N_USERS, N_ITEMS, kl_weight=-1.0)


def planted() -> tuple[RatingTensors, RatingTensors]:
    rng = np.random.default_rng(1)
    score = rng.normal(size=(N_USERS, 2)) @ rng.normal(size=(N_ITEMS, 2)).T
    rating = np.clip(np.rint(3 + score), 1, 5).ravel()
    user, item = (a.ravel() for a in np.indices((N_USERS, N_ITEMS)))
    order = rng.permutation(rating.size)

    def part(rows):
        return RatingTensors(
            torch.as_tensor(user[rows]), torch.as_tensor(item[rows]),
            torch.as_tensor(rating[rows], dtype=torch.float32),
        )  # fmt: skip

    return part(order[:520]), part(order[520:])


def test_training_lowers_validation_error_below_the_mean() -> None:
    train, valid = planted()
    build = autoencoder_builder(
        N_USERS, N_ITEMS, **TINY, dropout=0.0, embedding_noise=0.0
    )
    with seeded(0):
        model = build(float(train.rating.mean()))
    config = TrainConfig(n_epochs=60, batch_size=32, learning_rate=0.01, patience=15)
    result = fit(model, train, valid, config, verbose=False)
    baseline = float((valid.rating - train.rating.mean()).pow(2).mean().sqrt())
    assert result.history["val_rmse"].min() < baseline - 0.2


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = tiny().eval()
    save_checkpoint(tmp_path / "ae.pt", model)
    reloaded, _ = load_checkpoint(tmp_path / "ae.pt")
    assert isinstance(reloaded, AutoencoderRecommender)
    data = RatingTensors(*pairs(), torch.full((16,), 3.0))
    assert np.array_equal(predict(reloaded, data), predict(model, data))
