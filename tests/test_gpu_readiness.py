"""CPU tests of what keeps a GPU fed: no host sync inside a training step, the
checkpoint cadence, log_every_n_steps from the real batch count, module.compile, the GPU check's
summary table."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import make_cfg
from pytorch_lightning.loggers import CSVLogger

from rankrobust.errors import ConfigError
from rankrobust.models import build_model
from rankrobust.pipeline import checks, rules, settings
from rankrobust.pipeline.callbacks import LastCheckpoint, LogEveryAuto
from rankrobust.pipeline.datamodule import ImageDataModule
from rankrobust.pipeline.lightning_module import RobustClassifier

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _dm(n_train: int = 256, batch: int = 32) -> ImageDataModule:
    dm = ImageDataModule("synthetic", batch_size=batch, eval_batch_size=64, seed=0)
    dm.n_train, dm.n_test = n_train, 64
    return dm


def _module(**kw) -> RobustClassifier:
    torch.manual_seed(0)
    return RobustClassifier(build_model("small_cnn", 10, MEAN, STD, width=8), 10, **kw)


def _trainer(tmp_path: Path, **kw) -> pl.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    return pl.Trainer(**{**defaults, **kw})


class _HostReads(pl.Callback):
    """Counts Tensor.item / __float__ / tolist calls (each a host sync on a GPU) from the start
    of the second training step to the end of the epoch, logging and callbacks included."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self.counting = False
        for name in ("item", "__float__", "tolist"):
            original = getattr(torch.Tensor, name)

            def spy(t, *a, _name=name, _original=original, **k):
                if self.counting:
                    self.calls.append(_name)
                return _original(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, spy)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.counting = batch_idx >= 1

    def on_train_epoch_end(self, trainer, pl_module):
        self.counting = False


@pytest.mark.parametrize("attack", [None, "fgsm_rs"])
def test_no_host_sync_inside_training_steps(tmp_path, monkeypatch, attack):
    from rankrobust.attacks import AttackSpec, make_attack

    spy = _HostReads(monkeypatch)
    train_attack = make_attack(AttackSpec(name="fgsm_rs", eps=8 / 255)) if attack else None
    module = _module(train_attack=train_attack, schedule="onecycle")
    logger = CSVLogger(str(tmp_path), name="csv")
    trainer = _trainer(
        tmp_path, max_epochs=1, logger=logger, log_every_n_steps=100, callbacks=[spy]
    )
    trainer.fit(module, datamodule=_dm(n_train=256))  # 8 steps, 7 of them counted
    assert trainer.global_step == 8
    assert spy.calls == [], spy.calls  # prog_bar=True on the loss was one .item() per step
    # the loss is still logged (at the epoch's end, from the tensor)
    assert "train/acc" in trainer.callback_metrics


def test_log_every_auto_uses_the_real_number_of_batches(tmp_path):
    logger = CSVLogger(str(tmp_path), name="csv")
    trainer = _trainer(
        tmp_path, max_epochs=1, logger=logger, log_every_n_steps=50, callbacks=[LogEveryAuto()]
    )
    trainer.fit(_module(schedule="none"), datamodule=_dm(n_train=640, batch=32))  # 20 batches
    assert trainer.log_every_n_steps == 2  # 20 // 10, not the guess of 50 (no point logged)
    logger.save()
    rows = list(csv.DictReader(open(Path(logger.log_dir) / "metrics.csv")))
    assert sum(1 for r in rows if r.get("train/loss")) == 10


def _saves(monkeypatch) -> list[int]:
    steps: list[int] = []
    original = LastCheckpoint._save_last_checkpoint

    def spy(self, trainer, candidates):
        steps.append(trainer.global_step)
        return original(self, trainer, candidates)

    monkeypatch.setattr(LastCheckpoint, "_save_last_checkpoint", spy)
    return steps


@pytest.mark.parametrize(
    ("every_minutes", "max_steps", "expected"),
    [
        (0.0, -1, [4, 8, 12]),  # every epoch
        (5.0, 6, [6]),  # max_steps ends inside an epoch: that state is written
    ],
)
def test_last_checkpoint_cadence(tmp_path, monkeypatch, every_minutes, max_steps, expected):
    steps = _saves(monkeypatch)
    ckpt = LastCheckpoint("checkpoints", every_minutes=every_minutes)
    trainer = _trainer(
        tmp_path, max_epochs=3, max_steps=max_steps, enable_checkpointing=True, callbacks=[ckpt]
    )
    trainer.fit(_module(schedule="none"), datamodule=_dm(n_train=128))  # 4 steps an epoch
    assert steps == expected
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu")
    assert saved["global_step"] == expected[-1]


