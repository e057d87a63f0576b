"""NeuMF, its configuration, training with early stopping, and checkpoints."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys_utils.metrics import FIVE_STARS, RatingScale
from recsys_utils.models import (
    Dropout,
    GaussianNoise,
    MatrixFactorizationConfig,
    NeuMF,
    NeuMFConfig,
    build_model,
    mf_builder,
    neumf_builder,
)
from recsys_utils.params import ParameterError
from recsys_utils.training import (
    CheckpointError,
    RatingTensors,
    TrainConfig,
    calibrate,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
    seeded,
)

N_USERS, N_ITEMS = 30, 40
TINY = {"n_factors": 8, "mlp_layers": (16, 8), "fusion_size": 8}


def tiny_model(task: str = "regression", seed: int = 0, **options) -> NeuMF:
    with seeded(seed):
        return NeuMF(NeuMFConfig(N_USERS, N_ITEMS, **{**TINY, "task": task, **options}))


def tensors(user, item, rating) -> RatingTensors:
    return RatingTensors(
        torch.as_tensor(np.asarray(user), dtype=torch.int64),
        torch.as_tensor(np.asarray(item), dtype=torch.int64),
        torch.as_tensor(np.asarray(rating), dtype=torch.float32),
    )


def planted_tensors() -> tuple[RatingTensors, RatingTensors]:
    """Every rating of 30 users x 40 items from a rank-2 structure, split 1000 / 200.

    Rating = round(3 + <u, v> + noise) clipped to 1..5, so a model that finds
    the user and item factors beats the mean by far.
    """
    rng = np.random.default_rng(0)
    score = rng.normal(size=(N_USERS, 2)) @ rng.normal(size=(N_ITEMS, 2)).T
    noise = rng.normal(scale=0.3, size=score.shape)
    rating = np.clip(np.rint(3 + score + noise), 1, 5).ravel()
    user, item = (a.ravel() for a in np.indices((N_USERS, N_ITEMS)))
    order = rng.permutation(rating.size)
    train, valid = order[:1000], order[1000:]
    return (
        tensors(user[train], item[train], rating[train]),
        tensors(user[valid], item[valid], rating[valid]),
    )


@pytest.fixture(scope="module")
def planted() -> tuple[RatingTensors, RatingTensors]:
    return planted_tensors()


def quiet_fit(model, train, valid, **options):
    return fit(model, train, valid, TrainConfig(**options), verbose=False)


# --------------------------------------------------------------------------
# The model


@pytest.mark.parametrize(
    ("task", "shape"), [("regression", (7,)), ("classification", (7, 5))]
)
def test_forward_shape(task: str, shape: tuple[int, ...]) -> None:
    model = tiny_model(task)
    user, item = torch.arange(7), torch.arange(7) + 3
    assert model(user, item).shape == shape
    assert predict(model, tensors(user, item, np.full(7, 3.0))).shape == shape


def test_regression_prediction_is_clipped_to_rating_scale() -> None:
    model = tiny_model(rating_offset=40.0)
    data = tensors(np.arange(5), np.arange(5), np.full(5, 3.0))
    assert model(data.user, data.item).min() > 5
    assert (predict(model, data) == 5.0).all()


def test_classification_prediction_is_probabilities() -> None:
    data = tensors(np.arange(6), np.arange(6), np.full(6, 3.0))
    proba = predict(tiny_model("classification"), data)
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_gaussian_noise_is_identity_in_eval_mode() -> None:
    noise = GaussianNoise(0.5).eval()
    x = torch.randn(200, 8)
    assert torch.equal(noise(x), x)


def test_gaussian_noise_perturbs_in_train_mode() -> None:
    noise = GaussianNoise(0.5).train()
    x = torch.zeros(200, 8)
    with seeded(0):
        perturbed = noise(x)
    assert perturbed.std().item() == pytest.approx(0.5, rel=0.1)


def test_dropout_zeroes_the_stated_share_and_keeps_the_mean() -> None:
    dropout = Dropout(0.2).train()
    x = torch.ones(500, 64)
    with seeded(0):
        out = dropout(x)
    assert (out == 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    # Survivors are scaled by 1 / (1 - p), so the expected value is unchanged.
    assert torch.allclose(out[out != 0], torch.tensor(1.25))
    assert out.mean().item() == pytest.approx(1.0, abs=0.02)


def test_dropout_passes_gradients_only_through_kept_units() -> None:
    x = torch.ones(50, 10, requires_grad=True)
    with seeded(1):
        out = Dropout(0.5).train()(x)
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())


def test_dropout_is_identity_in_eval_mode_and_at_zero_rate() -> None:
    x = torch.randn(100, 8)
    assert torch.equal(Dropout(0.3).eval()(x), x)
    state = torch.get_rng_state()
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(torch.get_rng_state(), state)  # no random number drawn


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_dropout_refuses_a_rate_outside_zero_one(p: float) -> None:
    with pytest.raises(ValueError, match=r"dropout p=.* use a number in \[0, 1\)"):
        Dropout(p)


@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_lookup_gives_the_rows_and_gradients_of_the_embedding(index_dtype) -> None:
    from recsys_utils.models import lookup

    torch.manual_seed(0)
    table = torch.nn.Embedding(7, 3)
    index = torch.tensor([4, 0, 4, 6], dtype=index_dtype)
    upstream = torch.randn(4, 3)
    rows = lookup(table, index)
    rows.backward(upstream)
    fast = table.weight.grad.clone()
    table.weight.grad = None
    table(index.long()).backward(upstream)
    torch.testing.assert_close(rows, table(index.long()))
    torch.testing.assert_close(fast, table.weight.grad)
    assert fast[4].abs().sum() > 0 and fast[1].abs().sum() == 0


def test_lookup_keeps_sparse_gradients_for_sparse_tables() -> None:
    from recsys_utils.models import lookup

    table = torch.nn.Embedding(7, 3, sparse=True)
    lookup(table, torch.tensor([1, 2])).sum().backward()
    assert table.weight.grad.is_sparse


def test_rows_split_each_side_into_gmf_and_mlp_with_noise() -> None:
    model = tiny_model(embedding_noise=0.5)
    model.train()
    user = torch.tensor([0, 1, 2])
    gmf, mlp = model._rows(model.user_embedding, user)
    n_factors = model.config.n_factors
    assert gmf.shape == (3, n_factors)
    assert mlp.shape == (3, model.config.mlp_layers[0] // 2)
    clean = model.user_embedding.weight[user]
    assert not torch.allclose(gmf, clean[:, :n_factors])
    assert not torch.allclose(mlp, clean[:, n_factors:])


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_checkpoint_of_four_separate_tables_loads(task: str) -> None:
    """Weights saved before each side's GMF and MLP tables were joined still load."""
    model = tiny_model(task)
    model.eval()
    state = model.state_dict()
    n_factors = model.config.n_factors
    for side in ("user", "item"):
        joined = state.pop(f"{side}_embedding.weight")
        state[f"{side}_gmf.weight"] = joined[:, :n_factors]
        state[f"{side}_mlp.weight"] = joined[:, n_factors:]
    rebuilt = tiny_model(task)
    rebuilt.load_state_dict(state)
    rebuilt.eval()
    user, item = torch.tensor([0, 1, 2]), torch.tensor([3, 0, 1])
    torch.testing.assert_close(rebuilt(user, item), model(user, item))


