"""One table of the GPU check's figures: stage status and wall time, run metrics, benchmarks.

Usage: python bench/gpu_check_table.py OUT_DIR  (reads OUT_DIR/stages.tsv, */metrics.json,
bench/*.json; writes OUT_DIR/summary.txt and summary.json and prints the table).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# Leaf keys worth a row: accuracies, throughputs, ratios, speed-ups and timings.
FIGURE = re.compile(r"(acc|per_s|ratio|speedup|seconds|timings|median|completeness|delta|_s$)")
MAX_ROWS_PER_FILE = 24


def _leaves(obj, prefix: str = "", depth: int = 0):
    if isinstance(obj, dict) and depth < 4:
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield prefix, obj


def _rows(path: Path, label: str) -> list[tuple[str, str, str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return [(label, path.name, f"unreadable: {err}")]
    rows = []
    for key, value in _leaves(data):
        if key.startswith(("config.", "runs.")) or not FIGURE.search(key):
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        rows.append((label, key, text))
    return rows[:MAX_ROWS_PER_FILE]


def main(out: Path) -> None:
    env = json.loads((out / "env.json").read_text()) if (out / "env.json").exists() else {}
    rows: list[tuple[str, str, str]] = []
    if (out / "stages.tsv").exists():
        for line in (out / "stages.tsv").read_text().splitlines():
            name, status, seconds = line.split("\t")
            rows.append(("stage", name, f"{status} in {seconds} s"))
    for metrics in sorted(out.glob("*/metrics.json")):
        rows += _rows(metrics, metrics.parent.name)
    for bench in sorted((out / "bench").glob("*.json")):
        rows += _rows(bench, f"bench/{bench.stem}")
    width = [max(len(r[i]) for r in rows) if rows else 8 for i in range(3)]
    header = (
        f"GPU check on {env.get('device', '?')} | torch {env.get('torch', '?')} | "
        f"Lightning {env.get('lightning', '?')} | Python {env.get('python', '?')}"
    )
    lines = [header, "-" * len(header)]
    lines += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    print(text)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/gpu_check"))
