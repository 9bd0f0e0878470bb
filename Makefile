# rankrobust: `make test` sets everything up on a fresh machine, then runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SHARED ?= ../shared
DATA   ?= $(SHARED)/data/cifar10-jpeg.tar.gz
RUNS   ?= outputs

.DEFAULT_GOAL := help
.PHONY: help install test lint format bench smoke wandb-sync clean gpu-check

help:  ## list the targets
	@echo "rankrobust: make <target>   (the two commands: make reproduce-demo, make test)"
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | \
		awk -F'\t' '{printf "  %-18s %s\n", $$1, $$2}'

# --- paper figures, run table and claims report (docs/figures.md) -----------------------------
FIGS       ?= $(RUNS)/figures
FIG_NAMES  := rank-accuracy high-rank rank-examples rig rig-spectrum train-rank perturbation-spectrum \
	bases-energy bases-high heat-maps
FIG_TARGETS := $(addprefix fig-,$(FIG_NAMES))
# FIG_STYLE=paper: no titles (captions.md instead), FIG_WIDTH=single|double column, fonts >= 8 pt
FIG_STYLE  ?= default
FIG_WIDTH  ?= double
FIG_OPTS   := --style $(FIG_STYLE) --width $(FIG_WIDTH)
REPORT_OPTS ?= --wandb
DEMO       ?= $(RUNS)/demo
DEMO_LOGGER ?= csv
DEMO_SEED  ?= 0
CIFAR10_OUT ?= $(RUNS)/cifar10
# The demo's runs are the experiments conf/experiment/demo_*.yaml (docs/demo.md); the Makefile
# passes the data, the seed (DEMO_SEED=N for another) and the logger.
DEMO_OPTS := dataset.root=$(DATA) seed=$(DEMO_SEED) logger=$(DEMO_LOGGER)
# reproduce-cifar10 uses torchvision CIFAR-10 unless DATA is given on the command line.
CIFAR10_DATA_OPTS := $(if $(filter command line,$(origin DATA)),dataset=image_folder dataset.root=$(DATA),)
# a rank sweep's job folders, keyed by the rank (a reordered sweep finds its finished jobs)
SUBDIR := 'hydra.sweep.subdir=rank$${rank}'

.PHONY: collect figures report reproduce-demo reproduce-cifar10 reproduce-imagenet $(FIG_TARGETS)

collect: install  ## runs.csv / runs.json of every run under RUNS
	$(PY) -m rankrobust.reporting.collect $(RUNS) --out $(FIGS)

figures: install  ## every paper figure from the runs under RUNS
	$(PY) -m rankrobust.reporting.figures $(RUNS) --out $(FIGS) --images $(DATA) $(FIG_OPTS)

$(FIG_TARGETS): fig-%: install  ## one figure, e.g. make fig-rank-accuracy
	$(PY) -m rankrobust.reporting.figures $(RUNS) --out $(FIGS) --images $(DATA) --only $* $(FIG_OPTS)

report: install  ## report.md: claims C1-C5 with verdicts and intervals
	$(PY) -m rankrobust.reporting.report $(RUNS) --out $(FIGS) $(REPORT_OPTS)

.PHONY: leaderboard
leaderboard: install  ## leaderboard.json/csv/html of every model under RUNS, population claims P1-P3
	$(PY) -m rankrobust.reporting.leaderboard $(RUNS) --out $(FIGS)

# A finished stage (metrics.json "ok") is skipped on a rerun: the demo restarts, it does not start
# over. FORCE=1 redoes everything.
DONE = $(PY) -m rankrobust.results status $(1) >/dev/null
reproduce-demo: install  ## the demo: natural + FGSM-RS robust resnet_small on CIFAR-10, sweeps, RIG, attribution, figures, report (~7.5 min on 2 cores)
	@if [ -n "$(FORCE)" ]; then rm -rf $(DEMO); fi
	@echo "[demo 1/4] natural resnet_small, 16k CIFAR-10 images, 2 epochs (crop, flip, brightness)"
	@if $(call DONE,$(DEMO)/natural); then echo "  done before: $(DEMO)/natural"; else \
		$(PY) run.py experiment=demo_natural $(DEMO_OPTS) hydra.run.dir=$(DEMO)/natural; fi
	@echo "[demo 2/4] FGSM-RS adversarially trained resnet_small (Linf 8/255), same data, 5 epochs"
	@if $(call DONE,$(DEMO)/robust); then echo "  done before: $(DEMO)/robust"; else \
		$(PY) run.py experiment=demo_robust $(DEMO_OPTS) hydra.run.dir=$(DEMO)/robust; fi
	@echo "[demo 3/4] models trained on rank-k images, k = 2, 8, 32 (test accuracies only; finished jobs skipped)"
	$(PY) run.py -m experiment=demo_rank_sweep $(DEMO_OPTS) hydra.sweep.dir=$(DEMO)/rank_sweep \
		$(SUBDIR)
	@echo "[demo 4/4] figures and the claims report"
	$(PY) -m rankrobust.reporting.figures $(DEMO) --out $(DEMO)/figures --images $(DATA) $(FIG_OPTS)
	$(PY) -m rankrobust.reporting.report $(DEMO) --out $(DEMO)/figures $(REPORT_OPTS)

