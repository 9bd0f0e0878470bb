"""What a run computes after testing, by the kind of run: the one rule for rank-trained runs.

A rank-trained run (``rank=k`` with the transform applied to the training images) feeds one
figure and one claim: fig-train-rank and C4 read its clean and robust test accuracy, nothing
else (reporting/claims grouping.train_rank_groups). Its rank sweep, perturbation spectrum, RIG
and attribution maps are read by no figure and no report, yet they cost about 40% of such a run
on a CPU. With ``analysis.for_rank_trained=figures`` (the default) they are switched off in the
run's spec; ``analysis.for_rank_trained=all`` keeps every analysis the config enables.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rankrobust.errors import ConfigError

FOR_RANK_TRAINED = ("figures", "all")
# spec field -> (its "on" flag, the settings key that turns it on, the config switch's name)
_ANALYSES = (
    ("sweep", "enabled", "rank sweep", "sweep.enabled"),
    (
        "analysis",
        "perturbation_spectrum",
        "perturbation spectrum",
        "analysis.perturbation_spectrum",
    ),
    ("rig", "enabled", "RIG", "rig.enabled"),
    ("attribution", "enabled", "attribution maps", "attribution.enabled"),
)
TURN_ON = "analysis.for_rank_trained=all"


def is_rank_trained(rank: Any, transform_apply_to: Any, train: bool) -> bool:
    """True for a run that trains on rank-transformed images (rank=k, "train" in apply_to)."""
    apply_to = (transform_apply_to,) if isinstance(transform_apply_to, str) else transform_apply_to
    return bool(train) and rank is not None and "train" in tuple(apply_to or ())


def check_for_rank_trained(value: Any) -> str:
    """analysis.for_rank_trained: figures | all (ConfigError naming key, value and the fix)."""
    if value not in FOR_RANK_TRAINED:
        raise ConfigError(
            f"analysis.for_rank_trained={value!r} is not valid: use figures (rank-trained runs "
            "compute only the clean and robust accuracy that fig-train-rank and C4 read) or all "
            "(every analysis the config enables)."
        )
    return value


def scope_analyses(settings: dict[str, Any], rank_trained: bool) -> tuple[dict[str, Any], list]:
    """Apply the rule to the built analysis settings ({"sweep": SweepSettings, "analysis":
    SpectrumSettings, "rig": ..., "attribution": ...}): returns the settings to run and the
    names of the analyses switched off (empty unless a rank-trained run has for_rank_trained
    = figures). The settings objects given are not changed (copies replace them)."""
    mode = check_for_rank_trained(getattr(settings["analysis"], "for_rank_trained", "figures"))
    if not rank_trained or mode == "all":
        return settings, []
    out, skipped = dict(settings), []
    for key, flag, name, _switch in _ANALYSES:
        if getattr(out[key], flag, False):
            out[key] = dataclasses.replace(out[key], **{flag: False})
            skipped.append(name)
    return out, skipped


def skipped_line(skipped: list[str]) -> str | None:
    """The closing line that says what a rank-trained run skipped and how to turn it on."""
    if not skipped:
        return None
    return (
        f"  skipped (rank-trained run; no figure reads them): {', '.join(skipped)}; "
        f"compute them with {TURN_ON}"
    )


def planned_work(spec, datamodule) -> int:
    """Forward passes the test and the enabled analyses of `spec` will cost (a backward pass
    counted as two forwards): clean test n_test, robust test n_robust x (attack steps + 1) x 3,
    plus analyses.work_estimate of the rank sweep, perturbation spectrum and RIG. 0 when the
    test set is not known yet (a streamed set before setup)."""
    from rankrobust.pipeline.analyses import work_estimate

    try:
        n_test = len(datamodule.test_set.labels)
    except Exception:
        return 0
    attack = spec.config["attack"].get("eval") or {}
    n_robust = n_test if spec.eval.n_robust is None else min(spec.eval.n_robust, n_test)
    work = n_test + (n_robust * ((attack.get("steps") or 1) + 1) * 3 if spec.eval_attack else 0)
    todo = {
        "rank_sweep": (spec.sweep.enabled, spec.sweep),
        "perturbation_spectrum": (
            spec.analysis.perturbation_spectrum and spec.eval_attack is not None,
            spec.analysis,
        ),
        "rig": (spec.rig.enabled, spec.rig),
    }
    for name, (enabled, settings) in todo.items():
        if enabled:
            work += work_estimate(name, settings, datamodule, attack)
    return int(work)
