"""A run's identity and kind: what it trained and evaluated.

- `run_identity(cfg)`: the `IDENTITY_KEYS` of a run from its resolved config, with `setup`, a
  fingerprint of every setting but the seed and `PLUMBING`; runs are seeds of one identity only
  when all of it matches (reporting/claims/grouping.py);
- `model_kind(cfg)`: the one rule for "natural", "robust" (and its threat model) or "unknown".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

# A run's identity: what it trained and evaluated. The one definition, read by the task (which
# writes it), collect (one column each) and claims (grouping: everything but the seed).
IDENTITY_KEYS = (
    "dataset",
    "model",
    "attack",
    "rank",
    "transform_mode",
    "transform_basis",
    "band",
    "apply_to",
    "seed",
    "train",
    "max_epochs",
    "n_train",
    "weights",
    "limits",
    "experiment",
    "name",
    "setup",
    "kind",
    "threat",
    "arch",
)
# Settings that do not change what is trained or how it is evaluated (paths, logging, machine,
# memory layout, batch sizes of evaluations): left out of a run's `setup` fingerprint. Dotted
# prefixes of the resolved config; the seed is left out too (runs differing only in it are seeds
# of one identity). dataset.root is the data's identity only for image folders: claims key
# those by their root separately.
PLUMBING = (
    "hydra", "logger", "launcher", "callbacks", "seed", "name", "resume", "deterministic",
    "debug", "experiment", "dataset.root", "dataset.download", "dataset.local_copy",
    "dataset.num_workers", "dataset.eval_batch_size", "dataset.on_device", "dataset.in_memory",
    "trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy",
    "trainer.enable_progress_bar", "trainer.log_every_n_steps", "trainer.default_root_dir",
    "trainer.enable_checkpointing", "trainer.enable_model_summary", "trainer.profiler",
    "model.model_dir", "module.channels_last", "rig.batch_size", "zoo",
    # identity keys of their own (a rank series shares one setup across its ranks)
    "rank", "transform.rank", "transform.band",
)  # fmt: skip
# Trainer settings that cut a run short (debug configs): part of its identity, so a
# shortened run is never averaged with a full one.
LIMIT_KEYS = ("fast_dev_run", "limit_train_batches", "limit_test_batches", "overfit_batches",
              "max_steps")  # fmt: skip
# analysis outputs beside metrics.json


def _select(cfg: dict, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


RANDOM_WEIGHTS = "random"  # model.checkpoint=random: evaluate untrained weights on purpose


def model_weights(cfg: dict) -> str | None:
    """Where the evaluated weights come from (None: trained in this run from scratch)."""
    model = cfg.get("model") or {}
    if model.get("checkpoint"):
        return f"checkpoint:{model['checkpoint']}"
    if model.get("name") == "robustbench":
        return (
            f"robustbench:{model.get('rb_dataset')}/{model.get('threat_model')}/"
            f"{model.get('name_rb')}"
        )
    if model.get("pretrained") or model.get("weights"):
        return f"torchvision:{model.get('pretrained') or model.get('weights')}"
    return None


def run_identity(cfg: dict, experiment: str | None = None) -> dict:
    """The identity of a run from its composed config (a plain, resolved dict) and the name of
    the experiment preset it used, if any."""
    transform = cfg.get("transform") or {}
    kind = model_kind(cfg)
    return {
        "dataset": _select(cfg, "dataset.name"),
        "model": _select(cfg, "model.name"),
        "attack": _select(cfg, "attack.name"),
        # a band run uses transform.band, not rank: a rank it ignores is not its identity
        "rank": None if transform.get("mode") == "band" else cfg.get("rank"),
        "transform_mode": transform.get("mode"),
        # None for the SVD (so runs from before transform.basis existed keep their identity)
        "transform_basis": None if transform.get("basis") in (None, "svd") else transform["basis"],
        "band": transform.get("band") if transform.get("mode") == "band" else None,
        "apply_to": transform.get("apply_to"),
        "seed": cfg.get("seed"),
        "train": cfg.get("train"),
        "max_epochs": _select(cfg, "trainer.max_epochs"),
        "n_train": _select(cfg, "dataset.n_train"),
        "weights": model_weights(cfg),
        "limits": _limits(cfg.get("trainer") or {}),
        "experiment": experiment,
        "name": cfg.get("name"),
        "setup": setup_fingerprint(cfg),
        "kind": kind.kind,
        "threat": kind.threat_label,
        "arch": arch_family(cfg),
    }


def _limits(trainer: dict) -> str | None:
    """'limit_train_batches=2,...' for the trainer settings that shorten a run, else None.

    Lightning reads an int as a count of batches and a float as a fraction: 1 is one batch, 1.0
    the whole epoch (so the two are told apart by type, not by value).
    """
    unset = {"fast_dev_run": False, "overfit_batches": 0.0, "max_steps": -1}
    cut = []
    for k in LIMIT_KEYS:
        value = trainer.get(k)
        default = unset.get(k, 1.0)
        if value is None or (value == default and type(value) is type(default)):
            continue
        cut.append(f"{k}={value}")
    return ",".join(cut) or None


def settings(cfg: dict, leave_out: tuple[str, ...] = PLUMBING) -> dict[str, Any]:
    """The resolved config flattened to {dotted key: value}, minus `leave_out` (PLUMBING): what a
    run's setup fingerprint covers (a config's `_target_`s are kept: they name what was built)."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif not any(prefix == p or prefix.startswith(p + ".") for p in leave_out):
            flat[prefix] = node

    walk(cfg, "")
    return flat


