"""What a kill, a full disk or a second process cannot destroy: every output file is written
whole or not at all (files.atomic_open), last.ckpt through a file beside it, the test accuracies
kept once measured, and a run folder held by one process at a time."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FAST, ROOT, child_env, make_cfg, run_cli

from rankrobust import files, results
from rankrobust.errors import ConfigError, FolderBusy
from rankrobust.pipeline import analyses, build, checks, run_folder, task
from rankrobust.pipeline.callbacks import AtomicCheckpointIO
from rankrobust.reporting.collect import write_table

TINY = [*FAST, "trainer.max_epochs=1", "sweep.enabled=false", "eval.n_robust=4"]
TINY += ["analysis.perturbation_spectrum=false", "model.width=4", "dataset.n_train=64"]
TINY += ["dataset.n_test=32"]
GOOD = b'{"status": "ok", "the previous good file": true}'


class _FillsUp:
    """A file whose writes fill the disk after `room` bytes: part written, then ENOSPC."""

    def __init__(self, fh, room: int):
        self._fh, self._room = fh, room

    def write(self, data):
        if len(data) > self._room:
            self._fh.write(data[: self._room])
            self._fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def _fill_disk(monkeypatch, name: str | None = None, room: int = 16) -> None:
    """Writes of `name` (every file when None) through files.py fill the disk after `room`
    bytes."""
    real = open

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real(file, mode, *args, **kwargs)
        hit = name is None or Path(file).name.startswith(f".{name}.")
        return _FillsUp(fh, room) if hit and "w" in mode else fh

    monkeypatch.setattr(files, "open", fake_open, raising=False)


def _leftovers(folder: Path) -> list[str]:
    """Temporary or empty files anywhere under folder."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and (p.name.endswith(".tmp") or p.stat().st_size == 0)
        and p.name != run_folder.LOCK_FILE
    )  # fmt: skip


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return fig


