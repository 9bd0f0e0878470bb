"""Run rows (reporting/collect.py) -> one leaderboard entry per model, and its CSV.

A zoo job's metrics.json carries a top-level ``zoo`` object (the entry it evaluated: name,
source, dataset, threat_model, architecture, kind, threat, clean_acc_reported,
autoattack_acc_reported, venue, link, weights; docs/leaderboard.md). An ordinary run has none:
its name, data set, kind and threat model come from its identity (identity.py) and its reported
accuracies are null. Accuracies are fractions in [0, 1]; ``kept@k`` is the share of clean
accuracy kept on L_k(x): ``low@k / clean_acc`` (null when either is unknown or clean_acc is 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rankrobust.identity import threat_label
from rankrobust.reporting.seeds import USABLE  # runs whose numbers are read: ok, partial

# The model's fields, in the table's order; the rank columns (low@k, high@k, kept@k for every
# measured k) go between FIRST and LAST.
FIRST = (
    "name", "dataset", "threat_model", "architecture", "kind", "status", "clean_acc",
    "clean_acc_reported", "autoattack_acc", "robust_acc",
)  # fmt: skip
LAST = ("rig_top4_share", "n_images", "why", "weights", "threat", "source", "venue", "link",
        "run_dir")  # fmt: skip
RANK_MODES = ("low", "high", "kept")
NORM_NAMES = {"linf": "Linf", "l2": "L2"}


def _number(value: Any) -> float | None:
    """A finite float, or None for null, NaN, text and booleans."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _zoo(row: dict) -> dict:
    zoo = row.get("zoo")
    return zoo if isinstance(zoo, dict) else {}


def _threat_model(row: dict, zoo: dict) -> str | None:
    """The zoo entry's threat model; for an ordinary run its norm (Linf, L2), "none" for a
    natural model, None when not known."""
    if zoo.get("threat_model"):
        return str(zoo["threat_model"])
    if row.get("kind") == "natural":
        return "none"
    label = row.get("threat")  # identity's label: 'Linf 8/255', 'L2 0.5'
    if isinstance(label, str) and label:
        norm = label.split()[0]
        return NORM_NAMES.get(norm.lower(), norm)
    return None


def _name(row: dict, zoo: dict) -> str:
    """The zoo entry's name, else the run's name (config `name`), else its folder's (a job that
    never wrote metrics.json: the zoo names its job folders by their entry)."""
    for value in (zoo.get("name"), row.get("name")):
        if isinstance(value, str) and value:
            return value
    return Path(str(row.get("run_dir") or "run")).name


def _weights(row: dict, zoo: dict) -> str | None:
    """The weights file of the entry, else where the run loaded weights from, else its own
    checkpoint (a run that trained its model)."""
    for value in (zoo.get("weights"), row.get("weights"), row.get("checkpoint")):
        if isinstance(value, str) and value:
            return value
    return None


def _why(row: dict) -> str | None:
    """Why a row is not "ok": the run's error, else its analyses' errors, else its status."""
    status = row.get("status")
    if status == "ok":
        return None
    if row.get("error"):
        return str(row["error"])
    errors = row.get("analysis_errors")
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{name}: {err}" for name, err in sorted(errors.items()))
    return f"status {status}"


def _sweep(row: dict, mode: str) -> dict[int, float | None]:
    sweep = (row.get("rank_sweep") or {}).get(mode)
    if not isinstance(sweep, dict):
        return {}
    found = {}
    for k, acc in sweep.items():
        try:
            found[int(k)] = _number(acc)
        except (TypeError, ValueError):
            continue
    return found


def _share(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or whole == 0:
        return None
    return part / whole


def entry(row: dict) -> dict:
    """One model's leaderboard entry from its collect row (every field of FIRST and LAST, and
    `low` / `high` / `kept`: {k: accuracy or None} for the ranks its sweep measured)."""
    zoo = _zoo(row)
    status = str(row.get("status") or "unknown")
    measured = status in USABLE
    clean = _number(row.get("clean_acc")) if measured else None
    low = _sweep(row, "low") if measured else {}
    rig = row.get("rig") if measured and isinstance(row.get("rig"), dict) else {}
    threat = zoo.get("threat") if isinstance(zoo.get("threat"), dict) else None
    found = {
        "name": _name(row, zoo),
        "dataset": zoo.get("dataset") or row.get("dataset"),
        "threat_model": _threat_model(row, zoo),
        "architecture": zoo.get("architecture") or row.get("arch") or row.get("model"),
        "kind": zoo.get("kind") or row.get("kind"),
        "status": status,
        "clean_acc": clean,
        "clean_acc_reported": _number(zoo.get("clean_acc_reported")),
        "autoattack_acc": _number(zoo.get("autoattack_acc_reported")),
        "robust_acc": _number(row.get("robust_acc")) if measured else None,
        "low": low,
        "high": _sweep(row, "high") if measured else {},
        "kept": {k: _share(acc, clean) for k, acc in low.items()},
        "rig_top4_share": _number(rig.get("top4_share")),
        "n_images": row.get("n_test") if measured else None,
        "why": _why(row),
        "weights": _weights(row, zoo),
        "threat": threat_label(threat) if threat else row.get("threat"),
        "source": zoo.get("source") or "run",
        "venue": zoo.get("venue"),
        "link": zoo.get("link"),
        "run_dir": row.get("run_dir"),
    }
    return found


def ranks(entries: Sequence[dict]) -> list[int]:
    """Every rank k that some model's L_k or H_k sweep measured, ascending."""
    return sorted({k for e in entries for mode in ("low", "high") for k in e[mode]})


def columns(ks: Sequence[int]) -> list[str]:
    """The flat columns of the table: FIRST, then low@k, high@k, kept@k for each k, then LAST."""
    return [*FIRST, *(f"{mode}@{k}" for mode in RANK_MODES for k in ks), *LAST]


def flat(e: dict, ks: Sequence[int]) -> dict:
    """An entry as one flat object (the JSON's and CSV's form): every column, null where the
    model has no value."""
    out = {c: e.get(c) for c in FIRST}
    for mode in RANK_MODES:
        for k in ks:
            out[f"{mode}@{k}"] = e[mode].get(k)
    out.update({c: e.get(c) for c in LAST})
    return out


def _order(e: dict) -> tuple:
    """The table's default order: data set, measured rows first, AutoAttack accuracy (highest
    first, unknown last), name."""
    aa = e.get("autoattack_acc")
    return (str(e.get("dataset")), e["status"] not in USABLE, aa is None, -(aa or 0), e["name"])


def entries(rows: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """(entries, repeats): one entry per run row in the table's order, and the rows left out
    because they repeat a newer run of the same identity and seed ({run_dir, duplicate_of})."""
    kept = [r for r in rows if not r.get("duplicate_of")]
    repeats = [{"run_dir": r.get("run_dir"), "duplicate_of": r["duplicate_of"]}
               for r in rows if r.get("duplicate_of")]  # fmt: skip
    return sorted((entry(r) for r in kept), key=_order), repeats
