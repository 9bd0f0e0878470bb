"""Seeds are seeds: which runs of the table are distinct results.

A run's *training identity* is every `IDENTITY_KEYS` field but seed, run name and experiment
preset (an image_folder dataset counts with its root); runs of one identity are averaged as
seeds (reporting/claims/grouping.py). Two usable runs (status ok / partial) of one identity and
one seed are ONE result, never two seeds: a sweep reordered into the same folder (`rank=8,1`
after `rank=1,8`) retrains the seed-0 configuration in another job folder, and a copied run
folder repeats one. Of such runs the newest is kept: by `finished_at` in metrics.json, else the
file's modification time, then the folder's path (so the choice never depends on the order the
runs were found). `duplicates` is the one rule; collect marks the dropped rows
(`duplicate_of`), the claims leave them out (grouping.usable) and report.md names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rankrobust.identity import IDENTITY_KEYS, row_kind
from rankrobust.run_folders import FILENAME

__all__ = ["GROUP_KEYS", "USABLE", "data_key", "duplicates", "result_key", "training_identity"]

USABLE = ("ok", "partial")
GROUP_KEYS = tuple(k for k in IDENTITY_KEYS if k not in ("seed", "name", "experiment"))


def resolved(row: dict, *path: str) -> Any:
    """A value of the row's resolved config (None when absent)."""
    node: Any = row.get("resolved_config") or {}
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def data_key(row: dict) -> str | None:
    """The dataset of a run; an image_folder counts with its root (two copies differ)."""
    name = row.get("dataset")
    root = resolved(row, "dataset", "root")
    return f"{name}:{root}" if name == "image_folder" and root else name


def training_identity(row: dict) -> dict:
    """The `GROUP_KEYS` of a run: what its seeds share."""
    ident = {k: row.get(k) for k in GROUP_KEYS}
    ident["dataset"] = data_key(row)
    ident["kind"] = row.get("kind") or row_kind(row).kind
    ident["arch"] = row.get("arch") or row.get("model")
    return ident


def result_key(row: dict) -> tuple[str, ...]:
    """A result's key: its training identity and its seed."""
    ident = training_identity(row)
    return (*(str(ident[k]) for k in GROUP_KEYS), str(row.get("seed")))


def _when(row: dict) -> tuple[float, float, str]:
    """How new a run is: its finish time (metrics.json `finished_at`, else the file's
    modification time), the modification time, then its folder (a stable tie-break)."""
    where = str(row.get("run_dir") or "")
    try:
        mtime = (Path(where) / FILENAME).stat().st_mtime if where else 0.0
    except OSError:
        mtime = 0.0
    finished = mtime
    stamp = row.get("finished_at")
    if isinstance(stamp, str):
        try:
            finished = datetime.fromisoformat(stamp).timestamp()
        except ValueError:  # an unreadable stamp: the file's time decides
            pass
    return finished, mtime, where


def duplicates(rows: Sequence[dict]) -> list[tuple[dict, dict]]:
    """(dropped, kept) for every usable run that repeats a newer usable run of the same
    identity and seed; empty when every result is distinct."""
    found: dict[tuple[str, ...], list[dict]] = {}
    for r in rows:
        if r.get("status") in USABLE:
            found.setdefault(result_key(r), []).append(r)
    out = []
    for same in found.values():
        if len(same) > 1:
            kept = max(same, key=_when)
            out += [(r, kept) for r in same if r is not kept]
    return out
