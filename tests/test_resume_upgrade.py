"""Resume after an upgrade: a run interrupted under an older release (its saved config lacks
keys added since, holds keys removed since, or values whose default changed) resumes with its own
settings; a resume that is refused (a changed setting, a finished run, no checkpoint, no record)
is one paragraph, exit 2, and leaves every file of the folder as it was."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from helpers import FAST, make_cfg, run_cli
from hooks import kill_at_epoch

from rankrobust.errors import ConfigError
from rankrobust.pipeline import resume, task
from rankrobust.pipeline.run_folder import LOCK_FILE

RUN = [
    *FAST,
    "trainer.max_epochs=2",
    "dataset.n_train=128",
    "dataset.n_test=32",
    "sweep.enabled=false",
    "analysis.perturbation_spectrum=false",
    "eval.n_robust=16",
    "callbacks.last_checkpoint.every_minutes=0",  # epoch 0's checkpoint: resumable at once
    "hydra.run.dir=run",
]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A real CLI run stopped by SIGTERM as its second epoch starts: `interrupted`."""
    root = tmp_path_factory.mktemp("interrupted")
    result = run_cli(*RUN, *kill_at_epoch(1, "TERM"), cwd=root, timeout=300)
    record = json.loads((root / "run" / "metrics.json").read_text())
    assert record["status"] == "interrupted", result.stdout[-2000:] + result.stderr[-2000:]
    assert "resume=true" in record["command"] and (root / "run/checkpoints/last.ckpt").is_file()
    return root


@pytest.fixture
def folder(interrupted, tmp_path):
    """A copy of the interrupted run for one test to edit and resume (in `tmp_path`/run)."""
    shutil.copytree(interrupted / "run", tmp_path / "run")
    return tmp_path


def _edit_saved(folder, edit) -> None:
    """Apply `edit` to the saved config in metrics.json and .hydra/config.yaml (an older
    release wrote both)."""
    path = folder / "run" / "metrics.json"
    record = json.loads(path.read_text())
    edit(record["resolved_config"])
    path.write_text(json.dumps(record, indent=2))
    saved = folder / "run" / ".hydra" / "config.yaml"
    config = yaml.safe_load(saved.read_text())
    edit(config)
    saved.write_text(yaml.safe_dump(config))


def _files(folder) -> dict:
    """Every file of the run folder but run.log (a log: appended to) and the lock file (who holds
    the folder now: run_folder.held), as bytes."""
    run = folder / "run"
    return {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()
            and p.name not in ("run.log", LOCK_FILE)}  # fmt: skip


def _resume(folder, *extra):
    return run_cli(*RUN, *extra, "resume=true", cwd=folder, timeout=300)


