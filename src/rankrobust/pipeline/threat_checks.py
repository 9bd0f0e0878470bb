"""The evaluation attack follows the model's threat model, and a zoo entry's weights exist.

`eval_attack_for_model`: a robust model loaded for evaluation (a RobustBench entry, or
model.kind=robust with model.threat) is attacked in its own norm. With the default attack
(attack=none: no training attack, PGD Linf 8/255 for the test) an L2 model gets PGD L2 at its
own eps instead (said in the log; metrics.json's eval_attack records it); an attack the user
chose in the other norm is a ConfigError (exit 2). `check_zoo_weights`: a zoo job whose weights
file is absent stops before anything is built, naming the file and how to get it there.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rankrobust.attacks import AttackSpec
from rankrobust.errors import ConfigError
from rankrobust.identity import model_kind, threat_label

log = logging.getLogger("rankrobust")

_PGD = {"linf": "pgd_linf", "l2": "pgd_l2"}


def attack_norm(spec: AttackSpec) -> str:
    """'linf' or 'l2': the norm an evaluation attack bounds."""
    if spec.name == "pgd_l2":
        return "l2"
    return str(spec.norm or "Linf").lower()


def eval_attack_for_model(cfg: DictConfig, spec: AttackSpec | None) -> AttackSpec | None:
    """``spec`` (attack.eval, validated), or PGD in the model's own norm at its eps where the
    default attack (attack=none) would attack a loaded robust model in the other norm. Raises
    ConfigError when an attack the user chose bounds another norm than the model's threat."""
    if spec is None or spec.name == "none" or cfg.get("train"):
        return spec
    declared = OmegaConf.select(cfg, "model.kind", default=None)
    if declared != "robust" and OmegaConf.select(cfg, "model.name", default=None) != "robustbench":
        return spec  # no threat model declared: nothing to follow
    kind = model_kind({"train": False, "model": OmegaConf.to_container(cfg.model, resolve=True)})
    threat = kind.threat or {}
    norm = str(threat.get("norm") or "").lower()
    if kind.kind != "robust" or norm not in _PGD or attack_norm(spec) == norm:
        return spec
    attack = OmegaConf.select(cfg, "attack.name", default=None)
    model = OmegaConf.select(cfg, "model.name_rb", default=None) or cfg.model.get("name")
    if attack in (None, "none"):  # the default test attack, not a choice: follow the model
        eps = float(threat["eps"])
        follows = dataclasses.replace(spec, name=_PGD[norm], eps=eps, step_size=eps / 4, norm=None)
        log.info("[rankrobust] %s is robust at %s: its robust accuracy is measured with %s "
                 "eps=%g (attack=none's default, PGD Linf, attacks another norm)", model,
                 threat_label(threat), follows.name, eps)  # fmt: skip
        return follows.validate()
    raise ConfigError(
        f"attack={attack} attacks in {attack_norm(spec)} (attack.eval.eps={spec.eps}), but the "
        f"model ({model}) is robust at {threat_label(threat)} ({kind.source}): its robust "
        f"accuracy would be measured in a norm it was not trained for. Use attack={_PGD[norm]} "
        f"attack.eval.eps={threat['eps']} (or attack=none, which follows the model's threat "
        "model), or declare the model's threat with model.threat={norm: ..., eps: ...}."
    )


def weights_present(path: Path) -> bool:
    """The file, or a RobustBench ensemble's first member (``<name>.pt_m0.pt``)."""
    return path.is_file() or Path(f"{path}_m0.pt").is_file()


def check_zoo_weights(zoo: dict | DictConfig | None) -> None:
    """A zoo job (config ``zoo`` block, rankrobust.launch.zoo) whose weights file is absent:
    ConfigError naming the file, and for a RobustBench entry how to fetch it elsewhere."""
    if not zoo or not zoo.get("weights"):
        return
    path = Path(str(zoo["weights"]))
    name = zoo.get("name")
    if zoo.get("dataset") == "imagenet" and str(name).startswith("Standard"):
        return  # RobustBench reads torchvision's weights (torch hub cache), never a file
    if weights_present(path):
        return
    if zoo.get("source") == "robustbench":
        ds, tm = zoo.get("dataset"), zoo.get("threat_model")
        raise ConfigError(
            f"The weights of zoo entry {name!r} (RobustBench, {ds}, {tm}) are not at {path}. "
            "On a machine with network access run python -m rankrobust.zoo.download "
            f"--model-dir models --dataset {ds} --threat-model {tm} {name} and copy "
            f"models/{ds}/{tm}/{name}.pt to {path} (MODELS= "
            "of make zoo is the folder holding <dataset>/<threat model>/<name>.pt); the other "
            "entries run on."
        )
    raise ConfigError(
        f"The checkpoint of zoo entry {name!r} is not at {path}: copy the file there, or "
        "correct its checkpoint: path in the zoo yaml (a relative path is read from the yaml's "
        "folder); the other entries run on."
    )
