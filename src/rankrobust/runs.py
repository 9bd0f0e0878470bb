"""Runs as models: a finished run folder -> its model (eval mode), its config and its metrics.

run = rankrobust.load_run("outputs/demo/robust")
run.model(images).argmax(1)          # pixels in [0, 1], normalisation inside
run.config["attack"]["name"], run.metrics["robust_acc"]
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from rankrobust.results import FILENAME, last_checkpoint, read_metrics


@dataclass
class LoadedRun:
    """A trained run: `model` in eval mode on the CPU, the whole resolved `config` (a dict)
    and `metrics` (metrics.json)."""

    model: nn.Module
    config: dict
    metrics: dict
    run_dir: Path


def run_config(run_dir: str | Path) -> dict:
    """The run's resolved config (metrics.json's `resolved_config`, written by every run).

    Raises FileNotFoundError / ValueError naming the file when it is missing or holds none.
    """
    run_dir = Path(run_dir)
    config = read_metrics(run_dir).get("resolved_config")
    if not isinstance(config, dict) or not config:
        raise ValueError(
            f"'{run_dir / FILENAME}' holds no resolved_config: it was not written by a run of "
            "this pipeline (or the run stopped before its config was checked)."
        )
    return config


def _locate(target: str):
    """A dotted path 'package.module.name' -> the object (what Hydra's _target_ names)."""
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Build the run's model from its config and load its trained weights (weights only).

    The weights are the run's last checkpoint (results.last_checkpoint: where
    callbacks.last_checkpoint.dirpath put it) or the checkpoint it evaluated; a run
    that trained nothing and names no checkpoint is an error, not random weights.
    """
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    config = run_config(run_dir)
    last = last_checkpoint(run_dir, config)  # inside this folder, even when it was copied
    weights = str(last) if last.is_file() else metrics.get("checkpoint")
    model_cfg = dict(config["model"])
    if weights:
        model_cfg["checkpoint"] = weights
    elif not (model_cfg.get("pretrained") or model_cfg.get("name") == "robustbench"):
        raise ValueError(
            f"run_dir='{run_dir}' has no '{last}' and names no checkpoint: there "
            "are no trained weights to load."
        )
    build = _locate(model_cfg.pop("_target_", "rankrobust.models.build_model"))
    model = build(**model_cfg)
    return LoadedRun(model=model.eval(), config=config, metrics=metrics, run_dir=run_dir)
