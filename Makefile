# rankrobust: `make test` sets everything up on a fresh machine, then runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SHARED ?= ../shared
DATA   ?= $(SHARED)/data/cifar10-jpeg.tar.gz
RUNS   ?= outputs

.PHONY: install test lint format bench smoke wandb-sync clean

# --- paper figures, run table and claims report (docs/figures.md) -----------------------------
FIGS       ?= $(RUNS)/figures
FIG_NAMES  := rank-accuracy high-rank rank-examples rig rig-spectrum train-rank perturbation-spectrum
FIG_TARGETS := $(addprefix fig-,$(FIG_NAMES))
REPORT_OPTS ?= --wandb
DEMO       ?= $(RUNS)/demo
DEMO_LOGGER ?= csv
CIFAR10_OUT ?= $(RUNS)/cifar10
# The demo: small_cnn on a 10k-image subset of the CIFAR-10 copy, ~10 min on 2 CPU cores.
DEMO_ARGS := dataset=image_folder dataset.root=$(DATA) model=small_cnn logger=$(DEMO_LOGGER) \
	dataset.batch_size=128 optim.lr=0.05 trainer.enable_progress_bar=false
DEMO_MAIN := dataset.n_train=8000 dataset.n_test=1000 trainer.max_epochs=3 eval.n_robust=200 \
	sweep.n_images=500 'sweep.ranks=[1,2,4,8,16,32]' analysis.n_images=128 rig.enabled=true \
	rig.n_images=4
# reproduce-cifar10 uses torchvision CIFAR-10 unless DATA is given on the command line.
CIFAR10_DATA_OPTS := $(if $(filter command line,$(origin DATA)),dataset=image_folder dataset.root=$(DATA),)
SUBDIR := 'hydra.sweep.subdir=$${hydra.job.num}_rank$${rank}'

.PHONY: collect figures report reproduce-demo reproduce-cifar10 $(FIG_TARGETS)

collect: install
	$(PY) -m rankrobust.collect $(RUNS) --out $(FIGS)

figures: install
	$(PY) -m rankrobust.figures $(RUNS) --out $(FIGS) --images $(DATA)

$(FIG_TARGETS): fig-%: install
	$(PY) -m rankrobust.figures $(RUNS) --out $(FIGS) --images $(DATA) --only $*

report: install
	$(PY) -m rankrobust.report $(RUNS) --out $(FIGS) $(REPORT_OPTS)

reproduce-demo: install
	rm -rf $(DEMO)
	$(PY) run.py $(DEMO_ARGS) $(DEMO_MAIN) attack=none hydra.run.dir=$(DEMO)/natural
	$(PY) run.py $(DEMO_ARGS) $(DEMO_MAIN) attack=fgsm_rs hydra.run.dir=$(DEMO)/robust
	$(PY) run.py -m $(DEMO_ARGS) attack=none rank=2,8,32 dataset.n_train=4000 \
		dataset.n_test=500 trainer.max_epochs=2 eval.n_robust=100 sweep.enabled=false \
		analysis.perturbation_spectrum=false hydra.sweep.dir=$(DEMO)/rank_sweep $(SUBDIR)
	$(PY) -m rankrobust.figures $(DEMO) --out $(DEMO)/figures --images $(DATA)
	$(PY) -m rankrobust.report $(DEMO) --out $(DEMO)/figures $(REPORT_OPTS)

reproduce-cifar10: install
	$(PY) run.py experiment=cifar10_natural $(CIFAR10_DATA_OPTS) rig.enabled=true \
		hydra.run.dir=$(CIFAR10_OUT)/natural
	$(PY) run.py experiment=cifar10_robust $(CIFAR10_DATA_OPTS) rig.enabled=true \
		hydra.run.dir=$(CIFAR10_OUT)/robust
	$(PY) run.py -m experiment=cifar10_natural $(CIFAR10_DATA_OPTS) rank=1,2,4,8,16,32 \
		sweep.enabled=false hydra.sweep.dir=$(CIFAR10_OUT)/rank_sweep $(SUBDIR)
	$(PY) -m rankrobust.figures $(CIFAR10_OUT) --out $(CIFAR10_OUT)/figures --images $(DATA)
	$(PY) -m rankrobust.report $(CIFAR10_OUT) --out $(CIFAR10_OUT)/figures $(REPORT_OPTS)

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
	$(PY) bench/bench_train.py --data $(DATA) --attack fgsm_rs --out outputs/bench/train_fgsm_rs.json
	$(PY) bench/bench_svd.py
	$(PY) bench/bench_rig.py

wandb-sync: install
	find $(RUNS) -type d -name 'offline-run-*' -print0 | xargs -0 -r $(VENV)/bin/wandb sync

clean:
	rm -rf outputs multirun .pytest_cache
