"""Resume never loses a record: every refused or failed resume, and a kill during one, leaves the
folder's ok / partial / interrupted record and its accuracies as they were; an ok run is not
resumed (nothing left to run)."""

from __future__ import annotations

import json
import shutil

import pytest
import pytorch_lightning as pl
from helpers import FAST, make_cfg

from rankrobust.errors import ConfigError
from rankrobust.pipeline import loggers, task

BASE = [*FAST, "trainer.max_epochs=1", "dataset.n_train=128", "dataset.n_test=64"]
BASE += ["sweep.enabled=false", "analysis.perturbation_spectrum=false", "eval.n_robust=16"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished")
    metrics = task.run(make_cfg(*BASE, "rank=8"), run_dir)
    assert metrics["status"] == "ok"
    return run_dir, (run_dir / "metrics.json").read_text()


def _as(finished, tmp_path, status: str):
    """A copy of the finished run whose metrics.json says `status`, and that text."""
    run_dir = tmp_path / status
    shutil.copytree(finished[0], run_dir)
    record = json.loads(finished[1])
    (run_dir / "metrics.json").write_text(json.dumps({**record, "status": status}))
    return run_dir, (run_dir / "metrics.json").read_text()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("trainer.max_epochs=2", "trainer.max_epochs"),  # a longer schedule is refused
        ("model.width=8", "model.width"),  # another model
        ("rank=4", "rank"),  # another identity
        ("seed=3", "seed"),
    ],
)
def test_resume_with_other_settings_is_refused_and_keeps_the_record(
    finished, tmp_path, override, named
):
    run_dir, before = _as(finished, tmp_path, "interrupted")
    with pytest.raises(ConfigError, match=rf"{named}: .* -> "):
        task.run(make_cfg(*BASE, "rank=8", override, "resume=true"), run_dir)
    assert (run_dir / "metrics.json").read_text() == before


def test_an_ok_run_is_not_resumed_and_keeps_the_record(finished):
    """A job requeued with resume=true after it finished: skipped, its record returned."""
    run_dir, before = finished
    again = task.run(make_cfg(*BASE, "rank=8", "resume=true"), run_dir)
    assert again == json.loads(before)
    assert (run_dir / "metrics.json").read_text() == before


def test_a_truncated_checkpoint_is_refused_before_any_work(finished, tmp_path):
    run_dir, before = _as(finished, tmp_path, "interrupted")
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="cannot be read.*truncated"):
        task.run(make_cfg(*BASE, "rank=8", "resume=true"), run_dir)
    assert (run_dir / "metrics.json").read_text() == before


def test_a_resumed_run_that_dies_leaves_the_finished_record(finished, tmp_path, monkeypatch):
    run_dir, before = _as(finished, tmp_path, "partial")  # an analysis failed: rerun them
    seen = {}

    def dies(self, *args, **kwargs):
        seen["status"] = json.loads((run_dir / "metrics.json").read_text())["status"]
        raise RuntimeError("killed during the resumed fit")

    monkeypatch.setattr(pl.Trainer, "fit", dies)
    with pytest.raises(RuntimeError, match="killed"):
        task.run(make_cfg(*BASE, "rank=8", "resume=true"), run_dir)
    assert seen["status"] == "partial"  # no "running" record over it while it ran (a kill -9)
    assert (run_dir / "metrics.json").read_text() == before  # nor "failed" after


def test_a_corrupt_wandb_id_file_starts_a_new_wandb_run(tmp_path):
    (tmp_path / loggers.RUN_ID_FILE).write_bytes(b"\xff\xfe not an id \n")
    run_id = loggers._run_id(tmp_path)
    assert run_id.isalnum() and len(run_id) == 8
    assert loggers._run_id(tmp_path) == run_id  # kept from then on