def test_config_accepts_a_list_for_mlp_layers() -> None:
    config = NeuMFConfig(N_USERS, N_ITEMS, mlp_layers=[16, 8])
    assert config.mlp_layers == (16, 8)
    assert NeuMFConfig.from_dict(config.to_dict()) == config
    assert NeuMF(config).user_embedding.embedding_dim == config.n_factors + 8


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("dropout", 1.0),
        ("n_factors", 0),
        ("mlp_layers", [16, "8"]),
        ("mlp_layers", []),
        ("mlp_layers", [1]),
        ("fusion_size", 2.5),
        ("batch_norm", "yes"),
        ("task", "ranking"),
    ],
)
def test_config_refuses_bad_value_naming_the_parameter(option, value) -> None:
    with pytest.raises(ParameterError, match=f"parameter {option}"):
        NeuMFConfig(N_USERS, N_ITEMS, **{option: value})


def test_builder_checks_options_before_building() -> None:
    with pytest.raises(ParameterError, match="dropout"):
        neumf_builder(N_USERS, N_ITEMS, dropout=1.0)


def test_builder_sets_the_rating_offset() -> None:
    model = neumf_builder(N_USERS, N_ITEMS, **TINY)(3.25)
    assert model.output.offset.item() == 3.25
    assert model.config.rating_offset == 3.25


