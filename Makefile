# fusionrec: `make demo` and `make test` set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1

.PHONY: install demo lint test test-unit test-integration up evaluate evaluate-search clean

install: $(STAMP)

# Re-installs when pyproject.toml changes; a fresh clone builds the venv from scratch.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fusionrec demo

up: $(STAMP)
	$(BIN)/fusionrec up

# Offline evaluation (issue figures in README): MovieLens 100K as GroupLens ships it, plus overviews/posters.
ML100K ?= ../shared/data/movielens-100k
evaluate: $(STAMP)
	$(BIN)/fusionrec evaluate --dataset movielens-100k --data-dir $(ML100K)

evaluate-search: $(STAMP)
	$(BIN)/fusionrec evaluate --task search --dataset movielens-100k --data-dir $(ML100K)

lint: $(STAMP)
	$(BIN)/ruff check .

# Lint first: CI runs this target, so a lint error fails it before the suite starts.
test: lint
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

clean:
	rm -rf $(VENV) .fusionrec .pytest_cache