WRITERS = {
    "metrics.json": lambda p: results.write_metrics(p.parent, {"status": "ok", "timings": {}}),
    "report.md": lambda p: files.write_text(p, "# report\n" * 100),
    "runs.json": lambda p: files.write_json(p, [{"run": i} for i in range(50)]),
    "runs.csv": lambda p: write_table([{"run_dir": str(i)} for i in range(50)], p.parent),
    "fig.png": lambda p: files.save_figure(_figure(), p),
    "fig.pdf": lambda p: files.save_figure(_figure(), p),
    "rig.npz": lambda p: files.save_npz(p, x=np.arange(1000)),
    "last.ckpt": lambda p: files.torch_save({"state_dict": {"w": torch.randn(100)}}, p),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_write_that_fails_midway_leaves_the_previous_file_whole(tmp_path, monkeypatch, name):
    target = tmp_path / name
    target.write_bytes(GOOD)
    _fill_disk(monkeypatch, name)
    with pytest.raises(OSError) as info:
        WRITERS[name](target)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(target)  # the real file, not the temporary one
    assert target.read_bytes() == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left


@pytest.mark.parametrize("name", list(WRITERS))
def test_each_writer_replaces_the_file_whole(tmp_path, name):
    target = tmp_path / name
    target.write_bytes(GOOD)
    WRITERS[name](target)
    assert target.read_bytes() != GOOD and target.stat().st_size > 0
    assert _leftovers(tmp_path) == []
    if name.endswith(".npz"):
        assert np.load(target)["x"].sum() == 499500  # np.savez kept the name, no ".npz" added


_KILLED_WRITER = """
import sys, time
from rankrobust import files
with files.atomic_open(sys.argv[1], "w") as fh:
    fh.write("half of the new file")
    fh.flush()
    print("writing", flush=True)
    sys.stdin.readline()  # killed here
"""


def test_kill_9_mid_write_keeps_the_old_file_and_the_next_write_clears_the_temporary(tmp_path):
    target = tmp_path / "runs.json"
    target.write_bytes(GOOD)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(target)], env=child_env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "writing"  # the state: mid-write
        temps = [p for p in tmp_path.iterdir() if p.name != "runs.json"]
        assert len(temps) == 1 and temps[0].name.endswith(".tmp")  # beside it, not in $TMPDIR
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert target.read_bytes() == GOOD and temps[0].exists()
    assert [p.name for p in tmp_path.glob("*.json")] == ["runs.json"]  # readers miss it
    files.write_text(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["runs.json"]


def test_atomic_open_writes_only_whole_files():
    with pytest.raises(ValueError, match="mode='a'"):
        with files.atomic_open("x.txt", "a"):
            pass


# ---------------------------------------------------------------------------------------------
# last.ckpt


def test_the_trainer_saves_checkpoints_through_the_atomic_writer(tmp_path):
    cfg = make_cfg(*TINY)
    trainer = build.trainer(checks.check_config(cfg), tmp_path, [], [])
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    io = trainer.strategy.checkpoint_io
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 3, "w": torch.ones(2)}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_a_full_disk_at_the_second_checkpoint_keeps_the_first_and_fails_the_run(
    tmp_path, monkeypatch
):
    saved = []
    real = files.torch_save

    def second_fills_the_disk(obj, path):
        saved.append(path)
        if len(saved) == 2:
            _fill_disk(monkeypatch, "last.ckpt", room=1000)
        return real(obj, path)

    monkeypatch.setattr("rankrobust.pipeline.callbacks.torch_save", second_fills_the_disk)
    run = tmp_path / "run"
    cfg = make_cfg(*TINY, "trainer.max_epochs=2", "callbacks.last_checkpoint.every_minutes=0")
    with pytest.raises(ConfigError, match="No space left") as info:
        task.run(cfg, run)
    last = run / "checkpoints" / "last.ckpt"
    message = str(info.value)
    assert f"'{last}'" in message and ".tmp" not in message and "\n" not in message.strip()
    written = json.loads((run / "metrics.json").read_text())
    assert written["status"] == "failed" and "No space left" in written["error"]
    assert str(last) in written["error"]
    assert _leftovers(run) == []  # no temporary, no 0-byte file
    epoch = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert epoch == 0  # the first epoch's checkpoint, whole: resume accepts it
    run_folder.check_checkpoint(last)


def test_a_full_disk_at_the_end_keeps_the_measured_accuracies(tmp_path, monkeypatch, caplog):
    real = results.write_metrics

    def full_once_finished(run_dir, metrics):
        if metrics["status"] not in ("running",):
            _fill_disk(monkeypatch, "metrics.json")
        return real(run_dir, metrics)

    monkeypatch.setattr(results, "write_metrics", full_once_finished)
    with caplog.at_level(logging.INFO, logger="rankrobust"):
        with pytest.raises(ConfigError, match="No space left") as info:
            task.run(make_cfg(*TINY), tmp_path / "run")
    assert "metrics.json" in str(info.value) and ".tmp" not in str(info.value)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())  # valid JSON
    assert written["status"] == "running" and written["clean_acc"] is not None
    assert _leftovers(tmp_path / "run") == []
    assert "clean accuracy" in caplog.text


# ---------------------------------------------------------------------------------------------
# the test accuracies, once measured


def test_sigterm_in_the_analyses_keeps_and_prints_the_accuracies(tmp_path, monkeypatch, caplog):
    seen = {}

    def terminated_midway(spec, module, dm, run_dir):
        seen.update(json.loads((Path(run_dir) / "metrics.json").read_text()))  # kill -9 now
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the analyses")

    monkeypatch.setattr(analyses, "run_all", terminated_midway)
    with caplog.at_level(logging.INFO, logger="rankrobust"):
        with pytest.raises(SystemExit) as info:
            task.run(make_cfg(*TINY), tmp_path / "run")
    assert info.value.code == 128 + signal.SIGTERM
    assert seen["status"] == "running" and seen["clean_acc"] is not None
    assert seen["robust_acc"] is not None and seen["n_test"] == 32
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "interrupted" and "SIGTERM" in written["error"]
    assert written["clean_acc"] == seen["clean_acc"]
    assert written["robust_acc"] == seen["robust_acc"]
    assert f"clean accuracy  {100 * seen['clean_acc']:.1f}%" in caplog.text


