# Build, test and lint the book. `make help` lists the targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Installed last, so its age tells whether the venv predates a dependency change.
STAMP := $(VENV)/.installed
# Absolute: the chapters' kernels run in notebooks/, not here.
TEST_OUT := $(CURDIR)/_build/test-output
PREPARED := $(TEST_OUT)/notebooks
PYTEST_ARGS ?=
JB_BUILD := $(BIN)/jupyter-book build . -W -n --keep-going --all
LOCK_VENV := _build/lock-venv

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.PHONY: help venv data chapters book html test lint lab clean lock benchmark

help: ## List the targets
	@awk -F ':.*## ' '/^[a-z]+:.*## / {printf "  %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(STAMP) ## Create .venv, install the project and the recsys-book kernel

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name recsys-book \
	    --display-name "Python (recsys-book)"
	touch $@

data: venv ## Fetch MovieLens 100k into data/ (or $RECSYS_DATA_DIR)
	$(BIN)/python -m recsys_utils fetch-data

chapters: data ## Execute every chapter with its published parameters
	$(BIN)/python scripts/run_chapters.py --params published

book: chapters ## Execute the chapters, then build _build/html
	$(JB_BUILD)

html: venv ## Build _build/html from the chapters already executed
	$(JB_BUILD)

test: data ## Run tests/, then every chapter with its small parameters (nbval)
	rm -rf $(TEST_OUT)
	RECSYS_OUTPUT_DIR=$(TEST_OUT) $(BIN)/pytest $(PYTEST_ARGS) tests
	$(BIN)/python scripts/run_chapters.py --params small --prepare-only \
	    --out $(PREPARED)
	RECSYS_OUTPUT_DIR=$(TEST_OUT) $(BIN)/pytest --nbval-lax \
	    --nbval-kernel-name=recsys-book $(PREPARED)

benchmark: data ## Time training against reference loops; writes results/benchmark.json
	$(BIN)/python benchmarks/speed.py

lint: venv ## Check the code with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lab: venv ## Open JupyterLab on notebooks/
	$(BIN)/jupyter lab --notebook-dir=notebooks \
	    $(if $(filter 0,$(shell id -u)),--allow-root)

clean: ## Remove build products and chapter outputs (keeps .venv and data/)
	rm -rf _build book/chapters results plots checkpoints

# Local labels are dropped: this machine's torch is 2.13.0+cpu, which PyPI lacks.
lock: ## Re-pin constraints.txt from a fresh venv's pip freeze
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -e ".[dev]"
	{ printf '%s\n' "# Pinned versions for the book environment" \
	    "# (pip install -c constraints.txt). Regenerate with: make lock"; \
	  $(LOCK_VENV)/bin/pip freeze --exclude-editable | sed -E 's/\+[^+]*$$//'; \
	} > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)
