"""The metrics.json contract: every run writes one, every reader (collect, figures, tests) reads it.

Keys (schema 1):
    schema, status ("ok" | "failed" | "running" | "partial" | "interrupted"), error (str | null),
    clean_acc (float | null), robust_acc (float | null), eval_attack (dict | null),
    config: the run's identity, {IDENTITY_KEYS} (see `run_identity`),
    resolved_config: the whole composed config, resolved (what reproduces the run),
    timings: {phase: seconds, ..., total},
    rank_sweep (optional): {mode: {rank: accuracy}},
    rig (optional): {top4_share, median_rel_delta, ...},
    files (optional): {name: file name in the run folder}, e.g. rig.npz, rig.png,
    checkpoint (str | null), run_dir (str), command (str: how to resume / rerun),
    kind ("natural" | "robust" | "unknown"), threat ({norm, eps} | null): see `model_kind`
    (absent in older files: `row_kind` derives them from the training attack, as before),
    normalization (optional): {source, mean, std} of the evaluated model's input normaliser,
    n_classes_evaluated (optional): how many classes the test set holds
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = 1
FILENAME = "metrics.json"
REQUIRED = ("schema", "status", "clean_acc", "robust_acc", "config", "timings")
CONFIG_KEYS = ("dataset", "model", "attack", "rank", "seed")

# A run's identity: what it trained and evaluated. The one definition, read by the task (which
# writes it), collect (one column each) and claims (grouping: everything but the seed).
IDENTITY_KEYS = (
    "dataset",
    "model",
    "attack",
    "rank",
    "transform_mode",
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
    "kind",
    "threat",
    "arch",
)
# Trainer settings that cut a run short (debug configs): part of its identity, so a
# shortened run is never averaged with a full one.
LIMIT_KEYS = ("fast_dev_run", "limit_train_batches", "limit_test_batches", "overfit_batches",
              "max_steps")  # fmt: skip
FILES = {"rig_npz": "rig.npz", "rig_png": "rig.png"}  # analysis outputs beside metrics.json


def _select(cfg: dict, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


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
        "rank": cfg.get("rank"),
        "transform_mode": transform.get("mode"),
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
        "kind": kind.kind,
        "threat": kind.threat_label,
        "arch": arch_family(cfg),
    }


def _limits(trainer: dict) -> str | None:
    """'limit_train_batches=2,...' for the trainer settings that shorten a run, else None."""
    unset = {"fast_dev_run": False, "overfit_batches": 0.0, "max_steps": -1}
    cut = [
        f"{k}={trainer[k]}"
        for k in LIMIT_KEYS
        if trainer.get(k) is not None and trainer[k] not in (unset.get(k, 1.0), 1)
    ]
    return ",".join(cut) or None


def run_status(run_dir: str | Path) -> str | None:
    """The status a run folder's metrics.json states (None: none there or unreadable).

    The one rule for "is this run finished" (status == "ok"): read raw, not validated, so a
    finished run is recognised even if another field is malformed.
    """
    try:
        return json.loads((Path(run_dir) / FILENAME).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


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
    "unknown" (loaded weights nobody declared), and where that came from (`source`)."""

    kind: str
    threat: dict | None = None  # {"norm": "linf" | "l2", "eps": float} for robust models
    source: str = ""  # "training attack", "model.kind", "RobustBench entry", "attack name"

    @property
    def threat_label(self) -> str | None:
        """'Linf 4/255', 'L2 0.5' (eps in 255ths when it is a whole number of them), or None."""
        return threat_label(self.threat)

    @property
    def description(self) -> str:
        """'natural training', 'adversarial training (Linf 8/255)', 'loaded weights (robust,
        Linf 4/255)', 'loaded weights (kind unknown: set model.kind)'."""
        if self.source == "training attack" or self.source == "attack name":
            how = f" ({self.threat_label})" if self.threat_label else ""
            return "natural training" if self.kind == "natural" else f"adversarial training{how}"
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


