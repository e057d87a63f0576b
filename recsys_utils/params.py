"""Chapter parameters: one set of names for every chapter, each value checked.

A chapter's ``parameters`` cell (papermill injects values there) feeds
:class:`RunParameters`, which refuses a bad value with one line naming the
parameter, the value and what is allowed.
"""

from __future__ import annotations

import ast
import json
import numbers
from dataclasses import asdict, dataclass, fields

import torch

from recsys_utils import paths
from recsys_utils.datasets import DATASETS
from recsys_utils.splits import CANONICAL_FOLDS, SPLITS

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


class ParameterError(ValueError):
    """A chapter parameter has a value that is not allowed."""


def _fail(name: str, value: object, allowed: str) -> None:
    kind = type(value).__name__
    raise ParameterError(
        f"parameter {name}={value!r} ({kind}) is not allowed: {allowed}"
    )


def check_int(name: str, value: object, minimum: int = 1) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        _fail(name, value, f"use a whole number >= {minimum}")
    return int(value)


def check_float(
    name: str, value: object, low: float, high: float, *, high_open: bool = False
) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        _fail(name, value, f"use a number in [{low}, {high}{')' if high_open else ']'}")
    return float(value)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        _fail(name, value, "use True or False")
    return value


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        _fail(name, value, f"use one of {', '.join(repr(c) for c in choices)}")
    return value  # type: ignore[return-value]


def check_dataset(name: str, value: object) -> str:
    """A MovieLens release, one of :data:`~recsys_utils.datasets.DATASETS`."""
    return check_choice(name, value, DATASETS)


def resolve_device(device: str) -> str:
    """Turn ``"auto"`` into the best device present; refuse one that is absent."""
    check_choice("device", device, DEVICES)
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise ParameterError(
            f"parameter device={device!r} is not available here: use 'auto' or 'cpu'"
        )
    return device


@dataclass(frozen=True)
class RunParameters:
    """The parameters shared by the model chapters, validated on creation."""

    seed: int = 42
    dataset: str = "ml-100k"
    split: str = "u1"
    n_epochs: int = 60
    batch_size: int = 1024
    n_factors: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 3e-4
    dropout: float = 0.2
    embedding_noise: float = 0.05
    batch_norm: bool = True
    early_stopping: bool = True
    patience: int = 5
    valid_fraction: float = 0.1
    device: str = "cpu"
    n_threads: int = 1
    class_weighting: bool = False
    calibrate: bool = True
    calibration_tolerance: float = 0.005
    # Carry on from an interrupted run's saved state (see training.fit).
    resume: bool = False

    def __post_init__(self) -> None:
        check_int("seed", self.seed, minimum=0)
        check_dataset("dataset", self.dataset)
        check_choice("split", self.split, SPLITS)
        if self.split in CANONICAL_FOLDS and self.dataset != "ml-100k":
            # The folds are blocks of u.data; other files are sorted by user, so
            # the same blocks would test on users never seen in training.
            _fail(
                "split",
                self.split,
                f"use 'random' with dataset={self.dataset!r} "
                "(with papermill: -p split random)",
            )
        for name in ("n_epochs", "batch_size", "n_factors", "patience", "n_threads"):
            check_int(name, getattr(self, name))
        check_float("learning_rate", self.learning_rate, 0.0, 10.0)
        if self.learning_rate == 0:
            _fail("learning_rate", self.learning_rate, "use a number > 0")
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_float("embedding_noise", self.embedding_noise, 0.0, 10.0)
        check_float("valid_fraction", self.valid_fraction, 0.0, 0.5)
        if self.valid_fraction == 0:
            _fail("valid_fraction", self.valid_fraction, "use a number in (0, 0.5]")
        check_bool("batch_norm", self.batch_norm)
        check_bool("early_stopping", self.early_stopping)
        check_bool("class_weighting", self.class_weighting)
        check_bool("calibrate", self.calibrate)
        check_bool("resume", self.resume)
        check_float("calibration_tolerance", self.calibration_tolerance, 0.0, 1.0)
        check_choice("device", self.device, DEVICES)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def published_parameters(chapter: str) -> dict[str, object]:
    """The values in a chapter's ``parameters`` cell: the settings the book publishes.

    ``chapter`` is a notebook's stem, ``"03_ncf_regression"`` say. Code that
    trains "as the chapter does" outside the chapter (the speed benchmark)
    reads them here, so that it cannot drift from the notebook.
    """
    path = paths.PROJECT_ROOT / "notebooks" / f"{chapter}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"no chapter {chapter!r}: expected {path}")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path.name}: expected one cell tagged 'parameters'")
    values = {}
    for statement in ast.parse("".join(tagged[0]["source"])).body:
        if not (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            raise ValueError(
                f"{path.name}: the parameters cell may only assign literals to names"
            )
        name = statement.targets[0].id
        try:
            values[name] = ast.literal_eval(statement.value)
        except ValueError:
            raise ValueError(
                f"{path.name}: parameter {name} is not a literal; write its value out"
            ) from None
    return values
