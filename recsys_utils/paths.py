"""Where the book keeps its data and its outputs.

Every location has a default under the repository and an environment
variable that moves it, so that tests and parameter sweeps can write
somewhere else without touching the published results.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the package is installed in editable mode).
PROJECT_ROOT = Path(__file__).resolve().parents[1]

DATA_DIR_ENV = "RECSYS_DATA_DIR"
OUTPUT_DIR_ENV = "RECSYS_OUTPUT_DIR"


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    if not value:
        return default
    path = Path(value).expanduser()
    if not path.is_absolute():
        # A chapter's kernel runs in notebooks/, so a relative path would
        # silently land somewhere other than where the user meant.
        raise ValueError(
            f"${variable}={value!r} is a relative path; set it to an absolute one, "
            f"for example {variable}=$PWD/{value}"
        )
    return path


def data_dir() -> Path:
    """Folder that caches the MovieLens files (``$RECSYS_DATA_DIR`` or ``data/``)."""
    return _from_env(DATA_DIR_ENV, PROJECT_ROOT / "data")


def output_dir() -> Path:
    """Folder holding ``results/``, ``plots/`` and ``checkpoints/``.

    ``$RECSYS_OUTPUT_DIR`` when set (an absolute path), otherwise the
    repository root.
    """
    return _from_env(OUTPUT_DIR_ENV, PROJECT_ROOT)


def results_dir() -> Path:
    return output_dir() / "results"


def plots_dir() -> Path:
    return output_dir() / "plots"


def checkpoints_dir() -> Path:
    return output_dir() / "checkpoints"
