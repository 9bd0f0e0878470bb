"""Many runs -> one table: `python -m rankrobust.reporting.collect <runs dir> [--out DIR]`.

Every `metrics.json` under the given folders (single runs under outputs/runs/..., multirun jobs
under outputs/multirun/..., searched recursively by run_folders.find_run_dirs: links followed,
each run once) becomes one row; a Hydra job folder (one with
a `.hydra/` folder) without a metrics.json becomes a row with status "missing", so failed,
unfinished and never-started jobs stay visible. Statuses: ok, partial (some
analyses missing, accuracies present), interrupted, failed, running, missing, invalid (an
unreadable metrics.json). A finished run that repeats a newer one of the same identity
and seed keeps its row, with `duplicate_of` naming the run kept (seeds.py: one result, never
two seeds). Writes `runs.csv` (rank sweeps flattened into `low@k` / `high@k`
columns) and `runs.json` (rank sweeps, RIG and perturbation spectra kept nested).
Reads files only (see results.py for the metrics.json contract).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rankrobust.errors import STORAGE_ERRNOS
from rankrobust.files import atomic_open, write_json
from rankrobust.identity import IDENTITY_KEYS, row_kind, run_identity
from rankrobust.reporting.seeds import duplicates
from rankrobust.results import read_metrics
from rankrobust.run_folders import FILENAME, find_run_dirs, run_folder_of

__all__ = ["collect", "collect_for_cli", "find_run_dirs", "main", "read_run", "write_table"]

# Row fields the reader sets from where the run is, never from the file (a copied run's or a
# newer version's metrics.json may hold keys of these names).
_READER_KEYS = ("run_dir", "group", "rig_npz", "schema", "command", "duplicate_of")
BASE_COLUMNS = ("run_dir", "group", "status", "error", "duplicate_of", "kind", "clean_acc",
                "robust_acc")  # fmt: skip


def _hydra_plain(run_dir: Path) -> dict | None:
    """run_dir/.hydra/config.yaml as a plain dict (None when absent or unreadable).

    Interpolations are resolved where they can be; one that cannot (e.g. `${hydra:...}`, whose
    resolver lives only inside a Hydra app) leaves the config unresolved rather than empty.
    """
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(path)
        try:
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        except Exception:  # noqa: BLE001 - an unresolvable interpolation: keep the raw values
            return OmegaConf.to_container(cfg, resolve=False)
    except Exception:  # noqa: BLE001 - a broken config.yaml: the row says so by its status
        return None


def _hydra_config(run_dir: Path) -> dict:
    """The run's identity from its Hydra config ({} when there is none)."""
    plain = _hydra_plain(run_dir)
    return run_identity(plain, _experiment(run_dir)) if plain else {}


def _experiment(run_dir: Path) -> str | None:
    """The `experiment=` override of a Hydra job (from .hydra/overrides.yaml), if any."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        item = line.strip().lstrip("-").strip().strip("'\"")
        if item.startswith(("experiment=", "+experiment=")):
            return item.split("=", 1)[1]
    return None


def _group(run_dir: Path) -> str | None:
    """The multirun sweep folder holding this job (the parent with multirun.yaml), if any."""
    for parent in run_dir.parents:
        if (parent / "multirun.yaml").is_file():
            return str(parent)
    return None


def read_run(run_dir: str | Path) -> dict:
    """One table row for a run folder (never raises: problems become status/error)."""
    run_dir = Path(run_dir)
    row: dict[str, Any] = {"run_dir": str(run_dir), "group": _group(run_dir)}
    metrics_path = run_dir / FILENAME
    if not metrics_path.is_file():
        row.update(
            status="missing",
            error="no metrics.json: the job never started or died before setup",
            config=_hydra_config(run_dir),
        )
        return _finish(row)
    try:
        metrics = read_metrics(metrics_path)
    except (ValueError, OSError) as err:  # json.JSONDecodeError is a ValueError
        where = "" if str(metrics_path) in str(err) else f"{metrics_path}: "
        row.update(status="invalid", error=f"{type(err).__name__}: {where}{err}")
        row["config"] = _hydra_config(run_dir)
        return _finish(row)
    row.update(
        {k: v for k, v in metrics.items() if k not in _READER_KEYS and not k.startswith("_")}
    )
    row["status"] = metrics.get("status", "ok")
    row["rig_npz"] = str(run_dir / "rig.npz") if (run_dir / "rig.npz").is_file() else None
    named = metrics.get("per_image")  # per_image.npz (rankrobust.runs); older runs: none
    found = run_dir / str(named) if isinstance(named, str) and named else None
    row["per_image_npz"] = str(found) if found is not None and found.is_file() else None
    if not row.get("resolved_config"):  # older runs: the composed config Hydra saved
        row["resolved_config"] = _hydra_plain(run_dir)
    return _finish(row)


def _finish(row: dict) -> dict:
    config = row.get("config") or {}
    for key in IDENTITY_KEYS:
        row[key] = config.get(key)
    row.setdefault("clean_acc", None)
    row.setdefault("robust_acc", None)
    row.setdefault("error", None)
    row.setdefault("rig_npz", None)
    row.setdefault("per_image_npz", None)
    row["duplicate_of"] = None  # set by collect: the newer run of this identity and seed
    # The one rule (identity.row_kind): declared in metrics.json, else the old attack-name rule.
    known = row.get("kind") or row["attack"] is not None
    row["kind"] = row_kind(row).kind if known else None
    row["arch"] = row.get("arch") or row.get("model")  # older files: the model name
    return row


def collect(roots: str | Path | Sequence[str | Path]) -> list[dict]:
    """One row per run folder under `roots` (see the module docstring)."""
    if isinstance(roots, str | Path):
        roots = [roots]
    rows = [read_run(d) for d in find_run_dirs(roots)]
    for dropped, kept in duplicates(rows):  # one result, not two seeds (seeds.py)
        dropped["duplicate_of"] = kept["run_dir"]
    return rows


def _flat(row: dict) -> dict:
    """The CSV form of a row: config and sweeps flattened, nested data left out."""
    flat = {k: row.get(k) for k in BASE_COLUMNS + IDENTITY_KEYS}
    if isinstance(flat.get("apply_to"), list):
        flat["apply_to"] = "+".join(flat["apply_to"])
    for phase, seconds in sorted((row.get("timings") or {}).items()):
        flat[f"time_{phase}"] = seconds
    eval_attack = row.get("eval_attack") or {}
    flat["eval_attack"] = eval_attack.get("name")
    flat["eval_eps"] = eval_attack.get("eps")
    for name, value in sorted((row.get("rig") or {}).items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"rig_{name}"] = value
    flat["rig_npz"] = row.get("rig_npz")
    for mode, accs in sorted((row.get("rank_sweep") or {}).items()):
        for k, acc in sorted(accs.items(), key=lambda kv: int(kv[0])):
            flat[f"{mode}@{k}"] = acc
    return flat


def write_table(rows: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """Write rows as out_dir/runs.csv and out_dir/runs.json; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flats = [_flat(r) for r in rows]
    columns: list[str] = []
    for f in flats:
        columns += [c for c in f if c not in columns]
    csv_path = out / "runs.csv"
    with atomic_open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns or list(BASE_COLUMNS))
        writer.writeheader()
        for f in flats:
            writer.writerow({k: "" if v is None else v for k, v in f.items()})
    json_path = out / "runs.json"
    write_json(json_path, rows, indent=2, sort_keys=True, default=str)
    return csv_path, json_path


