# Two entry points that work on a fresh machine with only Python:
#   make demo   set up, then train the matchup-specific model on the built-in simulated season
#   make test   set up, then run the test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo lint format test test-slow benchmark benchmark-stan clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,stan]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/lineup-numpyro train --model matchup --out runs/demo --overwrite
	$(BIN)/lineup-numpyro summary runs/demo

# style is mechanical: ruff lints and formats (`make format` applies it), before any test runs
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup lint
	$(BIN)/python -m pytest -m "not slow" -q --durations=25 -n 2 --dist loadfile

test-slow: setup
	$(BIN)/python -m pytest -m slow -q

benchmark: setup
	$(BIN)/python benchmarks/train_matchup.py

# NumPyro against Stan on 10K..10M possessions (hours; see benchmarks/README.md)
benchmark-stan: setup
	$(BIN)/python benchmarks/run.py --out benchmarks/results/scaling

clean:
	rm -rf $(VENV) runs build *.egg-info