def test_sigterm_in_a_long_analysis_on_the_cli(tmp_path):
    # RIG with 10^8 points per segment: the run can only end by the signal
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *TINY, "hydra.run.dir=run", "rig.enabled=true",
         "rig.n_images=1", "rig.steps_per_rank=100000000", "rig.batch_size=8"],
        cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    metrics = tmp_path / "run" / "metrics.json"
    try:
        for line in proc.stdout:  # the state: the analyses have started
            if "[rankrobust] rig: " in line and "started" in line:
                break
        measured = json.loads(metrics.read_text())
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    assert measured["status"] == "running" and measured["clean_acc"] is not None
    written = json.loads(metrics.read_text())
    assert written["status"] == "interrupted" and written["clean_acc"] == measured["clean_acc"]
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert "clean accuracy" in out and "resume with" in out


# ---------------------------------------------------------------------------------------------
# one process per run folder

_HOLDER = """
import sys
from rankrobust.pipeline import run_folder
with run_folder.held(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _hold(folder: Path) -> subprocess.Popen:
    """A second process holding `folder`, once it says so (a state, not a time)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)], env=child_env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_folder_is_refused_naming_the_holder_and_written_nothing(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.json").write_bytes(GOOD)
    holder = _hold(folder)
    try:
        with pytest.raises(FolderBusy) as info:
            task.run(make_cfg(*TINY), folder)
    finally:
        holder.communicate("\n", timeout=60)
    assert str(folder) in str(info.value) and f"pid {holder.pid}" in str(info.value)
    assert (folder / "metrics.json").read_bytes() == GOOD  # the other run's record stays
    with run_folder.held(folder):  # released when its holder ends
        pass


def test_two_runs_into_one_folder_the_second_exits_2(tmp_path):
    holder = _hold(tmp_path / "run")
    try:
        result = run_cli(*TINY, "hydra.run.dir=run", cwd=tmp_path, timeout=300)
    finally:
        holder.communicate("\n", timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "in use by" in result.stderr and f"pid {holder.pid}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_sweep_skips_the_job_another_process_holds(tmp_path):
    sweep = tmp_path / "sweep"
    holder = _hold(sweep / "0")
    try:
        result = run_cli(
            "-m", *TINY, "seed=0,1", f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=${hydra.job.num}", cwd=tmp_path, timeout=600,
        )  # fmt: skip
    finally:
        holder.communicate("\n", timeout=60)
    assert "job 0 skipped" in result.stderr and f"pid {holder.pid}" in result.stderr
    assert not (sweep / "0" / "metrics.json").exists()  # nothing written into the held folder
    assert results.run_status(sweep / "1") == "ok"  # the other job ran
    assert result.returncode == 1  # the sweep does not say ok: job 0 is not its own


def test_a_folder_is_free_again_after_its_run(tmp_path):
    task.run(make_cfg(*TINY), tmp_path / "run")
    with run_folder.held(tmp_path / "run"):
        lock = (tmp_path / "run" / run_folder.LOCK_FILE).read_text()
    assert f"pid {os.getpid()}" in lock


@pytest.mark.parametrize("name", ["runs.json", "report.md"])
def test_a_full_disk_under_report_is_one_paragraph_and_keeps_the_files(
    tmp_path, monkeypatch, capsys, name
):
    from fake_runs import make_outputs

    from rankrobust.reporting import report

    runs, out = make_outputs(tmp_path / "outputs"), tmp_path / "figures"
    assert report.main([str(runs), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fill_disk(monkeypatch, name)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        report.main([str(runs), "--out", str(out)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"'{out / name}'" in err and "No space left" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing lost or torn