def test_build_model_refuses_unknown_name() -> None:
    with pytest.raises(ValueError, match="'MF' is unknown; known models: NeuMF"):
        build_model("MF", {})


# --------------------------------------------------------------------------
# Training


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_one_optimisation_step_lowers_training_loss(planted, task: str) -> None:
    # Without dropout, noise and batch norm, train and eval outputs agree.
    model = tiny_model(task, dropout=0.0, embedding_noise=0.0, batch_norm=False)
    train, _ = planted
    target = train.rating if task == "regression" else train.rating.long() - 1
    loss_fn = (
        torch.nn.MSELoss() if task == "regression" else torch.nn.CrossEntropyLoss()
    )

    def loss() -> float:
        with torch.no_grad():
            return loss_fn(model(train.user, train.item), target).item()

    before = loss()
    quiet_fit(
        model, train, train, n_epochs=1, batch_size=len(train), learning_rate=0.01
    )
    assert loss() < before


def test_fit_learns_planted_structure(planted) -> None:
    train, valid = planted
    mean = train.rating.mean()
    baseline = (valid.rating - mean).pow(2).mean().sqrt().item()
    model = tiny_model(dropout=0.0, embedding_noise=0.0, rating_offset=mean.item())
    result = quiet_fit(
        model, train, valid, n_epochs=15, batch_size=128, learning_rate=0.02
    )
    best = result.history["val_rmse"].min()
    assert best < 0.75 * baseline
    assert result.history["val_rmse"].iloc[result.best_epoch - 1] == best


@pytest.fixture
def contradicting(planted) -> tuple[RatingTensors, RatingTensors]:
    """Validation = the training pairs with mirrored ratings (6 - r).

    The better the model fits training, the worse it does on validation.
    """
    train, _ = planted
    return train, RatingTensors(train.user, train.item, 6.0 - train.rating)


def test_early_stopping_stops_after_patience(contradicting) -> None:
    train, valid = contradicting
    result = quiet_fit(
        tiny_model(), train, valid, n_epochs=30, batch_size=128, learning_rate=0.02,
        patience=2,
    )  # fmt: skip
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 2 < 30
    assert len(result.history) == result.epochs_run


def test_without_early_stopping_all_epochs_run(contradicting) -> None:
    train, valid = contradicting
    result = quiet_fit(
        tiny_model(), train, valid, n_epochs=5, batch_size=256, learning_rate=0.02,
        patience=1, early_stopping=False,
    )  # fmt: skip
    assert not result.stopped_early
    assert result.epochs_run == 5


def test_best_weights_are_restored_and_checkpointed(contradicting, tmp_path) -> None:
    train, valid = contradicting
    checkpoint = tmp_path / "best.pt"
    model = tiny_model()
    result = fit(
        model, train, valid,
        TrainConfig(n_epochs=30, batch_size=128, learning_rate=0.02, patience=2),
        checkpoint_path=checkpoint, verbose=False,
    )  # fmt: skip
    assert result.best_epoch < result.epochs_run
    saved, meta = load_checkpoint(checkpoint)
    assert meta["epoch"] == result.best_epoch
    np.testing.assert_array_equal(predict(model, valid), predict(saved, valid))
    restored_rmse = np.sqrt(
        np.mean((predict(model, valid) - valid.rating.numpy()) ** 2)
    )
    history = result.history.set_index("epoch")["val_rmse"]
    assert restored_rmse == pytest.approx(history[result.best_epoch], rel=1e-5)
    assert restored_rmse < history[result.epochs_run]


