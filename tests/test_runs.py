"""Runs as models: load_run gives back the trained model, its config and its metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import FAST, make_cfg

import rankrobust
from rankrobust.data import synthetic_sets
from rankrobust.pipeline import build, checks, task
from rankrobust.reporting.wandb_offline import read_offline_run

# written by rankrobust 0.1 (35c69c7); its absolute paths are the placeholder @WRITER@
OLD_RUN = Path(__file__).parent / "data" / "run-v0.1"


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
    dm = build.datamodule(checks.check_config(cfg))
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


def _copy_old_run(dest: Path, writer: Path) -> None:
    """The fixture as copied from the machine that wrote it: its absolute paths (the
    placeholder @WRITER@ in the committed files) name `writer`."""
    shutil.copytree(OLD_RUN, dest)
    for path in dest.rglob("*"):
        if path.suffix in (".json", ".yaml"):
            path.write_text(path.read_text().replace("@WRITER@", str(writer)))


def test_a_run_folder_written_by_version_0_1_still_loads(tmp_path):
    """Its config names the old module paths (rankrobust.module..., rankrobust.data.Image...)
    and its metrics.json the checkpoint where it was first written: the copy's own is used,
    even when the writer's folder still exists and holds other weights."""
    writer = tmp_path / "writer-machine"
    run_dir = tmp_path / "copied"
    _copy_old_run(run_dir, writer)
    own = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    other = {**own, "state_dict": {k: v + 1 for k, v in own["state_dict"].items()}}
    (writer / "old-run" / "checkpoints").mkdir(parents=True)
    torch.save(other, writer / "old-run" / "checkpoints" / "last.ckpt")
    assert json.loads((run_dir / "metrics.json").read_text())["checkpoint"].startswith(str(writer))
    run = rankrobust.load_run(run_dir)
    for key, value in run.model.state_dict().items():
        torch.testing.assert_close(value, own["state_dict"]["model." + key])
    old = run.config["dataset"]
    _, test = synthetic_sets(
        old["n_train"], old["n_test"], num_classes=old["num_classes"], image_size=32, seed=0,
        **old["synthetic"],
    )  # fmt: skip
    with torch.no_grad():
        acc = (run.model(test.images).argmax(1) == test.labels).float().mean().item()
    assert acc == pytest.approx(run.metrics["clean_acc"], abs=1e-6)


def test_the_checkpoint_folder_comes_from_the_callbacks_config(tmp_path):
    """callbacks.last_checkpoint.dirpath=ck_elsewhere: metrics.json names that checkpoint,
    load_run loads it, resume=true continues from it."""
    over = [*FAST, "trainer.max_epochs=1", "dataset.n_train=128", "dataset.n_test=64"]
    over += ["callbacks.last_checkpoint.dirpath=ck_elsewhere", "sweep.enabled=false"]
    metrics = task.run(make_cfg(*over), tmp_path)
    last = tmp_path / "ck_elsewhere" / "last.ckpt"
    assert metrics["checkpoint"] == str(last) and last.is_file()
    assert not (tmp_path / "checkpoints").exists()
    run = rankrobust.load_run(tmp_path)
    loaded = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    key = next(k for k in loaded if k.startswith("model."))
    torch.testing.assert_close(run.model.state_dict()[key.removeprefix("model.")], loaded[key])
    _set_metrics(tmp_path, status="interrupted")  # stopped after its last epoch (an ok run: no)
    resumed = task.run(make_cfg(*over, "resume=true"), tmp_path)  # the finished epoch: no work
    assert resumed["status"] == "ok" and resumed["clean_acc"] == metrics["clean_acc"]


# ---------------------------------------------------------------------------------------------
# load_run's boundaries: a bad folder or checkpoint is a ValueError naming
# the file; an unfinished run is refused unless asked for.


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the finished run whose metrics.json points at the copy's own files."""
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    text = (copy / "metrics.json").read_text().replace(str(run_dir), str(copy))
    (copy / "metrics.json").write_text(text)
    return copy


def _set_metrics(run_dir: Path, **fields) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.update(fields)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def test_load_run_names_a_missing_checkpoint(tmp_path, finished_run):
    copy = _copy(finished_run[1], tmp_path)
    (copy / "checkpoints" / "last.ckpt").unlink()
    _set_metrics(copy, checkpoint=str(copy / "checkpoints" / "gone.ckpt"))
    with pytest.raises(ValueError, match="gone.ckpt") as info:
        rankrobust.load_run(copy)
    assert type(info.value).__module__.split(".")[0] != "hydra"


