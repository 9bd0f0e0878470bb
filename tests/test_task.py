"""The task end to end: runs train and test, metrics.json and W&B agree, the CLI fails fast."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from conftest import CIFAR_TARBALL
from helpers import FAST, make_cfg, run_cli

from rankrobust.errors import ConfigError
from rankrobust.pipeline import checks, task
from rankrobust.reporting.wandb_offline import read_offline_run
from rankrobust.results import read_metrics


def test_smoke_run_writes_metrics_and_offline_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_cfg(
        *FAST, "logger=wandb", "trainer.max_epochs=2", "rig.enabled=true", "rig.n_images=3"
    )
    metrics = task.run(cfg, tmp_path)

    written = read_metrics(tmp_path)
    assert written["status"] == "ok"
    assert written["clean_acc"] == pytest.approx(metrics["clean_acc"])
    assert written["clean_acc"] > 0.5  # 10 classes: chance is 0.1
    assert 0.0 <= written["robust_acc"] <= written["clean_acc"]
    assert written["config"]["dataset"] == "synthetic" and written["config"]["rank"] is None
    assert {"setup", "fit", "test", "total"} <= set(written["timings"])
    finished = datetime.fromisoformat(written["finished_at"])  # the newer of two seeds is kept
    assert finished.tzinfo is not None and finished <= datetime.now(UTC)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    sweep = written["rank_sweep"]
    assert set(sweep) == {"low", "high"} and sorted(sweep["low"]) == [1, 2, 4, 8, 16, 32]
    assert sweep["low"][32] == pytest.approx(written["clean_acc"])  # full rank = clean images

    run = read_offline_run(tmp_path / "wandb")
    assert run["summary"]["clean_acc"] == pytest.approx(written["clean_acc"])
    assert run["summary"]["robust_acc"] == pytest.approx(written["robust_acc"])
    assert "model:small_cnn" in run["tags"]
    logged = {key: value for row in run["history"] for key, value in row.items()}
    assert logged["rig/grid/_type"] == "image-file"  # W&B flattens media into nested keys
    assert logged["rank_sweep/table/_type"] == "table-file"
    assert logged["rank_sweep/low_table/nrows"] == 6

    rig = written["rig"]
    assert 0.0 <= rig["top4_share"] <= 1.0 and rig["ranks"] == list(range(1, 33))
    assert sum(rig["mean_per_rank"]) == pytest.approx(1.0, abs=1e-5)
    arrays = np.load(tmp_path / "rig.npz")
    assert arrays["pixel"].shape == arrays["images"].shape == (3, 3, 32, 32)
    assert arrays["per_rank"].shape == (3, 32)
    np.testing.assert_allclose(
        arrays["per_rank"].sum(1), arrays["pixel"].reshape(3, -1).sum(1), rtol=1e-4, atol=1e-4
    )
    assert (tmp_path / "rig.png").stat().st_size > 10_000


def test_adversarial_training_is_more_robust_than_natural(tmp_path):
    """On the synthetic data (a large low-rank and a small high-rank feature) PGD training wins."""
    common = [*FAST, "dataset.image_size=16", "dataset.n_train=1000", "sweep.enabled=false"]
    common += ["trainer.max_epochs=6", "eval.n_robust=300"]
    natural = task.run(make_cfg(*common, "attack=none"), tmp_path / "natural")
    robust = task.run(
        make_cfg(*common, "attack=pgd_linf", "attack.train.steps=3"), tmp_path / "robust"
    )
    assert natural["robust_acc"] < 0.2, natural  # eps 8/255 breaks the natural model
    assert robust["robust_acc"] > natural["robust_acc"] + 0.15, (natural, robust)


def test_failed_run_keeps_a_failed_metrics_file(tmp_path):
    cfg = make_cfg(*FAST, "rank=40")
    with pytest.raises(ConfigError, match="1 <= rank <= 32"):
        task.run(cfg, tmp_path)
    failed = json.loads((tmp_path / "metrics.json").read_text())
    assert failed["status"] == "failed" and "rank" in failed["error"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rank=0", "1 <= rank <= 32"),
        ("rank=-1", "1 <= rank <= 32"),
        ("rank=2.5", "integer"),
        ("rank=33", "1 <= rank <= 32"),
        ("attack.eval.eps=-0.1", "eps"),
        ("attack.eval.steps=0", "steps"),
        ("model.checkpoint=/nonexistent/model.ckpt", "does not exist"),
    ],
)
def test_bad_values_fail_before_training(override, message):
    with pytest.raises(ConfigError, match=message):
        checks.check_config(make_cfg(*FAST, override))


def test_missing_image_folder_root_is_a_clear_error(tmp_path):
    cfg = make_cfg(*FAST, "dataset=image_folder", f"dataset.root={tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match="does not exist"):
        checks.check_config(cfg)


def test_cli_reports_config_errors_without_traceback(tmp_path):
    result = run_cli(*FAST, "rank=33", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "1 <= rank <= 32" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Epoch" not in result.stdout + result.stderr  # nothing trained


@pytest.mark.e2e
@pytest.mark.skipif(not CIFAR_TARBALL.is_file(), reason="CIFAR-10 JPEG copy not found")
def test_trains_on_real_cifar10_copy_well_above_chance(tmp_path):
    cfg = make_cfg(
        *FAST,
        "dataset=image_folder",
        f"dataset.root={CIFAR_TARBALL}",
        "dataset.n_train=4000",
        "dataset.n_test=1000",
        "dataset.augment=false",
        "trainer.max_epochs=4",
        "optim.lr=0.1",
        "eval.n_robust=100",
        "sweep.ranks=[1,8,32]",
    )
    metrics = task.run(cfg, tmp_path)
    assert metrics["clean_acc"] > 0.3, metrics  # chance is 0.1
    assert metrics["rank_sweep"]["low"][32] == pytest.approx(metrics["clean_acc"])


def test_multirun_over_ranks_writes_one_run_per_rank(tmp_path):
    result = run_cli(
        "-m",
        *FAST,
        "rank=1,4,16",
        "trainer.max_epochs=1",
        "dataset.n_train=256",
        "dataset.n_test=64",
        "sweep.enabled=false",
        "eval.n_robust=16",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sorted(tmp_path.glob("*/metrics.json"))
    assert len(runs) == 3
    metrics = [read_metrics(p) for p in runs]
    assert sorted(m["config"]["rank"] for m in metrics) == [1, 4, 16]
    assert all(m["status"] == "ok" for m in metrics)


QUICK = ["sweep.enabled=false", "analysis.perturbation_spectrum=false", "eval.n_robust=8"]


def test_cli_options_reach_the_objects_and_the_checkpoint_shows_them(tmp_path):
    """Options no hand-kept list names still arrive: a narrower network, exactly 2 steps."""
    import torch

    run_dir = tmp_path / "run"
    result = run_cli(
        "experiment=smoke",
        "logger=none",
        "++model.width=8",
        "++trainer.limit_train_batches=2",
        "trainer.max_epochs=1",
        *QUICK,
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu")
    assert ckpt["global_step"] == 2
    convs = [v for k, v in ckpt["state_dict"].items() if k.endswith("weight") and v.ndim == 4]
    assert convs[0].shape[0] == 8  # model.width=8: the first conv has 8 filters
    assert "next: make figures RUNS=" in result.stdout  # the closing lines
    assert "clean accuracy" in result.stdout


def test_cli_unknown_option_is_one_paragraph_and_exit_2(tmp_path):
    result = run_cli("experiment=smoke", "+no_such_option=1", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "no_such_option is not a setting" in result.stderr
    assert "Traceback" not in result.stderr


def test_failed_run_records_the_full_config_and_collect_says_failed(tmp_path):
    from rankrobust.identity import IDENTITY_KEYS
    from rankrobust.reporting.collect import read_run

    with pytest.raises(ConfigError):
        task.run(make_cfg(*FAST, "optim.lr=-1"), tmp_path)
    failed = json.loads((tmp_path / "metrics.json").read_text())
    assert failed["status"] == "failed" and "optim.lr" in failed["error"]
    assert set(IDENTITY_KEYS) <= set(failed["config"])
    assert failed["resolved_config"]["optim"]["lr"] == -1
    assert read_run(tmp_path)["status"] == "failed"


def test_a_failing_analysis_keeps_the_test_accuracies(tmp_path, monkeypatch):
    from rankrobust.pipeline import analyses

    def broken(*args, **kwargs):
        raise RuntimeError("sweep exploded")

    monkeypatch.setattr(analyses, "run_rank_sweep", broken)
    cfg = make_cfg(*FAST, "trainer.max_epochs=1", "dataset.n_train=128", "dataset.n_test=64")
    metrics = task.run(cfg, tmp_path)
    written = read_metrics(tmp_path)
    assert written["status"] == "partial" == metrics["status"]
    assert (
        written["clean_acc"] is not None
        and "sweep exploded" in written["analysis_errors"]["rank_sweep"]
    )
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    from rankrobust.runs import per_image

    kept = per_image(tmp_path)  # the test's per-image outcomes are kept too
    assert set(kept) == {"clean", "robust"} and kept["clean"].n == written["n_test"] == 64


def test_a_run_is_quiet_logs_to_run_log_and_ends_with_what_it_found(tmp_path):
    result = run_cli(
        "experiment=smoke",
        "logger=wandb",
        "trainer.max_epochs=2",
        "dataset.n_train=256",
        "dataset.n_test=64",
        "eval.n_robust=8",
        "analysis.n_images=8",
        "hydra.run.dir=run",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    for noise in ("litlogger", "anonymous", "LeafSpec", "log_every_n_steps", "\r"):
        assert noise not in out, noise
    assert "[rankrobust] epoch 2/2: 100%" in out  # a line per 10% instead of a progress bar
    log = (tmp_path / "run" / "run.log").read_text()
    assert "[rankrobust] run folder" in log and "clean accuracy" in log
    closing = out[out.index("[rankrobust] ok:") :]
    for what in ("clean accuracy", "rank sweep low", "metrics.json", "W&B run", "make figures"):
        assert what in closing, what
    from rankrobust.reporting.wandb_offline import read_offline_run

    history = read_offline_run(tmp_path / "run" / "wandb")["history"]
    assert sum("train/loss" in row for row in history) >= 4  # log_every_n_steps adapts


def test_time_estimate_says_how_long_and_what_is_quicker_on_a_cpu(caplog):
    from types import SimpleNamespace

    from rankrobust.pipeline.callbacks import TimeEstimate

    estimate = TimeEstimate(after_steps=2, warn_minutes=1)
    trainer = SimpleNamespace(global_step=0, is_global_zero=True, estimated_stepping_batches=10**6)
    module = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    with caplog.at_level("WARNING", logger="rankrobust"):
        for step in range(4):
            trainer.global_step = step
            estimate.on_train_batch_start(trainer, module, None, step)
            time.sleep(0.01)
            estimate.on_train_batch_end(trainer, module, None, None, step)
    assert "training about" in caplog.text and "make reproduce-demo" in caplog.text


def test_bf16_training_evaluates_in_float32_so_the_sweep_agrees_with_clean_accuracy(tmp_path):
    """CPU bf16 autocast stands in for a GPU's: test, attacks, sweep all run in float32."""
    cfg = make_cfg(
        *FAST,
        "trainer.precision=bf16-mixed",
        "trainer.max_epochs=2",
        "dataset.n_train=1000",  # bf16 autocast on a CPU is slow: half the default
        "optim.lr=0.1",
        "dataset.n_test=200",
        "eval.n_robust=16",
        "sweep.ranks=[4,32]",
        "analysis.perturbation_spectrum=false",
    )
    metrics = task.run(cfg, tmp_path)
    assert metrics["status"] == "ok" and metrics["eval_precision"] == "32-true"
    assert metrics["n_test"] == 200 and metrics["n_robust"] == 16
    assert metrics["clean_acc"] > 0.3  # a trained model: its predictions could differ in bf16
    assert metrics["rank_sweep"]["low"][32] == pytest.approx(metrics["clean_acc"], abs=1e-6)
