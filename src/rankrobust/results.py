"""The metrics.json contract: every run writes one, every reader (collect, figures, tests) reads it.

Keys (schema 1):
    schema, status ("ok" | "failed" | "running" | "partial" | "interrupted"), error (str | null),
    clean_acc (float | null), robust_acc (float | null), eval_attack (dict | null),
    config: the run's identity (see `IDENTITY_KEYS` and `run_identity`),
    resolved_config: the whole composed config, resolved (what reproduces the run),
    timings: {phase: seconds, ..., total},
    rank_sweep (optional): {mode: {rank: accuracy}},
    rig (optional): {top4_share, median_rel_delta, ...} (rig.npz / rig.png: `FILES`),
    attribution (optional): {methods, metrics, n_images, steps, evaluations: {method: E},
        mean: {method: {metric: value}}, per_image: {method: {metric: [one per image]}},
        curves: {method: {ratios, insertion, deletion}}, mprt_layers, median_rel_delta}
        (attribution.npz / attribution.png),
    analysis_errors (optional): {analysis: error} (then status is "partial"),
    checkpoint (str | null: the weights evaluated; `last_checkpoint` for a trained run),
    run_dir (str), command (str: how to resume / rerun)

`python -m rankrobust.results status RUN_DIR` prints a folder's status (exit 0 when "ok", 1
otherwise): what the Makefile asks to skip finished stages.
"""

from __future__ import annotations

import hashlib
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
    "model.model_dir", "module.channels_last", "rig.batch_size",
    # identity keys of their own (a rank series shares one setup across its ranks)
    "rank", "transform.rank", "transform.band",
)  # fmt: skip
# Trainer settings that cut a run short (debug configs): part of its identity, so a
# shortened run is never averaged with a full one.
LIMIT_KEYS = ("fast_dev_run", "limit_train_batches", "limit_test_batches", "overfit_batches",
              "max_steps")  # fmt: skip
# analysis outputs beside metrics.json
FILES = {
    "rig_npz": "rig.npz",
    "rig_png": "rig.png",
    "attribution_npz": "attribution.npz",
    "attribution_png": "attribution.png",
}
# rig.top4_share: the share of |RIG rank attribution| in the path's ranks <= this (claim C3).
RIG_TOP_RANKS = 4


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


def resume_differences(saved: dict, new: dict) -> list[str]:
    """'key: saved -> new' for every setting in which a resumed run's config differs from the one
    its folder was started with (plumbing aside; seed and rank count): resume refuses them."""
    keep = ("seed", "rank", "transform.rank", "transform.band", "name")
    leave_out = tuple(p for p in PLUMBING if p not in keep)
    old, now = settings(saved, leave_out), settings(new, leave_out)
    return [
        f"{k}: {old.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(old) | set(now))
        if old.get(k) != now.get(k) and k != "name"  # the name follows from the rest
    ]


def setup_fingerprint(cfg: dict) -> str | None:
    """A short hash of `settings(cfg)`: two runs are seeds of one identity only when it matches."""
    if not cfg:
        return None
    text = json.dumps(_clean(settings(cfg)), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def run_status(run_dir: str | Path) -> str | None:
    """The status a run folder's metrics.json states (None: none there or unreadable).

    The one rule for "is this run finished" (status == "ok"): read raw, not validated, so a
    finished run is recognised even if another field is malformed.
    """
    try:
        return json.loads((Path(run_dir) / FILENAME).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def last_checkpoint(run_dir: str | Path, config: dict | None) -> Path:
    """Where a run's last.ckpt lives: <callbacks.last_checkpoint.dirpath>/last.ckpt, a relative
    dirpath taken inside the run folder (the one rule for the task, checks, resume, load_run)."""
    dirpath = _select(config or {}, "callbacks.last_checkpoint.dirpath") or "checkpoints"
    folder = Path(dirpath).expanduser()
    return (folder if folder.is_absolute() else Path(run_dir) / folder) / "last.ckpt"


def final_status(analysis_errors: dict | None) -> str:
    """A run that tested its model: "ok", or "partial" when an analysis failed (the one rule)."""
    return "partial" if analysis_errors else "ok"


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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_accuracies(field: str, accs: Any) -> None:
    """{rank: accuracy in [0, 1] or null (the writer's NaN)} or raise naming the entry."""
    if not isinstance(accs, dict):
        raise ValueError(f"{field} is {type(accs).__name__}, expected {{rank: accuracy}}")
    for k, acc in accs.items():
        if not str(k).lstrip("-").isdigit():
            raise ValueError(f"{field} has the rank {k!r}, expected an integer")
        if acc is not None and not (_is_number(acc) and 0.0 <= acc <= 1.0):
            raise ValueError(f"{field}.{k}={acc!r} is not an accuracy in [0, 1] (or null)")


def validate_metrics(metrics: Any) -> None:
    """Raise ValueError naming the field that is missing or malformed.

    Checked: the file holds an object; REQUIRED keys present; `config` an object with
    CONFIG_KEYS; clean_acc / robust_acc null or a number in [0, 1]; `timings`, `rig`,
    `eval_attack`, `analysis_errors` objects (or null); `rank_sweep` {mode: {rank: accuracy or
    null}} (null is how the writer stores NaN: a valid, unmeasured point).
    """
    if not isinstance(metrics, dict):
        raise ValueError(f"the file holds {type(metrics).__name__}, expected an object")
    missing = [k for k in REQUIRED if k not in metrics]
    if missing:
        raise ValueError(f"lacks {missing}")
    if not isinstance(metrics["config"], dict):
        raise ValueError(f"config is {type(metrics['config']).__name__}, expected an object")
    missing = [k for k in CONFIG_KEYS if k not in metrics["config"]]
    if missing:
        raise ValueError(f"config lacks {missing}")
    for key in ("clean_acc", "robust_acc"):
        value = metrics[key]
        if value is not None and not (_is_number(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"{key}={value!r} is not an accuracy in [0, 1]")
    for key in ("timings", "rig", "eval_attack", "analysis_errors", "perturbation_spectrum"):
        value = metrics.get(key)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{key} is {type(value).__name__}, expected an object")
    sweep = metrics.get("rank_sweep")
    if sweep is not None:
        if not isinstance(sweep, dict):
            raise ValueError(f"rank_sweep is {type(sweep).__name__}, expected {{mode: {{...}}}}")
        for mode, accs in sweep.items():
            _check_accuracies(f"rank_sweep.{mode}", accs)


def read_metrics(path: str | Path) -> dict:
    """Read and validate a metrics.json (a file or the run directory holding it).

    Rank-sweep keys come back as ints: {mode: {rank: acc}}. Raises OSError (unreadable) or
    ValueError naming the file and the malformed field (see `validate_metrics`).
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    metrics = json.loads(path.read_text())
    try:
        validate_metrics(metrics)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if metrics.get("rank_sweep"):
        metrics["rank_sweep"] = {
            mode: {int(k): v for k, v in accs.items()}
            for mode, accs in metrics["rank_sweep"].items()
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


def main(argv: list[str] | None = None) -> int:
    """`python -m rankrobust.results status RUN_DIR`: print the status; exit 0 only for ok."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "status":
        print("usage: python -m rankrobust.results status RUN_DIR", file=sys.stderr)
        return 2
    status = run_status(argv[1])
    print(status or "none")
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
