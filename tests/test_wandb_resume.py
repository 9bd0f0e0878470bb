"""A resumed run's W&B history read back (reporting/wandb_offline.py): the attempts' offline-run-*
folders are one run; per step the latest values, in step order, once; an attempt redoes the
steps after its checkpoint; a half-written .wandb file is read up to its last complete record."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import FAST, run_cli
from hooks import kill_at_epoch

from rankrobust.reporting.wandb_offline import _read_log, read_offline_run, run_files


def _attempt(folder, steps, keys, extra=None, declare=True):
    """One wandb.init of run 'abcd1234' in `folder` (resume="allow", as the pipeline's loggers),
    logging `keys` at each trainer/global_step in `steps` as Lightning does."""
    import wandb

    run = wandb.init(project="t", id="abcd1234", resume="allow", dir=str(folder), mode="offline")
    if declare:  # what Lightning's WandbLogger declares
        run.define_metric("trainer/global_step")
        run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    for step in steps:
        run.log({**{k: 100 * len(keys) + step for k in keys}, "trainer/global_step": step})
    if extra:
        run.log(extra)
    run.finish()
    wandb.teardown()  # flush: the service may write the run's last records after finish()


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Attempt 1 logs steps 0-4 (a, b); the resume restarts from step 3 and logs a only."""
    folder = tmp_path_factory.mktemp("resumed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_SILENT", "true")
        _attempt(folder, range(5), ["a", "b"])
        _attempt(folder, range(3, 7), ["a"], extra={"table": 1})
    return folder


def test_two_attempts_are_one_history_with_each_step_once_in_order(resumed):
    run = read_offline_run(resumed / "wandb")
    assert len(run["files"]) == 2 and run["notes"] == []
    steps = [row["trainer/global_step"] for row in run["history"]]
    assert steps == [0, 1, 2, 3, 4, 5, 6]
    assert [row["_step"] for row in run["history"]] == list(range(7))
    by_step = {row["trainer/global_step"]: row for row in run["history"]}
    assert by_step[1]["a"] == 201 and by_step[1]["b"] == 201  # attempt 1, before the resume
    assert by_step[3]["a"] == 103 and by_step[4]["a"] == 104  # redone: the resume's values
    assert "b" not in by_step[4]  # the resume logs fewer keys: the lost attempt's b is gone
    assert by_step[6]["table"] == 1  # a row without a step belongs to the step before it
    assert run["summary"]["a"] == 106 and run["summary"]["_step"] == 6


def test_one_file_given_is_read_alone(resumed):
    first, second = run_files(resumed / "wandb")
    assert [r["trainer/global_step"] for r in read_offline_run(first)["history"]] == [0, 1, 2, 3, 4]
    assert read_offline_run(second)["history"][0]["trainer/global_step"] == 3


def test_without_a_declared_step_the_attempts_are_numbered_on(tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_SILENT", "true")
        _attempt(tmp_path, range(2), ["a"], declare=False)
        _attempt(tmp_path, range(2), ["a"], declare=False)
    run = read_offline_run(tmp_path / "wandb")
    assert [row["_step"] for row in run["history"]] == [0, 1, 2, 3]
    assert [row["trainer/global_step"] for row in run["history"]] == [0, 1, 0, 1]


@pytest.mark.parametrize("cut", ["inside_a_record", "inside_a_header", "inside_a_fragment"])
def test_a_half_written_file_is_read_up_to_its_last_complete_record(resumed, tmp_path, cut):
    if cut == "inside_a_fragment":  # a record over 32 KiB: written in fragments
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("WANDB_SILENT", "true")
            _attempt(tmp_path, range(3), ["a"], extra={"big": "x" * 70_000})
        source = run_files(tmp_path / "wandb")[0]
    else:
        source = run_files(resumed / "wandb")[0]
    data = source.read_bytes()
    payloads, end = _read_log(data)
    assert end == len(data)
    rows = [i for i, p in enumerate(payloads) if _kind(p) == "history"]
    last = max(rows, key=lambda i: len(payloads[i])) if cut == "inside_a_fragment" else rows[-1]
    at = data.index(payloads[last][:64]) - 7  # its (first fragment's) header
    cut_at = {"inside_a_record": at + 7 + 20, "inside_a_header": at + 3}.get(cut, at + 40_000)
    copy = tmp_path / "half" / "run-abcd1234.wandb"
    copy.parent.mkdir()
    copy.write_bytes(data[:cut_at])
    run = read_offline_run(copy)  # no crash
    assert len(run["notes"]) == 1 and "last complete record" in run["notes"][0]
    kept, stopped = _read_log(data[:cut_at])
    assert kept == payloads[:last] and stopped == at
    steps = [row["trainer/global_step"] for row in run["history"]]
    if cut == "inside_a_fragment":  # the big value was logged at step 2, after its own row
        assert steps == [0, 1, 2] and not any("big" in row for row in run["history"])
    else:
        assert run["history"] == read_offline_run(source)["history"][:-1] and steps[-1] == 3


def _kind(payload: bytes) -> str:
    from wandb.proto import wandb_internal_pb2 as pb

    record = pb.Record()
    record.ParseFromString(payload)
    return record.WhichOneof("record_type")


def test_a_resumed_pipeline_run_reads_back_as_one_run(tmp_path):
    args = [*FAST, "logger=wandb", "trainer.max_epochs=3", "dataset.n_train=256"]
    args += ["dataset.n_test=32", "sweep.enabled=false", "analysis.perturbation_spectrum=false"]
    args += ["eval.n_robust=16", "callbacks.last_checkpoint.every_minutes=0", "hydra.run.dir=run"]
    args += ["trainer.log_every_n_steps=1"]
    # SIGTERM as the third epoch starts
    stopped = run_cli(*args, *kill_at_epoch(2, "TERM"), cwd=tmp_path, timeout=300)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "interrupted", stopped.stdout[-2000:] + stopped.stderr[-2000:]
    first = read_offline_run(tmp_path / "run" / "wandb")
    assert len(first["files"]) == 1
    resumed = run_cli(*args, "resume=true", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = read_offline_run(tmp_path / "run" / "wandb")
    assert len(run["files"]) == 2 and run["notes"] == []
    steps = [row["trainer/global_step"] for row in run["history"]]
    assert steps == sorted(set(steps))  # once each, in order
    losses = [row["trainer/global_step"] for row in run["history"] if "train/loss" in row]
    assert losses[0] < 4 <= losses[-1]  # both attempts' training (2 steps an epoch, 3 epochs)
    assert "test/clean_acc" in run["summary"]
    shutil.rmtree(tmp_path / "run" / "wandb")