def test_last_batch_of_one_does_not_break_batch_norm(planted) -> None:
    train, valid = planted
    n = 65  # batches of 64 and 1
    small = RatingTensors(train.user[:n], train.item[:n], train.rating[:n])
    result = quiet_fit(
        tiny_model(batch_norm=True), small, valid, n_epochs=2, batch_size=64
    )
    assert result.epochs_run == 2
    assert np.isfinite(result.history["train_loss"]).all()


def test_same_seed_gives_identical_histories(planted) -> None:
    train, valid = planted

    def run():
        model = tiny_model(seed=3, dropout=0.2, embedding_noise=0.1)
        result = quiet_fit(model, train, valid, n_epochs=3, batch_size=128, seed=5)
        return result.history.drop(columns="seconds"), predict(model, valid)

    (first, first_pred), (second, second_pred) = run(), run()
    assert first.equals(second)
    np.testing.assert_array_equal(first_pred, second_pred)


def test_another_seed_gives_another_history(planted) -> None:
    train, valid = planted
    histories = [
        quiet_fit(tiny_model(), train, valid, n_epochs=2, batch_size=128, seed=s)
        .history["train_loss"]
        .tolist()
        for s in (1, 2)
    ]
    assert histories[0] != histories[1]


def test_fit_leaves_global_random_state_alone(planted) -> None:
    train, valid = planted
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    quiet_fit(tiny_model(), train, valid, n_epochs=1, batch_size=256)
    assert torch.equal(torch.rand(3), expected)


def test_exploding_loss_raises_floating_point_error(planted) -> None:
    train, valid = planted
    bad = RatingTensors(train.user, train.item, train.rating * float("inf"))
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        quiet_fit(tiny_model(), bad, valid, n_epochs=2, batch_size=256)


# --------------------------------------------------------------------------
# Checkpoints


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_checkpoint_round_trip(planted, tmp_path: Path, task: str) -> None:
    _, valid = planted
    model = tiny_model(task, seed=9, mlp_layers=[16, 8])
    path = save_checkpoint(tmp_path / "model.pt", model, meta={"epoch": 4})
    loaded, meta = load_checkpoint(path)
    assert meta == {"epoch": 4}
    assert loaded.config == model.config
    np.testing.assert_array_equal(predict(loaded, valid), predict(model, valid))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


class Payload:
    """Something that is not a plain value: unpickling it would run code."""

    def __reduce__(self):
        return (print, ("unpickled",))


def test_checkpoint_with_arbitrary_object_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="not a plain weights file"):
        load_checkpoint(path)
    assert "unpickled" not in capsys.readouterr().out


def test_plain_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(tiny_model().state_dict(), path)
    with pytest.raises(CheckpointError, match="not a checkpoint of this book"):
        load_checkpoint(path)


def test_checkpoint_with_other_config_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "model.pt", tiny_model())
    with pytest.raises(CheckpointError, match="n_factors: file has 8, asked for 99"):
        load_checkpoint(path, expect_config={"n_factors": 99})


def test_checkpoint_with_matching_config_is_accepted(tmp_path: Path) -> None:
    model = tiny_model()
    path = save_checkpoint(tmp_path / "model.pt", model)
    # NeuMFConfig holds mlp_layers as a tuple; the file holds a list.
    expected = {"n_factors": 8, "mlp_layers": model.config.mlp_layers}
    loaded, _ = load_checkpoint(path, expect_config=expected)
    assert loaded.config == model.config