def summary_line(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"{len(rows)} runs ({parts})" if rows else "0 runs"


def _refuse(prog: str, message: str) -> None:
    """One paragraph on stderr and exit code 2 (nothing has been written or deleted)."""
    print(f"{prog}: {message}", file=sys.stderr)
    raise SystemExit(2)


@contextlib.contextmanager
def writing(prog: str, out: str | Path) -> Iterator[None]:
    """The writes of the collect / figures / report commands: a full disk, a quota or a read-only
    folder is one paragraph and exit 2. Every file is written whole (files.py), so each file
    under `out` is the previous one or the new one, never a part."""
    try:
        yield
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            raise
        _refuse(
            prog,
            f"'{err.filename or out}' could not be written ({err.strerror or err}). Free space "
            f"or give another --out; the files under {out} are whole (each the previous one or "
            "the new one).",
        )


def collect_for_cli(roots: Sequence[str | Path], out: str | Path, prog: str) -> list[dict]:
    """The rows for the collect / figures / report commands, or exit 2 with one paragraph.

    Checked before anything is written under `out` (so existing figures and runs.csv are never
    replaced by an empty table): every runs folder exists, `out` is not a file, and at least
    one run folder was found.
    """
    missing = [str(r) for r in roots if not run_folder_of(r).exists()]
    if missing:
        _refuse(
            prog,
            f"the runs folder {', '.join(missing)} does not exist (from {Path.cwd()}). Give the "
            "folder that holds the runs (e.g. outputs, or a multirun sweep folder); nothing "
            "was written.",
        )
    if Path(out).exists() and not Path(out).is_dir():
        _refuse(
            prog,
            f"--out {out} is a file, not a folder: give a folder for the tables and figures "
            "(e.g. --out outputs/figures); nothing was written.",
        )
    rows = collect(roots)
    if not rows:
        _refuse(
            prog,
            f"no run folder (metrics.json or .hydra/) under {', '.join(map(str, roots))}; "
            f"nothing was written and nothing under {out} was changed.",
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", default=["outputs"], help="outputs or sweep folders")
    parser.add_argument("--out", default="outputs/figures", help="where runs.csv/json go")
    args = parser.parse_args(argv)
    rows = collect_for_cli(args.roots, args.out, "collect")
    with writing("collect", args.out):
        csv_path, json_path = write_table(rows, args.out)
    print(f"[collect] {summary_line(rows)} -> {csv_path}, {json_path}")
    for r in rows:
        if r["status"] != "ok":
            print(f"[collect]   {r['status']:8s} {r['run_dir']}: {r.get('error')}")
        if r["duplicate_of"]:
            print(f"[collect]   repeats  {r['run_dir']}: same identity and seed as (newer, kept) "
                  f"{r['duplicate_of']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
