"""The metrics.json contract: every run writes one, every reader (collect, figures, tests) reads it.

Keys (schema 1):
    schema, status ("ok" | "failed" | "running" | "partial" | "interrupted"), error (str | null),
    clean_acc (float | null), robust_acc (float | null), eval_attack (dict | null),
    config: the run's identity, {IDENTITY_KEYS} (see `run_identity`),
    resolved_config: the whole composed config, resolved (what reproduces the run),
    timings: {phase: seconds, ..., total},
    rank_sweep (optional): {mode: {rank: accuracy}},
    basis_sweep (optional): {basis: {"low" | "high": {cutoff: accuracy}, "energy": {cutoff:
        mean energy kept}}} and basis_sweep_n (images); heat_maps (optional): {"fourier":
        {freqs, error, eps, n_images}, "rank": {ranks, error, eps, n_images}},
    rig (optional): {top4_share, median_rel_delta, ...},
    files (optional): {name: file name in the run folder}, e.g. rig.npz, rig.png,
    checkpoint (str | null), run_dir (str), command (str: how to resume / rerun)
"""

from __future__ import annotations

import json
import math
import os
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
    return {
        "dataset": _select(cfg, "dataset.name"),
        "model": _select(cfg, "model.name"),
        "attack": _select(cfg, "attack.name"),
        "rank": cfg.get("rank"),
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


def is_robust(attack: Any) -> bool:
    """A run is "robust" when it was trained with an attack (attack name other than none)."""
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

    Rank-sweep and basis-sweep keys come back as ints: {mode: {rank: acc}}.
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
    if metrics.get("basis_sweep"):
        metrics["basis_sweep"] = {
            basis: {part: {int(k): v for k, v in vals.items()} for part, vals in parts.items()}
            for basis, parts in metrics["basis_sweep"].items()
        }
    return metrics


def base_record(config: dict, run_dir: str | Path, experiment: str | None, command: str) -> dict:
    """The fields every metrics.json has from the start, whatever happens to the run."""
    return {
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
    ]
    for mode, accs in sorted((metrics.get("rank_sweep") or {}).items()):
        ks = sorted(accs, key=int)
        shown = [k for k in ks if int(k) in (1, 2, 4, 8, 16, 32, 64, 128, 224)] or ks
        glance = "  ".join(f"k={k}: {_pct(accs[k])}" for k in shown)
        lines.append(f"  rank sweep {mode:11s} {glance}")
    for basis, parts in sorted((metrics.get("basis_sweep") or {}).items()):
        low, energy = parts.get("low") or {}, parts.get("energy") or {}
        glance = "  ".join(f"k={k}: {_pct(low[k])} (e {energy.get(k, 0):.3f})" for k in low)
        lines.append(f"  {basis} low-pass {glance}")
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