def as_if_saved_on_a_gpu(source: Path, target: Path) -> int:
    """Copy a torch file, tagging every tensor storage as living on ``cuda:0``.

    torch.save records each storage's device as a pickled string; a file
    written on a GPU differs from a CPU one only there.
    """
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
    tagged = 0
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/data.pkl"):
                tagged = data.count(cpu)
                data = data.replace(cpu, cuda)
            zout.writestr(info.filename, data)
    return tagged


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_checkpoint_saved_on_a_gpu_loads_on_the_cpu(planted, tmp_path: Path) -> None:
    train, valid = planted
    model = quiet_fit(tiny_model(), train, valid, n_epochs=2).model
    on_gpu = tmp_path / "gpu.pt"
    assert as_if_saved_on_a_gpu(save_checkpoint(tmp_path / "cpu.pt", model), on_gpu)
    with pytest.raises(RuntimeError, match="CUDA"):  # the file really asks for a GPU
        torch.load(on_gpu, weights_only=True)
    loaded, _ = load_checkpoint(on_gpu)
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    np.testing.assert_array_equal(predict(loaded, valid), predict(model, valid))


def test_missing_checkpoint_raises_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def test_fit_restores_torch_thread_count(planted):
    before = torch.get_num_threads()
    quiet_fit(tiny_model(), *planted, n_epochs=1, n_threads=before + 1)
    assert torch.get_num_threads() == before


def test_cumulative_classifier_gives_ordered_probabilities() -> None:
    model = tiny_model("classification", classifier="cumulative").eval()
    log_proba = model(torch.arange(8), torch.arange(8))
    proba = log_proba.exp()
    assert proba.shape == (8, 5)
    assert torch.allclose(proba.sum(dim=1), torch.ones(8), atol=1e-5)
    thresholds = model.output.thresholds()
    assert torch.all(thresholds[1:] > thresholds[:-1])


def test_cumulative_classifier_starts_centred_on_the_offset() -> None:
    # With the score at 3.0 and thresholds 1.5..4.5, rating 3 is the likeliest.
    model = tiny_model("classification", classifier="cumulative", rating_offset=3.0)
    with torch.no_grad():
        model.output.linear.weight.zero_()
        model.output.linear.bias.zero_()
    proba = model.eval()(torch.arange(4), torch.arange(4)).exp()
    assert torch.all(proba.argmax(dim=1) == 2)


def test_cumulative_classifier_learns(planted) -> None:
    model = tiny_model("classification", classifier="cumulative", dropout=0.0)
    result = quiet_fit(model, *planted, n_epochs=30, learning_rate=0.02, batch_size=128)
    assert result.history["val_rmse"].min() < result.history["val_rmse"].iloc[0] - 0.2


def shrunk_regressor(planted):
    """A regressor trained briefly with heavy weight decay: shrunk to the mean."""
    model = tiny_model(dropout=0.0, rating_offset=3.0)
    quiet_fit(model, *planted, n_epochs=15, learning_rate=0.02, weight_decay=0.02)
    return model


def test_calibration_is_identity_until_fitted(planted) -> None:
    model = tiny_model()
    assert model.output.calibration.tolist() == [0.0, 1.0]


def test_calibration_least_squares_does_not_raise_validation_error(planted) -> None:
    train, valid = planted
    model = shrunk_regressor(planted)
    before = float(
        np.sqrt(np.mean((predict(model, valid) - valid.rating.numpy()) ** 2))
    )
    result = calibrate(model, valid, rmse_tolerance=0.0)
    after = float(np.sqrt(np.mean((predict(model, valid) - valid.rating.numpy()) ** 2)))
    assert result.candidates["val RMSE"].min() == pytest.approx(
        result.candidates.loc[result.scale, "val RMSE"]
    )
    assert after <= before + 1e-6
    assert model.output.calibration.tolist() == pytest.approx(
        [result.shift, result.scale]
    )


def test_calibration_trades_within_tolerance_for_f1(planted) -> None:
    _, valid = planted
    model = shrunk_regressor(planted)
    strict = calibrate(model, valid, rmse_tolerance=0.0)
    loose = calibrate(model, valid, rmse_tolerance=0.05)
    table = loose.candidates
    assert table.loc[loose.scale, "val RMSE"] <= table["val RMSE"].min() + 0.05
    assert table.loc[loose.scale, "val F1"] >= table.loc[strict.scale, "val F1"]


