"""The GPU check's summary: every stage's status, every figure, every error, nothing capped.

Usage: python bench/gpu_check_table.py WORK [OUT]
Reads WORK/stages.tsv (name, status, seconds), WORK/env.json, WORK/*/metrics.json and
WORK/bench/*.json; writes OUT/summary.txt (the table, printed too) and OUT/figures.json (every
run's metrics without its config, every benchmark's JSON, the stages and the environment).
OUT defaults to WORK. A file that cannot be read is a row saying so, never a silent gap.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SKIP_KEYS = ("config", "resolved_config")  # a run's whole config: in the tarball, not the table
TEXT_KEYS = ("status", "error", "errors", "analysis_errors", "device", "failed", "skipped")


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return json.dumps([float(f"{v:.4g}") if isinstance(v, float) else v for v in value])
    return str(value)


def _leaves(obj, prefix: str = ""):
    """(dotted key, value) for every number, list and telling string under obj."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not prefix and k in SKIP_KEYS:
                continue
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, bool) or obj is None:
        return
    elif isinstance(obj, int | float | list):
        yield prefix, obj
    elif isinstance(obj, str):
        last = prefix.rsplit(".", 1)[-1]
        if last in TEXT_KEYS or obj.startswith(("failed", "skipped", "error", "Error")):
            yield prefix, obj


def _read(path: Path) -> tuple[dict | None, str | None]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return None, f"unreadable: {type(err).__name__}: {err}"
    return (data, None) if isinstance(data, dict) else ({"value": data}, None)


def _stages(work: Path) -> list[tuple[str, str, str]]:
    path = work / "stages.tsv"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        name, status, seconds = (line.split("\t") + ["", "", ""])[:3]
        rows.append((name, status, seconds))
    return rows


def collect(work: Path) -> tuple[list[tuple[str, str, str]], dict]:
    stages = _stages(work)
    rows = [("stage", name, f"{status} in {seconds} s") for name, status, seconds in stages]
    bad = [name for name, status, _ in stages if status != "ok"]
    rows.append(
        ("stage", "all", f"{len(stages)} stages: {len(stages) - len(bad)} ok, {len(bad)} not ok")
    )
    keys = ("name", "status", "seconds")
    figures: dict = {"stages": [dict(zip(keys, s, strict=True)) for s in stages]}
    sources = [(m.parent.name, m) for m in sorted(work.glob("*/metrics.json"))]
    sources += [(f"bench/{b.stem}", b) for b in sorted((work / "bench").glob("*.json"))]
    for label, path in sources:
        data, error = _read(path)
        if data is None:
            rows.append((label, path.name, error))
            figures[label] = {"error": error}
            continue
        figures[label] = {k: v for k, v in data.items() if k not in SKIP_KEYS}
        rows += [(label, key, _text(value)) for key, value in _leaves(data)]
    return rows, figures


def main(work: Path, out: Path) -> str:
    env, _ = _read(work / "env.json") if (work / "env.json").exists() else ({}, None)
    env = env or {}
    rows, figures = collect(work)
    figures["env"] = env
    width = [max((len(r[i]) for r in rows), default=8) for i in range(2)]
    header = (
        f"GPU check on {env.get('device', '?')} | torch {env.get('torch', '?')} | "
        f"Lightning {env.get('lightning', '?')} | Python {env.get('python', '?')}"
    )
    lines = [header, "-" * len(header)]
    lines += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.txt").write_text(text + "\n")
    (out / "figures.json").write_text(json.dumps(figures, indent=1, default=str))
    return text


if __name__ == "__main__":
    work = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/gpu_check")
    print(main(work, Path(sys.argv[2]) if len(sys.argv) > 2 else work))
