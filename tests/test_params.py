"""Chapter parameters: defaults, refusals with one clear line, devices."""

from __future__ import annotations

import pytest
import torch

from recsys_utils.params import ParameterError, RunParameters, resolve_device


def test_defaults_validate() -> None:
    params = RunParameters()
    assert params.split == "u1"
    assert params.device == "cpu"
    assert set(params.to_dict()) == set(RunParameters.names())


def test_papermill_style_values_are_accepted() -> None:
    params = RunParameters(split="random", n_epochs=2, batch_size=4096, dropout=0.0)
    assert params.to_dict()["batch_size"] == 4096


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("split", "u9"),
        ("device", "tpu"),
        ("dataset", "ml-2m"),
        ("n_epochs", 0),
        ("n_epochs", -1),
        ("batch_size", "64"),
        ("batch_size", True),
        ("n_factors", 2.5),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("learning_rate", 0),
        ("valid_fraction", 0.0),
        ("seed", -1),
        ("batch_norm", "yes"),
    ],
)
def test_bad_value_is_refused_in_one_line(name: str, value: object) -> None:
    with pytest.raises(ParameterError) as raised:
        RunParameters(**{name: value})
    message = str(raised.value)
    assert f"parameter {name}={value!r} ({type(value).__name__})" in message
    assert "\n" not in message


def test_refusal_says_what_is_allowed() -> None:
    with pytest.raises(ParameterError, match="use one of 'u1', .*'random'"):
        RunParameters(split="u9")


def test_parameter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        RunParameters(n_epochs=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_auto_device_is_cpu_without_accelerator() -> None:
    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_cuda_is_refused() -> None:
    with pytest.raises(ParameterError, match="device='cuda' is not available"):
        resolve_device("cuda")


def test_unknown_device_is_refused() -> None:
    with pytest.raises(ParameterError, match="device='tpu'"):
        resolve_device("tpu")
