"""RobustBench's leaderboard entries as this package ships them (robustbench_entries.json).

`entries_from_model_info` reads RobustBench's ``model_info/<dataset>/<threat model>/<Name>.json``
files (the repository's folder; the pip wheel does not ship it) into one record per entry:
name, dataset, threat model, architecture, clean and AutoAttack accuracy as fractions, eps,
venue, link. ``python -m rankrobust.zoo.generate <model_info dir>`` rewrites the shipped file
(tests/test_zoo_entries.py checks the shipped file equals what this produces).
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

from rankrobust.errors import ConfigError
from rankrobust.files import write_json
from rankrobust.zoo.entries import DATASETS, SHIPPED, THREAT_MODELS


def _fraction(value) -> float | None:
    """'88.67' (percent, as RobustBench writes it) -> 0.8867; None / '' -> None."""
    if value in (None, ""):
        return None
    return round(float(value) / 100.0, 6)


def _eps(value, threat_model: str) -> float | None:
    """'8/255' -> 0.0313725, '0.5' -> 0.5; None for corruptions (no perturbation budget)."""
    if threat_model == "corruptions" or value in (None, ""):
        return None
    return round(float(Fraction(str(value))), 7)


def entry_record(info: dict, dataset: str, threat_model: str, name: str) -> dict:
    """One shipped record from one model_info file's fields (see the module docstring)."""
    return {
        "name": name,
        "dataset": dataset,
        "threat_model": threat_model,
        "architecture": info.get("architecture") or None,
        "clean_acc": _fraction(info.get("clean_acc")),
        "autoattack_acc": _fraction(info.get("autoattack_acc")),
        "eps": _eps(info.get("eps"), threat_model),
        "venue": info.get("venue") or None,
        "link": info.get("link") or None,
        "title": info.get("name") or None,
    }


def entries_from_model_info(root: str | Path) -> list[dict]:
    """Every ``<root>/<dataset>/<threat model>/<Name>.json``, sorted by (dataset, threat model,
    name). Raises ConfigError when ``root`` holds no such file or one is not JSON."""
    root = Path(root)
    found = []
    for path in sorted(root.glob("*/*/*.json")):
        dataset, threat_model = path.parent.parent.name, path.parent.name
        if dataset not in DATASETS or threat_model not in THREAT_MODELS:
            continue
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"RobustBench model info {path} cannot be read: {err}") from err
        found.append(entry_record(info, dataset, threat_model, path.stem))
    if not found:
        raise ConfigError(
            f"{root} holds no RobustBench model info (<dataset>/<threat model>/<Name>.json): "
            "give the model_info folder of the RobustBench repository."
        )
    return sorted(found, key=lambda e: (e["dataset"], e["threat_model"], e["name"]))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m rankrobust.zoo.generate <robustbench model_info dir>",
              file=sys.stderr)  # fmt: skip
        return 2
    entries = entries_from_model_info(argv[0])
    write_json(SHIPPED, entries, indent=1)
    print(f"{len(entries)} entries -> {SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
