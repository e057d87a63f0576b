"""Chapter parameters: defaults, refusals with one clear line, devices."""

from __future__ import annotations

import ast
import json

import papermill as pm
import pytest
import torch

from recsys_utils import paths
from recsys_utils.params import (
    ParameterError,
    RunParameters,
    published_parameters,
    resolve_device,
)


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


@pytest.mark.parametrize(
    "chapter",
    sorted(p.stem for p in (paths.PROJECT_ROOT / "notebooks").glob("*.ipynb")),
)
def test_published_parameters_are_the_notebooks_defaults(chapter: str) -> None:
    # papermill reads the same cell on its own; the two must agree on every name.
    path = paths.PROJECT_ROOT / "notebooks" / f"{chapter}.ipynb"
    expected = {
        name: ast.literal_eval(spec["default"])
        for name, spec in pm.inspect_notebook(str(path)).items()
    }
    assert published_parameters(chapter) == expected


def test_published_parameters_of_the_regression_chapter() -> None:
    published = published_parameters("03_ncf_regression")
    assert published["dataset"] == "ml-100k"
    assert isinstance(published["batch_size"], int)
    assert isinstance(published["mlp_layers"], list)


def test_published_parameters_of_an_unknown_chapter_are_refused() -> None:
    with pytest.raises(FileNotFoundError, match="no chapter '99_nothing'"):
        published_parameters("99_nothing")


def test_published_parameters_refuse_code_in_the_cell(tmp_path, monkeypatch) -> None:
    (tmp_path / "notebooks").mkdir()
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]},
            "source": ["n_epochs = 2\n", "batch_size = 2 ** 10\n"]}  # fmt: skip
    (tmp_path / "notebooks" / "x.ipynb").write_text(json.dumps({"cells": [cell]}))
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    with pytest.raises(ValueError, match="parameter batch_size is not a literal"):
        published_parameters("x")
    cell["source"] = ["n_epochs = 2\n", "print(n_epochs)\n"]
    (tmp_path / "notebooks" / "x.ipynb").write_text(json.dumps({"cells": [cell]}))
    with pytest.raises(ValueError, match="may only assign literals to names"):
        published_parameters("x")