def model_kind(cfg: dict) -> Kind:
    """The one rule for "what kind of model is this run" from its resolved config (plain dict).

    - Trained in the run (``train`` true): robust when trained with an attack
      (``attack.train``, threat model = that attack's norm and eps), natural otherwise.
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
        if not spec:
            return Kind("natural", None, "training attack")
        name = spec.get("name") or attack.get("name")
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
    """A metrics.json (or collect row)'s kind: its own fields (written since `model_kind`),
    else, for older files, the attack name as before: robust unless none."""
    if row.get("kind"):
        return Kind(row["kind"], row.get("threat") if isinstance(row.get("threat"), dict)
                    else None, "metrics.json")  # fmt: skip
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


def _clean(obj: Any) -> Any:
    """JSON-safe copy: tensors and numpy scalars to floats, NaN to null, dict keys to str."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_metrics(run_dir: str | Path, metrics: dict) -> Path:
    """Write run_dir/metrics.json atomically (a reader never sees a half-written file)."""
    path = Path(run_dir) / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_clean({"schema": SCHEMA, **metrics}), indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def validate_metrics(metrics: dict) -> None:
    """Raise ValueError naming what is missing or malformed."""
    missing = [k for k in REQUIRED if k not in metrics]
    if missing:
        raise ValueError(f"metrics.json lacks {missing}")
    missing = [k for k in CONFIG_KEYS if k not in metrics["config"]]
    if missing:
        raise ValueError(f"metrics.json config lacks {missing}")
    for key in ("clean_acc", "robust_acc"):
        value = metrics[key]
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"metrics.json {key}={value} is not an accuracy in [0, 1]")


def read_metrics(path: str | Path) -> dict:
    """Read and validate a metrics.json (a file or the run directory holding it).

    Rank-sweep keys come back as ints: {mode: {rank: acc}}.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    metrics = json.loads(path.read_text())
    validate_metrics(metrics)
    if metrics.get("rank_sweep"):
        metrics["rank_sweep"] = {
            mode: {int(k): v for k, v in accs.items()}
            for mode, accs in metrics["rank_sweep"].items()
        }
    return metrics


def base_record(config: dict, run_dir: str | Path, experiment: str | None, command: str) -> dict:
    """The fields every metrics.json has from the start, whatever happens to the run."""
    kind = model_kind(config)
    return {
        "kind": kind.kind,
        "threat": kind.threat,
        "status": "running",
        "error": None,
        "clean_acc": None,
        "robust_acc": None,
        "config": run_identity(config, experiment),
        "resolved_config": config,
        "run_dir": str(run_dir),
        "command": command,
        "timings": {},
    }


def model_line(metrics: dict) -> str:
    """'resnet50, loaded weights (robust, Linf 4/255); input normalised with the checkpoint's
    mean/std (MadryLab)' for the closing lines."""
    ident = metrics.get("config") or {}
    line = f"{ident.get('arch') or ident.get('model')}, {row_kind(metrics).description}"
    norm = metrics.get("normalization") or {}
    if norm.get("source"):
        line += f"; input normalisation: {norm['source']}"
        if norm.get("mean") is not None:
            mean = ", ".join(f"{m:.3f}" for m in norm["mean"])
            std = ", ".join(f"{v:.3f}" for v in norm["std"])
            line += f" (mean {mean}; std {std})"
    return line


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def closing_lines(metrics: dict, wandb_dir: str | None = None) -> list[str]:
    """What a finished run found and where it is: the lines printed at the end of a run."""
    run_dir = Path(metrics["run_dir"])
    ident = metrics.get("config") or {}
    lines = [
        "",
        f"[rankrobust] {metrics.get('status')}: {ident.get('name')} "
        f"(seed {ident.get('seed')}) in {metrics.get('timings', {}).get('total', 0):.0f} s",
        f"  clean accuracy  {_pct(metrics.get('clean_acc'))} on {metrics.get('n_test')} test "
        f"images; robust accuracy {_pct(metrics.get('robust_acc'))} on "
        f"{metrics.get('n_robust')} (eval precision {metrics.get('eval_precision')})",
        f"  model: {model_line(metrics)}",
    ]
    if metrics.get("n_classes_evaluated") is not None:
        lines.append(f"  classes evaluated: {metrics['n_classes_evaluated']}")
    for mode, accs in sorted((metrics.get("rank_sweep") or {}).items()):
        ks = sorted(accs, key=int)
        shown = [k for k in ks if int(k) in (1, 2, 4, 8, 16, 32, 64, 128, 224)] or ks
        glance = "  ".join(f"k={k}: {_pct(accs[k])}" for k in shown)
        lines.append(f"  rank sweep {mode:11s} {glance}")
    rig = metrics.get("rig")
    if rig:
        lines.append(
            f"  RIG: {_pct(rig.get('top4_share'))} of the attribution in ranks <= 4; "
            f"{run_dir / FILES['rig_png']}"
        )
    for name, error in (metrics.get("analysis_errors") or {}).items():
        lines.append(f"  analysis {name} FAILED: {error}")
    lines.append(f"  results: {run_dir / FILENAME}")
    if wandb_dir:
        lines.append(f"  W&B run: {wandb_dir} (upload: make wandb-sync)")
    lines.append(f"  next: make figures RUNS={run_dir}")
    return lines