def _refused(result) -> str:
    """The one paragraph of a refusal (exit 2, no traceback)."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    paragraph = result.stderr.split("configuration error\n", 1)[1].strip()
    assert "\n" not in paragraph, paragraph
    return paragraph


def test_keys_added_or_removed_since_the_run_started_do_not_stop_its_resume(folder):
    def older_release(config):
        del config["attribution"]  # a whole group added since
        del config["dataset"]["synthetic"]["noise"]  # a nested key added since
        del config["sweep"]["cutoffs"]["wavelet"]
        config["optim"]["momentum"] = 0.8  # a default that changed since
        config["optim"]["old_knob"] = 3  # a key removed since

    _edit_saved(folder, older_release)
    hydra_before = (folder / "run" / ".hydra" / "config.yaml").read_bytes()
    result = _resume(folder)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    record = json.loads((folder / "run" / "metrics.json").read_text())
    assert record["status"] == "ok"
    used = record["resolved_config"]
    assert used["optim"]["momentum"] == 0.8  # the run's own value, not the new default
    assert used["attribution"]["enabled"] is False and "noise" in used["dataset"]["synthetic"]
    assert "old_knob" not in used["optim"]
    assert "optim.momentum=0.8" in out and "optim.old_knob" in out and "attribution" in out
    assert "Restoring states from the checkpoint" in out
    # the folder's saved config is the run's as started, not rewritten by the resume
    assert (folder / "run" / ".hydra" / "config.yaml").read_bytes() == hydra_before


def test_a_setting_given_on_the_command_line_that_differs_is_refused_and_nothing_changes(folder):
    _edit_saved(folder, lambda config: config["optim"].update(momentum=0.8))
    before = _files(folder)
    paragraph = _refused(_resume(folder, "optim.momentum=0.7"))
    assert "optim.momentum: 0.8 -> 0.7" in paragraph
    assert "hydra.run.dir=" in paragraph  # the stored command that continues the run
    fresh = paragraph.rsplit("another folder: ", 1)[1]
    assert fresh.startswith("python run.py") and "resume=true" not in fresh
    assert "optim.momentum=0.7" in fresh and "hydra.run.dir" not in fresh
    assert _files(folder) == before  # metrics.json (interrupted, its command) and .hydra/


def test_a_longer_schedule_and_a_new_key_given_are_refused(folder):
    _edit_saved(folder, lambda config: config["dataset"]["synthetic"].pop("noise"))
    before = _files(folder)
    paragraph = _refused(_resume(folder, "trainer.max_epochs=3", "dataset.synthetic.noise=0.2"))
    assert "trainer.max_epochs: 2 -> 3" in paragraph
    assert "dataset.synthetic.noise: (absent) -> 0.2" in paragraph
    assert _files(folder) == before


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("failed_without_checkpoint", "does not exist"),
        ("no_record", "no readable record"),
        ("bad_override", "model.width"),
    ],
)
def test_a_refused_resume_leaves_the_folder_as_it_was(folder, case, named):
    run = folder / "run"
    record = json.loads((run / "metrics.json").read_text())
    extra = []
    if case == "failed_without_checkpoint":
        (run / "metrics.json").write_text(json.dumps({**record, "status": "failed"}))
        (run / "checkpoints" / "last.ckpt").unlink()
    elif case == "no_record":
        (run / "metrics.json").unlink()
        (run / ".hydra" / "config.yaml").write_text("model: [unclosed\n  : {")
    else:
        extra = ["model.width=-1"]
    before = _files(folder)
    paragraph = _refused(_resume(folder, *extra))
    assert named in paragraph
    assert _files(folder) == before
    assert not (run / "wandb").exists()


def test_a_finished_run_requeued_with_resume_is_skipped_and_left_as_it_was(folder):
    """A scheduler requeues a job with resume=true after it finished: exit 0, nothing rerun."""
    run = folder / "run"
    record = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**record, "status": "ok"}))
    before = _files(folder)
    result = _resume(folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nothing to resume" in result.stdout + result.stderr
    assert _files(folder) == before


def test_a_run_without_metrics_json_resumes_from_its_hydra_config(folder):
    (folder / "run" / "metrics.json").unlink()
    result = _resume(folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((folder / "run" / "metrics.json").read_text())["status"] == "ok"


# the rule itself, on small configs


SAVED = {"seed": 0, "optim": {"lr": 0.1, "momentum": 0.9}, "model": {"_target_": "a.B", "w": 4}}


def test_compare_keeps_the_runs_values_for_settings_not_given():
    now = {"seed": 0, "optim": {"lr": 0.1, "momentum": 0.8, "new": 1}}
    now["model"] = {"_target_": "a.C", "w": 4}
    changes = resume.compare(SAVED, now, given=lambda key: False)
    assert changes.refused == [] and changes.kept == {"optim.momentum": 0.9}
    assert changes.added == ["optim.new"] and changes.removed == []  # _target_: the current one


def test_compare_refuses_settings_given_and_names_removed_ones():
    now = {"seed": 3, "optim": {"lr": 0.1}, "model": {"_target_": "a.B", "w": 8}}
    changes = resume.compare(SAVED, now, given=lambda key: key in ("seed", "model.w"))
    assert changes.refused == ["model.w: 4 -> 8", "seed: 0 -> 3"]
    assert changes.removed == ["optim.momentum"] and changes.kept == {}
    strict = resume.compare(SAVED, now, given=None)  # from Python: every key is given
    assert strict.refused == ["model.w: 4 -> 8", "seed: 0 -> 3"]


def test_an_int_and_a_float_of_one_value_differ():
    saved = {"trainer": {"limit_train_batches": 1, "ranks": [1, 2]}}
    now = {"trainer": {"limit_train_batches": 1.0, "ranks": [1, 2]}}  # a batch vs the epoch
    assert resume.compare(saved, now, None).refused == ["trainer.limit_train_batches: 1 -> 1.0"]


def test_a_value_that_became_a_group_is_a_difference_not_an_addition():
    changes = resume.compare({"attack": {"train": None}}, {"attack": {"train": {"eps": 1}}}, None)
    assert changes.refused == ["attack.train: None -> {'eps': 1}"] and changes.added == []


@pytest.mark.parametrize(
    ("overrides", "saved", "key", "given"),
    [
        (("model=a", "seed=1"), ("model=a", "seed=1"), "seed", False),  # the run's own command
        (("model=a", "seed=2"), ("model=a", "seed=1"), "seed", True),
        (("model=b",), ("model=a",), "model.w", True),  # another group: all its keys
        (("+optim.clip=1",), (), "optim.clip", True),
        (("model=a",), None, "model.w", True),  # the run's overrides unknown: all given
        (("hydra.job.name=x", "resume=true"), (), "seed", False),
    ],
)
def test_given_keys_are_the_overrides_the_run_did_not_have(overrides, saved, key, given):
    config = {"seed": 0, "model": {"w": 4}, "optim": {"clip": 1}}
    assert resume.given_keys(overrides, saved, config)(key) is given


def test_a_global_group_given_makes_every_key_given():
    assert resume.given_keys(("experiment=paper",), ("experiment=smoke",), {"seed": 0}) is None


def test_python_api_resume_with_missing_keys_is_not_refused_but_changes_are(folder):
    """task.run (no command line): every setting counts as given; added keys do not."""
    run = folder / "run"
    _edit_saved(folder, lambda config: config["sweep"]["cutoffs"].pop("wavelet"))
    args = [a for a in RUN if not a.startswith("hydra.")]
    before = _files(folder)
    with pytest.raises(ConfigError, match=r"trainer\.max_epochs: 2 -> 3"):
        task.run(make_cfg(*args, "trainer.max_epochs=3", "resume=true"), run)
    assert _files(folder) == before
