"""A bad value given to a chapter through papermill stops it at once, cleanly."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from recsys_utils import paths

CASES = [
    ("03_ncf_regression", {"batch_size": 0}, "parameter batch_size=0 (int)"),
    ("02_ncf_classification", {"classifiers": ["sigmoid"]}, "classifiers='sigmoid'"),
    ("06_autoencoder", {"split": "u9"}, "parameter split='u9' (str)"),
]


@pytest.mark.parametrize(("chapter", "parameters", "message"), CASES)
def test_bad_parameter_stops_the_chapter_with_one_line(
    chapter, parameters, message, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_OUTPUT_DIR", str(tmp_path / "out"))
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        papermill.execute_notebook(
            str(paths.PROJECT_ROOT / "notebooks" / f"{chapter}.ipynb"),
            str(tmp_path / "executed.ipynb"),
            parameters=parameters,
            kernel_name="recsys-book",
            cwd=str(paths.PROJECT_ROOT / "notebooks"),
            progress_bar=False,
        )
    error = raised.value
    assert error.ename == "ParameterError"
    assert message in error.evalue
    assert "\n" not in error.evalue
    assert not (tmp_path / "out").exists()  # stopped before writing anything