def test_calibration_survives_a_checkpoint(planted, tmp_path: Path) -> None:
    _, valid = planted
    model = shrunk_regressor(planted)
    calibrate(model, valid, rmse_tolerance=0.05)
    save_checkpoint(tmp_path / "m.pt", model)
    reloaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert np.array_equal(predict(reloaded, valid), predict(model, valid))


@pytest.mark.parametrize("layers", [64, "[64, 32]", [], [64, "a"]])
def test_mlp_layers_that_are_not_a_list_of_widths_are_refused(layers) -> None:
    with pytest.raises(ParameterError, match="mlp_layers=.*-y 'mlp_layers"):
        NeuMFConfig(N_USERS, N_ITEMS, mlp_layers=layers)


# --------------------------------------------------------------------------
# Plain matrix factorisation


def test_matrix_factorization_learns_planted_structure(planted) -> None:
    train, valid = planted
    with seeded(0):
        model = mf_builder(N_USERS, N_ITEMS, n_factors=4)(3.0)
    result = quiet_fit(model, train, valid, n_epochs=60, learning_rate=0.03,
                       weight_decay=0.0, batch_size=128)  # fmt: skip
    baseline = np.sqrt(
        np.mean((valid.rating.numpy() - train.rating.mean().item()) ** 2)
    )
    # a rank-2 structure: the dot product must beat predicting the mean by far
    assert result.history["val_rmse"].min() < 0.6 * baseline


def test_matrix_factorization_checkpoint_round_trip(planted, tmp_path: Path) -> None:
    train, valid = planted
    with seeded(0):
        model = mf_builder(N_USERS, N_ITEMS, n_factors=4)(3.0)
    quiet_fit(model, train, valid, n_epochs=2)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "mf.pt", model))
    assert type(loaded).__name__ == "MatrixFactorization"
    np.testing.assert_array_equal(predict(loaded, valid), predict(model, valid))


def test_matrix_factorization_refuses_features() -> None:
    with pytest.raises(ParameterError, match="no content features"):
        MatrixFactorizationConfig(N_USERS, N_ITEMS, n_user_features=3)


# --------------------------------------------------------------------------
# Half-star releases


HALF_STARS = RatingScale(tuple(np.arange(1, 11) / 2))


@pytest.mark.parametrize("classifier", ["softmax", "cumulative"])
def test_half_star_classifier_has_one_output_per_level(planted, classifier) -> None:
    train, valid = planted
    half = RatingTensors(train.user, train.item, train.rating - 0.5)
    model = tiny_model(
        "classification", classifier=classifier, rating_levels=HALF_STARS.levels
    )
    assert model(half.user[:7], half.item[:7]).shape == (7, 10)
    result = quiet_fit(model, half, half, n_epochs=1, batch_size=256)
    assert predict(result.model, valid).shape == (len(valid), 10)


def test_half_star_regressor_clips_to_its_scale() -> None:
    model = tiny_model(rating_offset=-40.0, rating_levels=HALF_STARS.levels)
    data = tensors(np.arange(5), np.arange(5), np.full(5, 3.0))
    assert (predict(model, data) == 0.5).all()


def test_half_star_checkpoint_rebuilds_its_scale(tmp_path: Path) -> None:
    model = tiny_model("classification", rating_levels=HALF_STARS.levels)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, meta={}))
    assert loaded.config.scale == HALF_STARS
    assert loaded.output.linear.out_features == 10


def test_config_saved_without_rating_levels_loads_as_five_stars() -> None:
    config = tiny_model("classification").config.to_dict()
    del config["rating_levels"]  # as checkpoints written before the field existed
    rebuilt = build_model("NeuMF", config)
    assert rebuilt.config.scale == FIVE_STARS
    assert rebuilt.output.linear.out_features == 5
