"""The demo's runs (make reproduce-demo) are the experiments conf/experiment/demo_*.yaml: each stage
passes the config check (a mistyped key or an out-of-range value there would stop the demo after
minutes of training), and the natural and robust stages are a pair. test_configs.py runs every
experiment, these included, for one batch."""

from __future__ import annotations

import pytest
from conftest import CIFAR_TARBALL
from helpers import CONF, ROOT, make_cfg
from omegaconf import OmegaConf

from rankrobust.identity import settings
from rankrobust.pipeline import checks

STAGES = ["demo_natural", "demo_robust", "demo_rank_sweep"]


def _sweep_ranks() -> list[str]:
    """The ranks `run.py -m experiment=demo_rank_sweep` runs, one job each."""
    params = OmegaConf.load(CONF / "experiment" / "demo_rank_sweep.yaml").hydra.sweeper.params
    return str(params.rank).split(",")


def _jobs() -> list[list[str]]:
    jobs = [[f"experiment={name}"] for name in STAGES[:2]]
    return jobs + [["experiment=demo_rank_sweep", f"rank={k}"] for k in _sweep_ranks()]


def test_every_demo_job_passes_the_config_check():
    if not CIFAR_TARBALL.is_file():  # the config check looks for dataset.root
        pytest.skip("CIFAR-10 JPEG copy absent")
    kinds = set()
    for overrides in _jobs():
        spec = checks.check_config(make_cfg(*overrides, f"dataset.root={CIFAR_TARBALL}"))
        kinds.add(spec.train_attack.name if spec.train_attack else "none")
    assert kinds == {"none", "fgsm_rs"}
    assert _sweep_ranks() == ["2", "8", "32"]


def test_the_robust_stage_is_the_natural_one_with_adversarial_training():
    """Claims C1 and C2 compare the two: the same data, model and analyses."""
    natural = settings(OmegaConf.to_container(make_cfg("experiment=demo_natural"), resolve=True))
    robust = settings(OmegaConf.to_container(make_cfg("experiment=demo_robust"), resolve=True))
    differ = {k for k in natural.keys() | robust.keys() if natural.get(k) != robust.get(k)}
    assert differ and all(k.startswith("attack.") or k == "trainer.max_epochs" for k in differ)
    assert (natural["attack.name"], robust["attack.name"]) == ("none", "fgsm_rs")
    assert (natural["trainer.max_epochs"], robust["trainer.max_epochs"]) == (2, 5)


@pytest.mark.parametrize("stage", STAGES)
def test_the_makefile_options_reach_every_stage(stage):
    """DEMO_SEED, DEMO_LOGGER and DATA are command-line overrides after the experiment: they win
    over its defaults (seed 0, the csv logger, the shared CIFAR-10 copy)."""
    default = make_cfg(f"experiment={stage}")
    assert default.seed == 0 and list(default.logger) == ["csv"]
    assert default.dataset.root == "../shared/data/cifar10-jpeg.tar.gz"
    cfg = make_cfg(f"experiment={stage}", "seed=3", "logger=wandb", "dataset.root=/data/c10.tgz")
    assert cfg.seed == 3 and list(cfg.logger) == ["wandb"] and cfg.dataset.root == "/data/c10.tgz"


def test_the_makefile_runs_each_stage_by_its_experiment():
    recipe = (ROOT / "Makefile").read_text().split("\nreproduce-demo:", 1)[1].split("\n\n", 1)[0]
    for stage in STAGES:
        assert f"run.py {'-m ' if stage == 'demo_rank_sweep' else ''}experiment={stage} " in recipe
