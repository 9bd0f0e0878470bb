"""The checked run: `checks.check_config(cfg)` returns a `RunSpec`, and everything is built from it
once (build.py, the task, the analyses).

The typed parts are what more than one place reads: the rank transform, the attack specs, the
evaluation / sweep / RIG / spectrum / attribution settings (pipeline/settings.py declares
every setting's rule), where the last checkpoint lives and the run's identity. The groups that
only build one object (dataset, model, module, optim, trainer, callbacks, logger) stay config
nodes of the resolved config (`node`), instantiated once by build.py from their `_target_`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rankrobust import results
from rankrobust.attacks import AttackSpec
from rankrobust.identity import run_identity
from rankrobust.pipeline.analyses import (
    EvalSettings,
    RIGSettings,
    SpectrumSettings,
    SweepSettings,
)
from rankrobust.pipeline.explain import AttributionSettings
from rankrobust.svd import RankTransform

# Keys of a group's node that are not arguments of its class: read by other groups through
# interpolation (the model's normalisation reads ${dataset.mean} / ${dataset.std}) and dropped
# before the class is built. The one list, for checks (unknown keys) and build.
NOT_ARGUMENTS = {"dataset": ("mean", "std")}


@dataclass(frozen=True)
class RunSpec:
    """A validated run. `config` is the whole resolved config (metrics.json resolved_config),
    snapshotted once after the GPU lease decided the device."""

    config: dict
    seed: int
    train: bool
    resume: bool
    transform: RankTransform
    train_attack: AttackSpec | None
    eval_attack: AttackSpec | None
    eval: EvalSettings
    sweep: SweepSettings
    rig: RIGSettings
    analysis: SpectrumSettings
    attribution: AttributionSettings
    skipped: tuple[str, ...] = ()  # analyses switched off by pipeline/rules.py scope_analyses

    def node(self, key: str) -> DictConfig:
        """The resolved config node of a group (a copy), e.g. "trainer": what build.py
        instantiates."""
        return OmegaConf.create(self.config[key])

    @property
    def eval_budget(self) -> int | None:
        """Test images attacked for robust_acc: eval.n_robust, capped by AutoAttack's n_examples."""
        n, spec = self.eval.n_robust, self.eval_attack
        if spec is not None and spec.name == "autoattack" and spec.n_examples is not None:
            n = spec.n_examples if n is None else min(n, spec.n_examples)
        return n

    def last_checkpoint(self, run_dir: str | Path) -> Path:
        """<run dir>/<callbacks.last_checkpoint.dirpath>/last.ckpt (results.last_checkpoint)."""
        return results.last_checkpoint(run_dir, self.config)

    def identity(self, experiment: str | None) -> dict:
        return run_identity(self.config, experiment)