def test_load_run_names_a_truncated_checkpoint(tmp_path, finished_run):
    copy = _copy(finished_run[1], tmp_path)
    last = copy / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ValueError, match="last.ckpt"):
        rankrobust.load_run(copy)


def test_load_run_names_a_checkpoint_of_another_model(tmp_path, finished_run):
    copy = _copy(finished_run[1], tmp_path)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["resolved_config"]["model"]["width"] = 8  # the checkpoint holds width 32
    (copy / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="last.ckpt") as info:
        rankrobust.load_run(copy)
    assert "Traceback" not in str(info.value) and "shape mismatch" in str(info.value)


def test_load_run_of_a_file_names_it(tmp_path, finished_run):
    last = finished_run[1] / "checkpoints" / "last.ckpt"
    for path in (last, tmp_path / "model.pt"):
        if not path.exists():
            path.write_bytes(b"\x80\x02 not a folder \xff")
        with pytest.raises(ValueError, match="run_dir") as info:
            rankrobust.load_run(path)
        assert path.name in str(info.value)
    with pytest.raises(ValueError, match="does not exist"):
        rankrobust.load_run(tmp_path / "no_such_run")


@pytest.mark.parametrize("status", ["running", "failed", "interrupted"])
def test_load_run_refuses_an_unfinished_run_unless_asked(tmp_path, finished_run, status):
    copy = _copy(finished_run[1], tmp_path)
    _set_metrics(copy, status=status)
    with pytest.raises(ValueError, match=status) as info:
        rankrobust.load_run(copy)
    assert "allow_unfinished=True" in str(info.value)
    with pytest.warns(UserWarning, match=status):
        run = rankrobust.load_run(copy, allow_unfinished=True)
    assert not run.model.training


# ---------------------------------------------------------------------------------------------
# load_run's ways of naming a run: str, Path, relative, the metrics.json itself, a link, and a
# run copied from another machine (its absolute paths point nowhere here).


def test_load_run_takes_every_way_of_naming_the_folder(tmp_path, finished_run, monkeypatch):
    run_dir = finished_run[1]
    link = tmp_path / "link to run"
    link.symlink_to(run_dir, target_is_directory=True)
    monkeypatch.chdir(run_dir.parent)
    expected = rankrobust.load_run(run_dir).model.state_dict()
    ways = [str(run_dir), Path(run_dir.name), run_dir.name, run_dir / "metrics.json",
            str(run_dir / "metrics.json"), link]  # fmt: skip
    for way in ways:
        run = rankrobust.load_run(way)
        assert run.metrics["status"] == "ok", way
        for key, value in expected.items():
            torch.testing.assert_close(run.model.state_dict()[key], value)
    with pytest.raises(TypeError, match="run_dir"):
        rankrobust.load_run(None)


def test_a_run_copied_from_another_machine_loads_from_its_own_folder(tmp_path, finished_run):
    """metrics.json and the config name /another/machine/... (checkpoint, run_dir, an absolute
    checkpoint folder): the copy's own files are used."""
    run_dir = finished_run[1]
    copy = tmp_path / "copied run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("wandb"))
    old = "/another/machine/outputs/run"
    metrics = json.loads((copy / "metrics.json").read_text().replace(str(run_dir), old))
    metrics["resolved_config"]["callbacks"]["last_checkpoint"]["dirpath"] = f"{old}/checkpoints"
    (copy / "metrics.json").write_text(json.dumps(metrics))
    run = rankrobust.load_run(copy)
    saved = torch.load(copy / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    key = next(k for k in saved["state_dict"] if k.startswith("model."))
    torch.testing.assert_close(
        run.model.state_dict()[key.removeprefix("model.")], saved["state_dict"][key]
    )
    (copy / "checkpoints" / "last.ckpt").rename(copy / "checkpoints" / "other.ckpt")
    metrics["checkpoint"] = f"{old}/checkpoints/other.ckpt"  # only the named checkpoint left
    (copy / "metrics.json").write_text(json.dumps(metrics))
    assert rankrobust.load_run(copy).metrics["checkpoint"].startswith(old)


def test_rankrobust_load_run_is_runs_load_run_with_its_signature():
    """The top-level name is the function itself, so help() shows its arguments and docstring."""
    import inspect
    import subprocess
    import sys

    from rankrobust import runs

    assert rankrobust.load_run is runs.load_run
    names = list(inspect.signature(rankrobust.load_run).parameters)
    assert names == ["run_dir", "allow_unfinished"]
    assert "Raises:" in rankrobust.load_run.__doc__
    with pytest.raises(AttributeError, match="no attribute 'load_runs'"):
        rankrobust.load_runs  # noqa: B018
    # importing the package alone stays light: torch comes with the first use of load_run
    code = "import sys, rankrobust; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
