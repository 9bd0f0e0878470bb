"""The metrics.json contract: every run writes one, every reader (collect, figures, tests) reads it.

Keys (schema 1):
    schema, status ("ok" | "failed" | "running" | "partial" | "interrupted"), error (str | null),
    clean_acc (float | null), robust_acc (float | null), eval_attack (dict | null),
    config: the run's identity (see `IDENTITY_KEYS` and `run_identity`),
    resolved_config: the whole composed config, resolved (what reproduces the run),
    timings: {phase: seconds, ..., total},
    rank_sweep (optional): {mode: {rank: accuracy}},
    basis_sweep (optional): {basis: {"low" | "high": {cutoff: accuracy}, "energy": {cutoff:
        mean energy kept}}} and basis_sweep_n (images); heat_maps (optional): {"fourier":
        {freqs, error, eps, n_images}, "rank": {ranks, error, eps, n_images}},
    rig (optional): {top4_share, median_rel_delta, ...} (rig.npz / rig.png: `FILES`),
    attribution (optional): {methods, metrics, n_images, steps, evaluations: {method: E},
        mean: {method: {metric: value}}, per_image: {method: {metric: [one per image]}} (path
        methods also completeness_gap), completeness_gap: {method: {median, min, max}},
        curves: {method: {ratios, insertion, deletion}}, mprt_layers, median_rel_delta,
        rig_ranks, rig_first_share, batch_size}
        (attribution.npz / attribution.png),
    analysis_errors (optional): {analysis: error} (then status is "partial"),
    checkpoint (str | null: the weights evaluated; `last_checkpoint` for a trained run),
    run_dir (str), command (str: how to resume / rerun),
    finished_at (optional, str): when the run finished, ISO 8601 in UTC (of two runs of one
    identity and seed the reports keep the newer: reporting/seeds.py)

`python -m rankrobust.results status RUN_DIR` prints a folder's status (exit 0 when "ok", 1
otherwise): what the Makefile asks to skip finished stages.
    kind ("natural" | "robust" | "unknown"), threat ({norm, eps} | null): see `model_kind`
    (absent in older files: `row_kind` derives them from the training attack, as before),
    normalization (optional): {source, mean, std} of the evaluated model's input normaliser,
    n_classes_evaluated (optional): how many classes the test set holds,
    precision (optional): the training precision that ran (Lightning's, e.g. bf16-mixed for
    16-mixed on a CPU), n_train_used (optional): training images used (config.n_train is this
    number when dataset.n_train asked for more than the data holds),
    clean_acc_attacked (optional, float | null): clean accuracy of the n_robust images
    attacked for robust_acc (the same images), rank_sweep_clean_attacked (optional): {mode:
    {rank: accuracy}} of the images the robust rank sweep attacked,
    warnings (optional): [str], numbers that cannot be right though the run finished
    (`number_warnings`: robust accuracy above clean accuracy on the same images)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rankrobust.files import write_json
from rankrobust.identity import _select, model_kind, row_kind, run_identity
from rankrobust.run_folders import (
    FILENAME,
    _is_number,
    load_json,
    run_folder_of,
    validate_metrics,
)

SCHEMA = 1

FILES = {
    "rig_npz": "rig.npz",
    "rig_png": "rig.png",
    "attribution_npz": "attribution.npz",
    "attribution_png": "attribution.png",
    "per_image_npz": "per_image.npz",  # the per-image record (rankrobust.runs.write_per_image)
}
# rig.top4_share: the share of |RIG rank attribution| in the path's ranks <= this (claim C3).
RIG_TOP_RANKS = 4


def run_status(run_dir: str | Path) -> str | None:
    """The status a run folder's metrics.json states (None: none there or unreadable).

    The one rule for "is this run finished" (status == "ok"): read raw, not validated, so a
    finished run is recognised even if another field is malformed.
    """
    try:
        return load_json(run_folder_of(run_dir) / FILENAME).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def last_checkpoint(run_dir: str | Path, config: dict | None) -> Path:
    """Where a run's last.ckpt lives: <callbacks.last_checkpoint.dirpath>/last.ckpt, a relative
    dirpath taken inside the run folder (the one rule for the task, checks, resume, load_run)."""
    dirpath = _select(config or {}, "callbacks.last_checkpoint.dirpath") or "checkpoints"
    folder = Path(dirpath).expanduser()
    return (folder if folder.is_absolute() else Path(run_dir) / folder) / "last.ckpt"


def now_utc() -> str:
    """The time now, ISO 8601 in UTC to the second (metrics.json's `finished_at`)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def final_status(analysis_errors: dict | None) -> str:
    """A run that tested its model: "ok", or "partial" when an analysis failed (the one rule)."""
    return "partial" if analysis_errors else "ok"


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
    """Write run_dir/metrics.json atomically (files.py: a reader or a kill never sees a half-written
    file; a full disk raises an OSError naming metrics.json and leaves the old one)."""
    record = _clean({"schema": SCHEMA, **metrics})
    return write_json(Path(run_dir) / FILENAME, record, indent=2, sort_keys=True)


def read_metrics(path: str | Path) -> dict:
    """Read and validate a metrics.json (a file or the run directory holding it).

    Rank-sweep and basis-sweep keys come back as ints: {mode: {rank: acc}}. Raises OSError
    (unreadable) or ValueError naming the file and the malformed field (see `validate_metrics`).
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    metrics = load_json(path)
    try:
        validate_metrics(metrics)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    for field in ("rank_sweep", "rank_sweep_clean_attacked"):
        if metrics.get(field):
            metrics[field] = {
                mode: {int(k): v for k, v in accs.items()} for mode, accs in metrics[field].items()
            }
    if metrics.get("basis_sweep"):
        metrics["basis_sweep"] = {
            basis: {part: {int(k): v for k, v in vals.items()} for part, vals in parts.items()}
            for basis, parts in metrics["basis_sweep"].items()
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
        **({"zoo": dict(config["zoo"])} if config.get("zoo") else {}),  # a zoo job's entry
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


# An attack can only add errors: robust accuracy above the clean accuracy of the same images
# means the attack did not work on this model (gradient masking), not that it is robust.
GRADIENT_MASKING = (
    "gradient masking suspected: an attack that leaves more images correct than no attack is "
    "not working on this model. Evaluate with AutoAttack (attack=autoattack) and check the "
    "attack's gradients (Croce & Hein, https://github.com/fra31/auto-attack/issues/45)"
)


def number_warnings(metrics: dict) -> list[str]:
    """The one rule for a finished run's numbers that cannot be right: robust accuracy above the
    clean accuracy of the same images, for the test (`clean_acc_attacked`, or `clean_acc` when
    every test image was attacked) and per rank of the robust rank sweep. One line each, with
    `GRADIENT_MASKING`'s advice; [] when nothing is wrong or nothing can be compared."""
    out = []
    robust, clean = metrics.get("robust_acc"), metrics.get("clean_acc_attacked")
    n, n_test = metrics.get("n_robust"), metrics.get("n_test")
    if clean is None and n is not None and n == n_test:
        clean = metrics.get("clean_acc")
    if _is_number(robust) and _is_number(clean) and robust > clean:
        out.append(
            f"robust accuracy {_pct(robust)} is above the clean accuracy {_pct(clean)} of the "
            f"same {n if n is not None else '?'} test images: {GRADIENT_MASKING}"
        )
    sweep = metrics.get("rank_sweep") or {}
    for mode, clean_k in sorted((metrics.get("rank_sweep_clean_attacked") or {}).items()):
        robust_k = sweep.get(f"{mode}_robust") or {}
        above = [
            f"k={k}: {_pct(robust_k[k])} > {_pct(c)}"
            for k, c in sorted(clean_k.items(), key=lambda kv: int(kv[0]))
            if _is_number(c) and _is_number(robust_k.get(k)) and robust_k[k] > c
        ]
        if above:
            out.append(
                f"rank sweep {mode}: robust accuracy above the clean accuracy of the same images "
                f"({', '.join(above)}): {GRADIENT_MASKING}"
            )
    return out


def _clean_of_attacked(metrics: dict) -> str:
    """' (clean on those: 91.0%)' when the attacked images are a subset of the test set."""
    clean = metrics.get("clean_acc_attacked")
    if clean is None or metrics.get("n_robust") == metrics.get("n_test"):
        return ""
    return f" (clean on those: {_pct(clean)})"


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
        f"{metrics.get('n_robust')}{_clean_of_attacked(metrics)} (eval precision "
        f"{metrics.get('eval_precision')})",
        f"  model: {model_line(metrics)}",
    ]
    if metrics.get("n_classes_evaluated") is not None:
        lines.append(f"  classes evaluated: {metrics['n_classes_evaluated']}")
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
    for warning in metrics.get("warnings") or []:
        lines.append(f"  WARNING: {warning}")
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
