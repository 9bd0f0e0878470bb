"""Every config composes and builds: each group's options, each experiment preset end to end.

The yaml names the class (`_target_`) and its arguments; these tests instantiate them, so an
option that a class does not take, or a class that moved, fails here and not in a user's run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import CONF, make_cfg
from hydra.utils import instantiate

from rankrobust.errors import ConfigError, as_config_error
from rankrobust.pipeline import build, checks, loggers, task

SYNTHETIC = ["dataset=synthetic", "logger=none", "trainer=cpu"]
# Options that need files or packages a test machine lacks are built with stand-ins.
STAND_INS = {
    "dataset": {"image_folder": ["dataset.root=/tmp"], "imagenet": ["dataset.root=/tmp"]},
    "model": {
        "resnet50": [],
        "imagenet_natural_r50": ["model.pretrained=null", "dataset=imagenet", "dataset.root=/tmp"],
        "imagenet_robust_r50": None,  # robustbench: optional extra, checked but not built
        "imagenet_madrylab_r50": ["model.checkpoint=null", "dataset=imagenet", "dataset.root=/tmp"],
        "robustbench": None,
    },
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


GROUPS = ["dataset", "model", "attack", "transform", "trainer", "logger", "callbacks", "eval"]
GROUPS += ["sweep", "rig", "attribution", "analysis", "module", "optim", "debug", "launcher"]
CASES = [(g, o) for g in GROUPS for o in options(g)]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_group_option_composes_checks_and_instantiates(group, option, monkeypatch, tmp_path):
    extra = STAND_INS.get(group, {}).get(option, [])
    cfg = make_cfg(f"{group}={option}", *(extra or []))
    checks.check_targets(cfg)  # every key is an argument of its _target_
    if extra is None:
        return
    if group == "dataset":
        assert build.datamodule(checks.check_config(cfg)).name == cfg.dataset.name
    elif group == "model":
        net = build.model(checks.check_config(cfg))
        assert isinstance(net, torch.nn.Module) and hasattr(net, "normalize")
    elif group == "attack":
        spec = checks.check_config(cfg)
        assert spec.eval_attack is not None and spec.eval_attack.name == cfg.attack.eval.name
    elif group == "transform":
        assert instantiate(cfg.transform).mode == option
    elif group == "trainer":
        cfg.trainer.accelerator = "cpu"
        cfg.trainer.devices = 1
        cfg.trainer.strategy = "auto"
        trainer = build.trainer(checks.check_config(cfg), Path("/tmp"), [], [])
        assert trainer.max_epochs == cfg.trainer.max_epochs
    elif group == "logger":
        monkeypatch.setenv("WANDB_MODE", "offline")
        built = loggers.build(checks.check_config(cfg), tmp_path, None)
        assert len(built) == len(cfg.logger or {})
        assert all(hasattr(lg, "log_metrics") for lg in built)
    elif group == "callbacks":
        assert len(build.callbacks(checks.check_config(cfg))) == len(cfg.callbacks)
    elif group in ("eval", "sweep", "rig", "attribution", "analysis"):
        assert type(instantiate(cfg[group])).__name__.endswith("Settings")
    elif group == "module":
        spec = checks.check_config(cfg)
        assert build.module(spec, build.model(spec)).channels_last == "auto"


PRESETS = options("experiment")
EVAL_ONLY = {"cifar10_pretrained_eval", "imagenet_eval", "zoo"}


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_runs_one_batch_on_synthetic_data(preset, tmp_path):
    overrides = [f"experiment={preset}", *SYNTHETIC, "+trainer.fast_dev_run=true"]
    overrides += ["sweep.n_images=16", "sweep.ranks=[1,2]", "analysis.n_images=8"]
    overrides += ["eval.n_robust=8", "dataset.n_train=64", "dataset.n_test=32"]
    overrides += ["dataset.batch_size=16", "dataset.eval_batch_size=16", "attack.eval.steps=2"]
    overrides += ["analysis.perturbation_spectrum=false"]
    # the demo's analyses (basis sweep, heat maps, RIG, attribution) on a few images
    overrides += ["sweep.basis_n_images=8", "analysis.heat_map_n_images=4", "rig.n_images=2"]
    overrides += ["attribution.n_images=2"]
    if preset in EVAL_ONLY:
        overrides += ["model=small_cnn", "dataset.num_classes=10", "dataset.image_size=32"]
        overrides += ["model.checkpoint=random"]  # evaluation presets with a stand-in model
    metrics = task.run(make_cfg(*overrides), tmp_path)
    assert metrics["status"] == "ok", metrics.get("error")
    assert metrics["clean_acc"] is not None and metrics["config"]["dataset"] == "synthetic"


def test_unknown_top_level_key_is_a_config_error():
    with pytest.raises(ConfigError, match="no_such_option is not a setting"):
        checks.check_config(make_cfg("+no_such_option=1"))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("+model.depth=3", "depth"),  # small_cnn takes width, not depth
        ("+trainer.no_such_arg=1", "trainer.no_such_arg"),
        ("+dataset.colour=1", "dataset.colour"),
        ("+sweep.speed=2", "sweep.speed"),
        ("+attack.eval.power=2", "attack.eval.power"),
    ],
)
def test_unknown_keys_inside_groups_are_config_errors(override, key):
    cfg = make_cfg(*SYNTHETIC, "model=small_cnn", override)
    try:
        build.model(checks.check_config(cfg))
    except Exception as raised:  # the task's failure policy sees what as_config_error returns
        err = as_config_error(raised)
    else:
        pytest.fail(f"{override} was accepted")
    assert isinstance(err, ConfigError) and key.split(".")[-1] in str(err)


def test_options_reach_the_objects():
    cfg = make_cfg(*SYNTHETIC, "model=small_cnn", "model.width=8", "+trainer.gradient_clip_val=1")
    spec = checks.check_config(cfg)
    net = build.model(spec)
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.out_channels == 8
    trainer = build.trainer(spec, Path("/tmp"), [], [])
    assert trainer.gradient_clip_val == 1
