"""Runs as models: load_run gives back the trained model, its config and its metrics."""

from __future__ import annotations

import pytest
import torch
from helpers import FAST, make_cfg

import rankrobust
from rankrobust.pipeline import build, task
from rankrobust.reporting.wandb_offline import read_offline_run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    cfg = make_cfg(*FAST, "logger=wandb", "trainer.max_epochs=1", "dataset.n_train=256")
    cfg.sweep.enabled = False
    metrics = task.run(cfg, run_dir)
    mp.undo()
    return cfg, run_dir, metrics


def test_load_run_evaluates_to_the_recorded_clean_accuracy(finished_run):
    cfg, run_dir, metrics = finished_run
    run = rankrobust.load_run(run_dir)
    assert not run.model.training  # eval mode
    assert run.config["model"]["name"] == "small_cnn" and run.metrics["status"] == "ok"
    dm = build.datamodule(cfg)
    dm.setup("test")
    images, labels = dm.test_tensors()
    with torch.no_grad():
        acc = (run.model(images).argmax(1) == labels).float().mean().item()
    assert acc == pytest.approx(metrics["clean_acc"], abs=1e-6)


def test_load_run_without_weights_is_an_error(tmp_path, finished_run):
    _, run_dir, _ = finished_run
    (tmp_path / "metrics.json").write_text((run_dir / "metrics.json").read_text())
    text = (tmp_path / "metrics.json").read_text().replace(str(run_dir), str(tmp_path))
    (tmp_path / "metrics.json").write_text(text.replace('"checkpoint": "', '"checkpoint_": "'))
    with pytest.raises(ValueError, match="no trained weights"):
        rankrobust.load_run(tmp_path)


def test_offline_wandb_run_gives_back_the_hydra_config(finished_run):
    _, run_dir, _ = finished_run
    run = read_offline_run(run_dir / "wandb")
    assert run["hydra_config"]["model"]["name"] == "small_cnn"
    assert run["hydra_config"]["trainer"]["max_epochs"] == 1