reproduce-cifar10: install cifar10-runs  ## the paper-scale CIFAR-10 runs (PreActResNet-18; a GPU)

# The same on a machine with its own torch and Lightning and no network (the lent GPU machine):
# no install step, logger=csv, the carried CIFAR-10 copy, the carried packages on PYTHONPATH.
DEVICE_PY   ?= python3
DEVICE_DATA ?= .gpu-carry/cifar10-jpeg.tar.gz
reproduce-cifar10-device: PY = env PYTHONPATH=$(CURDIR)/src:$(CURDIR)/.gpu-carry/site$${PYTHONPATH:+:$$PYTHONPATH} $(DEVICE_PY)
reproduce-cifar10-device: CIFAR10_LOGGER = csv
reproduce-cifar10-device: REPORT_OPTS =
reproduce-cifar10-device: DATA = $(DEVICE_DATA)
reproduce-cifar10-device: CIFAR10_DATA_OPTS = dataset=image_folder dataset.root=$(abspath $(DEVICE_DATA))
reproduce-cifar10-device: cifar10-runs  ## reproduce-cifar10 on the lent GPU (no install, csv, carried data)

CIFAR10_LOGGER ?= wandb
CIFAR10_RANKS  ?= 1,2,4,8,16,32
CIFAR10_EXTRA  ?=
CIFAR10_RUN = $(PY) run.py $(CIFAR10_DATA_OPTS) logger=$(CIFAR10_LOGGER) $(CIFAR10_EXTRA)
.PHONY: cifar10-runs reproduce-cifar10-device
cifar10-runs:
	$(CIFAR10_RUN) experiment=cifar10_natural rig.enabled=true hydra.run.dir=$(CIFAR10_OUT)/natural
	$(CIFAR10_RUN) experiment=cifar10_robust rig.enabled=true hydra.run.dir=$(CIFAR10_OUT)/robust
	$(CIFAR10_RUN) -m experiment=cifar10_natural rank=$(CIFAR10_RANKS) sweep.enabled=false \
		hydra.sweep.dir=$(CIFAR10_OUT)/rank_sweep $(SUBDIR)
	$(PY) -m rankrobust.reporting.figures $(CIFAR10_OUT) --out $(CIFAR10_OUT)/figures --images $(DATA) $(FIG_OPTS)
	$(PY) -m rankrobust.reporting.report $(CIFAR10_OUT) --out $(CIFAR10_OUT)/figures $(REPORT_OPTS)

