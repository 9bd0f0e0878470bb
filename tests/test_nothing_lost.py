"""Nothing lost, nothing silently wrong, part 2: what a run records is
what ran (images used, rank, precision), and what goes wrong around it (cache, disk, W&B folder,
the resume command, slow settings) is one paragraph, with the results still shown."""

from __future__ import annotations

import errno
import json
import logging
import shlex
from pathlib import Path

import pytest
from helpers import FAST, make_cfg
from PIL import Image

from rankrobust import results
from rankrobust.data.folder import image_folder_sets
from rankrobust.errors import ConfigError
from rankrobust.identity import run_identity
from rankrobust.pipeline import build, checks, task

TINY = [*FAST, "trainer.max_epochs=1", "sweep.enabled=false", "eval.n_robust=4"]
TINY += ["analysis.perturbation_spectrum=false", "model.width=4", "dataset.n_train=64"]
TINY += ["dataset.n_test=32"]


def _folder(root: Path, sizes: dict[str, int], per_class: int = 4) -> Path:
    """train/<class>/ and test/<class>/ PNGs of two classes, each split at its own size."""
    for split, size in sizes.items():
        for c, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (size, size), (colour[0], i * 40, colour[2])).save(
                    folder / f"{i}.png"
                )
    return root


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKROBUST_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------------
# Item 3: what ran is what is recorded.


def test_train_and_test_of_different_sizes_is_a_config_error(tmp_path):
    root = _folder(tmp_path / "data", {"train": 16, "test": 12})
    with pytest.raises(ConfigError, match="dataset.image_size") as info:
        image_folder_sets(root)
    assert "16" in str(info.value) and "12" in str(info.value)
    train, test = image_folder_sets(root, image_size=12)  # the fix the message names
    assert train.images.shape[-2:] == test.images.shape[-2:] == (12, 12)


@pytest.fixture(scope="module")
def oversized_run(tmp_path_factory):
    """n_train=1000 on 8 training images, trainer.precision=16-mixed on the CPU."""
    tmp = tmp_path_factory.mktemp("oversized")
    mp = pytest.MonkeyPatch()
    mp.setenv("RANKROBUST_CACHE", str(tmp / "cache"))
    root = _folder(tmp / "data", {"train": 16, "test": 16})
    cfg = make_cfg(
        *TINY, "dataset=image_folder", f"dataset.root={root}", "dataset.num_classes=2",
        "dataset.n_train=1000", "trainer.precision=16-mixed", "dataset.batch_size=4",
    )  # fmt: skip
    logger = logging.getLogger("rankrobust")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        metrics = task.run(cfg, tmp / "run")
    finally:
        logger.removeHandler(handler)
        mp.undo()
    return metrics, [r.getMessage() for r in records], tmp / "run"


def test_more_training_images_asked_than_there_are_is_said_and_recorded(oversized_run):
    metrics, messages, run_dir = oversized_run
    assert metrics["status"] == "ok"
    assert any("dataset.n_train=1000" in m and "8" in m for m in messages), messages
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["config"]["n_train"] == 8  # the identity: the number used
    assert written["n_train_used"] == 8 and written["n_test"] == 8
    assert written["resolved_config"]["dataset"]["n_train"] == 1000  # what was asked, kept


def test_the_precision_that_ran_is_recorded(oversized_run):
    metrics, messages, _ = oversized_run
    assert metrics["precision"] == "bf16-mixed"  # Lightning's CPU autocast for 16-mixed
    assert any("16-mixed" in m and "bf16-mixed" in m for m in messages), messages


def test_a_band_run_records_no_rank():
    cfg = make_cfg(*FAST, "transform=band", "transform.band=[0,8]", "rank=4")
    ident = run_identity(checks.check_config(cfg).config)
    assert ident["rank"] is None and ident["band"] == [0, 8]
    low = run_identity(checks.check_config(make_cfg(*FAST, "rank=4")).config)
    assert low["rank"] == 4 and low["band"] is None


# ---------------------------------------------------------------------------------------------
# Item 8: what goes wrong is one paragraph, in run.log too, and the results are still shown.


@pytest.fixture
def run_log(tmp_path):
    """A run.log file handler on the root logger, as Hydra's job logging sets up."""
    path = tmp_path / "run.log"
    handler = logging.FileHandler(path)
    logging.getLogger().addHandler(handler)
    yield path
    logging.getLogger().removeHandler(handler)
    handler.close()


def test_a_config_error_is_recorded_in_run_log_as_one_paragraph(tmp_path, run_log):
    with pytest.raises(ConfigError):
        task.run(make_cfg(*TINY, "optim.lr=-1"), tmp_path / "run")
    text = run_log.read_text()
    assert "optim.lr=-1" in text and "Traceback" not in text


def test_another_error_is_recorded_in_run_log_with_its_traceback(tmp_path, run_log, monkeypatch):
    def boom(cfg):
        raise RuntimeError("boom in the model builder")

    monkeypatch.setattr(build, "model", boom)
    with pytest.raises(RuntimeError):
        task.run(make_cfg(*TINY), tmp_path / "run")
    text = run_log.read_text()
    assert "Traceback" in text and "RuntimeError: boom in the model builder" in text


