# rankrobust: `make test` sets everything up on a fresh machine, then runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SHARED ?= ../shared
DATA   ?= $(SHARED)/data/cifar10-jpeg.tar.gz
RUNS   ?= outputs

.PHONY: install test lint format bench smoke wandb-sync clean

install: $(STAMP)

# torch first, pinned to the wheels that install offline here; then the package, editable.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests bench run.py
	$(VENV)/bin/ruff format --check src tests bench run.py

format: install
	$(VENV)/bin/ruff format src tests bench run.py
	$(VENV)/bin/ruff check --fix src tests bench run.py

smoke: install
	$(PY) run.py experiment=smoke

bench: install
	$(PY) bench/bench_train.py --data $(DATA)
	$(PY) bench/bench_svd.py
	$(PY) bench/bench_rig.py

wandb-sync: install
	find $(RUNS) -type d -name 'offline-run-*' -print0 | xargs -0 -r $(VENV)/bin/wandb sync

clean:
	rm -rf outputs multirun .pytest_cache