def setup_fingerprint(cfg: dict) -> str | None:
    """A short hash of `settings(cfg)`: two runs are seeds of one identity only when it matches."""
    if not cfg:
        return None
    text = json.dumps(settings(cfg), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


KINDS = ("natural", "robust", "unknown")
NORMS = ("linf", "l2")
# The norm of each training attack of rankrobust.attacks.
_ATTACK_NORMS = {"fgsm_rs": "linf", "pgd_linf": "linf", "fgsm": "linf", "pgd_l2": "l2"}
# RobustBench leaderboards' threat models: {(dataset, threat_model): eps}.
ROBUSTBENCH_EPS = {
    ("cifar10", "Linf"): 8 / 255,
    ("cifar10", "L2"): 0.5,
    ("cifar100", "Linf"): 8 / 255,
    ("cifar100", "L2"): 0.5,
    ("imagenet", "Linf"): 4 / 255,
}


@dataclass(frozen=True)
class Kind:
    """What kind of model a run evaluated: "natural", "robust" (with its threat model) or
    "unknown" (loaded weights nobody declared), and where that came from (`source`).

    trained: whether the run trained the model (None: not known, older rows); weights: where
    weights were loaded from before that (`model_weights`: "checkpoint:<path>", "robustbench:…",
    "torchvision:…"; None: none loaded, the network starts from its random initialisation).
    """

    kind: str
    threat: dict | None = None  # {"norm": "linf" | "l2", "eps": float} for robust models
    source: str = ""  # "training attack", "model.kind", "RobustBench entry", "attack name"
    trained: bool | None = None
    weights: str | None = None

    @property
    def threat_label(self) -> str | None:
        """'Linf 4/255', 'L2 0.5' (eps in 255ths when it is a whole number of them), or None."""
        return threat_label(self.threat)

    @property
    def description(self) -> str:
        """'natural training', 'adversarial training (Linf 8/255)' (', from loaded weights' when
        training started from a file's), 'loaded weights (robust, Linf 4/255)', 'loaded weights
        (kind unknown: set model.kind)', 'random weights (model.checkpoint=random)'. "loaded
        weights" is said only of weights read from a file (or RobustBench's, torchvision's)."""
        random = self.weights == f"checkpoint:{RANDOM_WEIGHTS}"
        trained = self.trained
        if trained is None:  # rows without the train flag: as their kind's source says
            trained = self.source in ("training attack", "attack name")
        if trained:
            how = f" ({self.threat_label})" if self.threat_label else ""
            line = "natural training" if self.kind == "natural" else f"adversarial training{how}"
            return line + (", from loaded weights" if self.weights and not random else "")
        if random:
            return f"random weights (model.checkpoint={RANDOM_WEIGHTS})"
        if self.kind == "unknown":
            return "loaded weights (kind unknown: set model.kind=natural|robust)"
        how = f", {self.threat_label}" if self.threat_label else ""
        return f"loaded weights ({self.kind}{how})"


def threat_label(threat: dict | None) -> str | None:
    if not threat or not threat.get("norm"):
        return None
    norm = {"linf": "Linf", "l2": "L2"}.get(str(threat["norm"]).lower(), str(threat["norm"]))
    eps = threat.get("eps")
    if eps is None:
        return norm
    in_255 = float(eps) * 255
    if norm == "Linf" and abs(in_255 - round(in_255)) < 1e-3 and round(in_255) > 0:
        return f"{norm} {round(in_255)}/255"
    return f"{norm} {float(eps):g}"


def _threat(norm: Any, eps: Any) -> dict | None:
    if norm is None:
        return None
    return {"norm": str(norm).lower(), "eps": None if eps is None else float(eps)}


def _zero(eps: Any) -> bool:
    """A budget of exactly 0 (no attack at all); None (not recorded) is not zero."""
    return isinstance(eps, int | float) and not isinstance(eps, bool) and eps == 0


def model_kind(cfg: dict) -> Kind:
    """The one rule for "what kind of model is this run" (`_declared_kind`), with whether the
    run trained it and where its weights were loaded from (`model_weights`)."""
    train = cfg.get("train", True)
    trained = bool(train or train is None)
    return replace(_declared_kind(cfg), trained=trained, weights=model_weights(cfg))


def _declared_kind(cfg: dict) -> Kind:
    """The one rule for "what kind of model is this run" from its resolved config (plain dict).

    - Trained in the run (``train`` true): robust when trained with an attack
      (``attack.train``, threat model = that attack's norm and eps), natural otherwise (an
      attack with eps 0 changes no image: natural, whatever its name).
    - Loaded weights (``train`` false): as declared by ``model.kind`` (natural | robust |
      unknown) and ``model.threat`` ({norm: linf | l2, eps}); undeclared RobustBench entries
      are natural for ``Standard*`` and robust at their leaderboard's threat model otherwise;
      anything else undeclared is "unknown" (the report names such runs).
    """
    model = cfg.get("model") or {}
    attack = cfg.get("attack") or {}
    train = cfg.get("train", True)
    if train or train is None:
        if not isinstance(attack, dict) or "train" not in attack:  # a config without attack.train
            robust = attack.get("name") not in (None, "none", "null", "") if attack else False
            return Kind("robust" if robust else "natural", None, "attack name")
        spec = attack.get("train")
        name = (spec or {}).get("name") or attack.get("name")
        if not spec or name == "none" or _zero(spec.get("eps")):  # an attack that changes nothing
            return Kind("natural", None, "training attack")
        return Kind("robust", _threat(_ATTACK_NORMS.get(name, name), spec.get("eps")),
                    "training attack")  # fmt: skip
    declared = model.get("kind")
    threat = model.get("threat") or None
    if declared:
        threat = _threat(threat.get("norm"), threat.get("eps")) if threat else None
        return Kind(str(declared), threat if declared == "robust" else None, "model.kind")
    if model.get("name") == "robustbench" and model.get("name_rb"):
        if str(model["name_rb"]).startswith("Standard"):
            return Kind("natural", None, "RobustBench entry")
        ds, tm = model.get("rb_dataset", "cifar10"), model.get("threat_model", "Linf")
        eps = ROBUSTBENCH_EPS.get((ds, tm))
        norm = str(tm).lower() if str(tm).lower() in NORMS else str(tm)
        return Kind("robust", _threat(norm, eps), "RobustBench entry")
    return Kind("unknown", None, "model.kind")


def arch_family(cfg: dict) -> str | None:
    """The architecture a natural / robust pair must share: ``model.arch`` when set (a
    torchvision architecture, or declared for a loaded model), a RobustBench entry's
    leaderboard ("robustbench:cifar10"), else the model name."""
    model = cfg.get("model") or {}
    if model.get("arch"):
        return str(model["arch"])
    if model.get("name") == "robustbench":
        return f"robustbench:{model.get('rb_dataset', 'cifar10')}"
    return model.get("name")


def row_kind(row: dict) -> Kind:
    """`_row_kind`, with the run's train flag and weights from its identity (else from its
    resolved config; unknown for rows with neither)."""
    config, resolved = row.get("config") or {}, row.get("resolved_config") or {}
    train = config.get("train", resolved.get("train"))
    weights = config["weights"] if "weights" in config else model_weights(resolved)
    return replace(_row_kind(row), trained=None if train is None else bool(train), weights=weights)


def _row_kind(row: dict) -> Kind:
    """A metrics.json (or collect row)'s kind: its own fields (written since `model_kind`),
    else, for older files, the attack name as before: robust unless none."""
    if row.get("kind"):
        threat = row.get("threat") if isinstance(row.get("threat"), dict) else None
        if row["kind"] == "robust" and threat and _zero(threat.get("eps")):
            return Kind("natural", None, "metrics.json")  # trained "robust" at eps 0: natural
        return Kind(row["kind"], threat, "metrics.json")
    config = row.get("config") or {}
    if config.get("kind"):
        return Kind(config["kind"], None, "metrics.json")
    attack = config.get("attack", row.get("attack"))
    if attack is None:
        return Kind("unknown", None, "attack name")
    robust = attack not in ("none", "null", "")
    return Kind("robust" if robust else "natural", None, "attack name")


def is_robust(attack: Any) -> bool:
    """Deprecated: the attack-name rule of old files; use `model_kind` / `row_kind`."""
    return attack not in (None, "none", "null", "")