def test_width_0_is_one_paragraph_on_the_cli_and_in_run_log(tmp_path):
    from helpers import run_cli

    result = run_cli(*TINY, "model.width=0", "hydra.run.dir=run", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "model.width=0" in result.stderr
    assert "Traceback" not in result.stderr
    assert "model.width=0" in (tmp_path / "run" / "run.log").read_text()


@pytest.mark.parametrize("where", ["RANKROBUST_CACHE a file", "HOME unusable"])
def test_an_unwritable_cache_is_one_paragraph_and_the_images_are_read(
    tmp_path, monkeypatch, capsys, where
):
    root = _folder(tmp_path / "data", {"train": 16, "test": 16})
    if where == "HOME unusable":
        monkeypatch.delenv("RANKROBUST_CACHE")
        monkeypatch.setenv("HOME", "/proc/no-such-home")
    else:
        (tmp_path / "a_file").write_text("not a folder")
        monkeypatch.setenv("RANKROBUST_CACHE", str(tmp_path / "a_file"))
    train, test = image_folder_sets(root)
    assert len(train.labels) == len(test.labels) == 8
    err = capsys.readouterr().err
    assert "RANKROBUST_CACHE" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1  # one paragraph


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_at_the_checkpoint_fails_the_run_in_one_paragraph(tmp_path, monkeypatch):
    from rankrobust.pipeline.callbacks import AtomicCheckpointIO

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", _disk_full)
    with pytest.raises(ConfigError, match="No space left") as info:
        task.run(make_cfg(*TINY), tmp_path / "run")
    assert "\n" not in str(info.value).strip()
    assert results.run_status(tmp_path / "run") == "failed"


def test_a_full_disk_at_metrics_json_still_shows_the_results(tmp_path, monkeypatch, caplog):
    write = results.write_metrics

    def full_after_start(run_dir, metrics):
        if metrics.get("status") != "running":
            _disk_full()
        return write(run_dir, metrics)

    monkeypatch.setattr(results, "write_metrics", full_after_start)
    with caplog.at_level(logging.INFO, logger="rankrobust"):
        with pytest.raises(ConfigError, match="No space left") as info:
            task.run(make_cfg(*TINY), tmp_path / "run")
    message = str(info.value)
    assert "metrics.json" in message and "running" in message  # what the file still says
    assert "clean accuracy" in caplog.text  # the results computed are shown


def test_a_file_named_wandb_in_the_run_folder_is_one_paragraph(tmp_path, monkeypatch):
    from rankrobust.pipeline import loggers

    monkeypatch.setenv("WANDB_MODE", "offline")
    (tmp_path / "wandb").write_text("a note")
    with pytest.raises(ConfigError, match="wandb") as info:
        loggers.build(checks.check_config(make_cfg(*FAST, "logger=wandb")), tmp_path, None)
    assert "logger=csv" in str(info.value)


def test_the_resume_command_keeps_the_config_folder(monkeypatch, tmp_path):
    from rankrobust.launch.jobs import JobInfo, resume_command

    argv = ["run.py", "--config-dir", "myconf", "-cn", "mine", "experiment=smoke"]
    monkeypatch.setattr("sys.argv", argv)
    job = JobInfo(run_dir=tmp_path / "r", hydra=True, overrides=("experiment=smoke",))
    command = resume_command(job)
    assert f"--config-dir {Path('myconf').resolve()}" in command and "-cn mine" in command
    monkeypatch.setattr("sys.argv", ["run.py", "--config-path=other", "seed=1"])
    assert "--config-path=other" in resume_command(JobInfo(run_dir=tmp_path, overrides=()))


def test_the_resume_command_keeps_the_search_path_a_zoo_job_needs(monkeypatch, tmp_path):
    """A zoo job composes +zoo_entry=<name> from generated config groups on hydra.searchpath:
    its resume command carries that path, and the path is not one of the job's settings."""
    from rankrobust.launch.jobs import JobInfo, command_overrides, resume_command

    monkeypatch.setattr("sys.argv", ["run.py"])
    search = f"hydra.searchpath=['file://{tmp_path / 'conf'}']"
    job = JobInfo(run_dir=tmp_path / "r", hydra=True, overrides=("+zoo_entry=Wong2020Fast",),
                  searchpath=(search,))  # fmt: skip
    command = resume_command(job)
    assert shlex.quote(search) in command and "+zoo_entry=Wong2020Fast" in command
    assert command_overrides(command) == ["+zoo_entry=Wong2020Fast"]


def test_eval_batch_size_1_gets_a_note_that_it_is_slow(caplog):
    with caplog.at_level(logging.WARNING, logger="rankrobust"):
        checks.check_config(make_cfg(*FAST, "dataset.eval_batch_size=1"))
    assert "dataset.eval_batch_size=1" in caplog.text and "slow" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rankrobust"):
        checks.check_config(make_cfg(*FAST))
    assert "eval_batch_size" not in caplog.text


def test_the_time_estimate_fires_with_fewer_than_5_steps_per_epoch(caplog):
    import pytorch_lightning as pl
    import torch

    from rankrobust.pipeline.callbacks import TimeEstimate

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.TensorDataset(torch.randn(6, 2))
    loader = torch.utils.data.DataLoader(data, batch_size=2)  # 3 steps per epoch, 6 in all
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[TimeEstimate(after_steps=5, warn_minutes=0.0)],
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="rankrobust"):
        trainer.fit(Tiny(), loader)
    assert "this job will take about" in caplog.text and "training about" in caplog.text
    assert "5 steps to go" in caplog.text  # a 6-step job: said after its first step