# The paper's ImageNet half (docs/external-models.md): a natural and a robust ResNet-50 evaluated
# on IMAGENET/val/<wnid>/ (all 1000 classes or a subset), then figures and the report.
# NATURAL=<file>: a torchvision-layout state dict (default: torchvision's weights from the torch
# hub cache). ROBUST=<file>: a MadryLab robustness file or any layout of the formats table, at
# ROBUST_THREAT (default Linf 4/255); default: RobustBench's Salman2020Do_R50 (its cache).
IMAGENET ?=
NATURAL ?=
ROBUST ?=
ROBUST_THREAT ?= {norm: linf, eps: 0.0156863}
IMAGENET_OUT ?= $(RUNS)/imagenet
IMAGENET_ARGS ?=
NATURAL_MODEL = $(if $(NATURAL),model=imagenet_natural_r50 model.pretrained=null model.checkpoint=$(NATURAL),model=imagenet_natural_r50)
ROBUST_MODEL = $(if $(ROBUST),model=imagenet_madrylab_r50 model.checkpoint=$(ROBUST) 'model.threat=$(ROBUST_THREAT)',model=imagenet_robust_r50)
reproduce-imagenet: install  ## ImageNet: natural vs robust ResNet-50 (IMAGENET=<dir> [NATURAL=<ckpt>] [ROBUST=<ckpt>]; a GPU)
	@if [ -z "$(IMAGENET)" ]; then echo "make reproduce-imagenet needs IMAGENET=<dir holding val/<wnid>/*.JPEG>"; exit 2; fi
	@echo "[imagenet 1/3] natural ResNet-50"
	@if $(call DONE,$(IMAGENET_OUT)/natural); then echo "  done before: $(IMAGENET_OUT)/natural"; else \
		$(PY) run.py experiment=imagenet_eval dataset.root=$(IMAGENET) $(NATURAL_MODEL) \
		$(IMAGENET_ARGS) hydra.run.dir=$(IMAGENET_OUT)/natural; fi
	@echo "[imagenet 2/3] robust ResNet-50"
	@if $(call DONE,$(IMAGENET_OUT)/robust); then echo "  done before: $(IMAGENET_OUT)/robust"; else \
		$(PY) run.py experiment=imagenet_eval dataset.root=$(IMAGENET) $(ROBUST_MODEL) \
		$(IMAGENET_ARGS) hydra.run.dir=$(IMAGENET_OUT)/robust; fi
	@echo "[imagenet 3/3] figures and the claims report"
	$(PY) -m rankrobust.reporting.figures $(IMAGENET_OUT) --out $(IMAGENET_OUT)/figures --images $(IMAGENET) $(FIG_OPTS)
	$(PY) -m rankrobust.reporting.report $(IMAGENET_OUT) --out $(IMAGENET_OUT)/figures $(REPORT_OPTS)

# --- the zoo (docs/zoo.md): every entry of ZOO one job of one multirun into OUT/runs, then the
# leaderboard into OUT. A rerun (after a kill, or with more entries) skips the finished jobs.
ZOO      ?=
MODELS   ?= models
OUT      ?= $(RUNS)/zoo
ZOO_OPTS ?=
.PHONY: zoo
zoo: install  ## many models: make zoo ZOO=<zoo yaml> MODELS=<model dir> OUT=<dir> DATA=<test images> [ZOO_OPTS=...]
	@status=0; $(PY) -m rankrobust.launch.zoo $(if $(ZOO),--zoo $(ZOO),) --models $(MODELS) \
		--out $(OUT) --data $(DATA) $(ZOO_OPTS) || status=$$?; \
	if [ $$status -eq 2 ]; then exit 2; fi; \
	$(PY) -m rankrobust.reporting.leaderboard $(OUT)/runs --out $(OUT) || exit $$?; \
	exit $$status

install: $(STAMP)  ## the venv (.venv) with torch and the package

# torch first, pinned to the wheels that install offline here; then the package, editable.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# one worker per core, at most 4 (TEST_WORKERS=0: one process); each test file runs in one
# worker, so a file's module fixtures are built once
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n < 4 ? n : 4 )))
test: install  ## the test suite (what CI runs, with lint)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: install  ## ruff check + format check
	$(VENV)/bin/ruff check src tests bench run.py
	$(VENV)/bin/ruff format --check src tests bench run.py

format: install  ## ruff format + fixes
	$(VENV)/bin/ruff format src tests bench run.py
	$(VENV)/bin/ruff check --fix src tests bench run.py

smoke: install  ## a one-minute synthetic run
	$(PY) run.py experiment=smoke

bench: install  ## benchmarks -> outputs/bench/*.json
	$(PY) bench/bench_train.py --data $(DATA)
	$(PY) bench/bench_train.py --data $(DATA) --attack fgsm_rs --out outputs/bench/train_fgsm_rs.json
	$(PY) bench/bench_svd.py
	$(PY) bench/bench_rig.py
	$(PY) bench/bench_zoo.py

gpu-check:  ## on a lent GPU: GPU tests, paper-scale CIFAR-10 runs, benchmarks (docs/gpu.md; ~6 min)
	bash bench/gpu_check.sh

# The W&B workspace (docs/dashboard.md): online it saves and prints the URL; offline: exit 2.
ENTITY  ?=
PROJECT ?= rankrobust
.PHONY: dashboard
dashboard: install  ## save the W&B workspace with the C1-C5 panels (ENTITY=, PROJECT=rankrobust)
	$(PY) -m rankrobust.reporting.dashboard --project $(PROJECT) $(if $(ENTITY),--entity $(ENTITY),)

wandb-sync: install  ## upload offline W&B runs under RUNS
	find $(RUNS) -type d -name 'offline-run-*' -print0 | xargs -0 -r $(VENV)/bin/wandb sync

clean:  ## remove outputs/ and caches
	rm -rf outputs multirun .pytest_cache
