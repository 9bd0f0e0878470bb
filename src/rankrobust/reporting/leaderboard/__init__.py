"""Many models -> one leaderboard and the population claims P1-P3 (docs/leaderboard.md).

    python -m rankrobust.reporting.leaderboard RUNS [RUNS ...] --out DIR [--resamples N] [--seed S]

Reads every run folder under RUNS with collect (reporting/collect.py: failed, unfinished and
unreadable folders are rows with their status and reason) and writes, each file whole
(files.py), into DIR:

    leaderboard.json   {"models": [one object per model], "population": [P1-P3 per data set],
                        "columns", "ranks", "repeats", "resamples", "seed"}
    leaderboard.csv    the models, one row each, the same columns
    leaderboard.html   one self-contained page: the sortable table and the figures
    fig-population-<claim>-<dataset>.png   one scatter per claim and data set

    leaderboard/table.py       run rows -> model entries (a zoo job's `zoo` block, else identity)
    leaderboard/population.py  Spearman, the bootstrap over models, the verdicts
    leaderboard/plots.py       the scatter figures
    leaderboard/page.py        the HTML page
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from rankrobust.files import atomic_open, write_json, write_text
from rankrobust.reporting.leaderboard.population import (
    CLAIMS,
    MIN_MODELS,
    RESAMPLES,
    SEED,
    average_ranks,
    bootstrap,
    population,
    spearman,
)
from rankrobust.reporting.leaderboard.table import columns, entries, flat, ranks

__all__ = [
    "CLAIMS",
    "MIN_MODELS",
    "RESAMPLES",
    "SEED",
    "average_ranks",
    "board",
    "bootstrap",
    "population",
    "spearman",
    "write_board",
]

FILES = ("leaderboard.json", "leaderboard.csv", "leaderboard.html")


def board(rows: Sequence[dict], resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """The leaderboard of collect's `rows`: {"models": [flat entry per model, in the table's
    order], "population": population(...), "columns", "ranks", "repeats", "resamples",
    "seed"}. Raises ValueError when resamples < 1."""
    found, repeats = entries(rows)
    ks = ranks(found)
    claims = population(found, resamples, seed)
    return {
        "models": [flat(e, ks) for e in found],
        "population": claims,
        "columns": columns(ks),
        "ranks": ks,
        "repeats": repeats,
        "resamples": resamples,
        "seed": seed,
    }


def _write_csv(path: Path, models: Sequence[dict], cols: Sequence[str]) -> None:
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(cols))
        writer.writeheader()
        for m in models:
            writer.writerow({c: "" if m.get(c) is None else m[c] for c in cols})


def write_board(found: dict, out_dir: str | Path) -> list[Path]:
    """Write `found` (board's result) as leaderboard.json / .csv / .html and the population
    figures into out_dir (created); returns the paths written. Raises OSError naming the file
    a write failed on (nothing half-written: files.py)."""
    from rankrobust.reporting.leaderboard.page import render
    from rankrobust.reporting.leaderboard.plots import fig_population

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, figures = [], {}
    for claim in found["population"]:
        paths = fig_population(claim, out)
        claim["figure"] = paths[0].name if paths else None
        if paths:
            figures[paths[0].name] = paths[0]
        written += paths
    json_path, csv_path, html_path = (out / name for name in FILES)
    write_json(json_path, found, indent=2, default=str)
    _write_csv(csv_path, found["models"], found["columns"])
    write_text(html_path, render(found, found["columns"], figures))
    return [json_path, csv_path, html_path, *written]