def test_last_checkpoint_every_minutes_once_the_time_has_passed(tmp_path, monkeypatch):
    clock = iter(range(0, 10_000, 100))  # each reading 100 s later than the one before
    monkeypatch.setattr("rankrobust.pipeline.callbacks._clock", lambda: next(clock))
    steps = _saves(monkeypatch)
    ckpt = LastCheckpoint("checkpoints", every_minutes=2.5)  # 150 s: every second epoch end
    trainer = _trainer(tmp_path, max_epochs=5, enable_checkpointing=True, callbacks=[ckpt])
    trainer.fit(_module(schedule="none"), datamodule=_dm(n_train=64))  # 2 steps an epoch
    assert steps == [4, 8, 10]  # epochs 2 and 4 (200 s after the last write), then the end


def test_compile_option_trains_and_keeps_the_plain_checkpoint_keys(tmp_path):
    plain = _module(schedule="none")
    module = _module(schedule="none", compile="aot_eager")  # a quick backend on a CPU
    trainer = _trainer(tmp_path, max_steps=3)
    trainer.fit(module, datamodule=_dm(n_train=96))
    assert module.model._compiled_call_impl is not None  # the compiled call is what ran
    assert list(module.state_dict()) == list(plain.state_dict())  # no _orig_mod. prefix
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items())
    x = torch.rand(4, 3, 32, 32)
    module.model.eval()
    plain.model.load_state_dict(module.model.state_dict())  # a checkpoint loads uncompiled
    plain.model.eval()
    torch.testing.assert_close(module(x), plain(x), atol=1e-5, rtol=1e-5)
    assert _module(compile=True).compile == "inductor" and _module().compile is None


def test_config_checks_compile_and_checkpoint_cadence():
    base = ["dataset=synthetic", "logger=none", "trainer=cpu"]
    rules.check_speed_options(make_cfg(*base, "module.compile=aot_eager"))
    for bad, key, check in [
        ("module.compile=fast", "module.compile='fast'", rules.check_speed_options),
        ("module.compile=3", "module.compile=3", rules.check_speed_options),
        ("callbacks.last_checkpoint.every_minutes=-2", "every_minutes=-2", settings.validate),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            check(make_cfg(*base, bad))


def test_cudnn_benchmark_auto_is_off_on_a_cpu():
    from rankrobust.pipeline import build

    cfg = make_cfg("dataset=synthetic", "logger=none", "trainer=auto", "trainer.accelerator=cpu")
    assert cfg.trainer.benchmark == "auto"
    build.trainer(checks.check_config(cfg), Path("/tmp"), [], [])
    assert torch.backends.cudnn.benchmark is False


def test_gpu_check_table_shows_every_stage_error_and_figure(tmp_path):
    work = tmp_path / "work"
    (work / "natural").mkdir(parents=True)
    (work / "bench").mkdir()
    (work / "stages.tsv").write_text(
        "gpu_tests\tok\t30\ntrain_natural\tfailed (1)\t12\nbench_svd\ttimeout\t45\n"
        "bench_rig\tskipped (budget)\t0\n"
    )
    metrics = {"status": "failed", "error": "CUDA out of memory", "clean_acc": 0.5}
    (work / "natural" / "metrics.json").write_text(json.dumps(metrics))
    many = {f"section{i}": {"img_per_s": float(i)} for i in range(40)}  # > the old 24-row cap
    many["ranks"] = [1, 2, 4]
    many["photos_224_cuda"] = "failed: RuntimeError: boom"
    (work / "bench" / "svd.json").write_text(json.dumps(many))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check_table.py"), str(work), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = (out / "summary.txt").read_text()
    for stage, status in [
        ("gpu_tests", "ok"),
        ("train_natural", "failed (1)"),
        ("bench_svd", "timeout"),
        ("bench_rig", "skipped (budget)"),
    ]:
        assert any(stage in line and status in line for line in text.splitlines()), stage
    assert "CUDA out of memory" in text and "failed: RuntimeError: boom" in text
    assert "section39.img_per_s" in text and "[1, 2, 4]" in text
    figures = json.loads((out / "figures.json").read_text())
    assert figures["bench/svd"]["section39"]["img_per_s"] == 39.0
    assert "4 stages: 1 ok, 3 not ok" in text
