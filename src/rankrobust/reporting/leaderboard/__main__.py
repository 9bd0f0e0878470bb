"""`python -m rankrobust.reporting.leaderboard RUNS --out DIR`: see the package docstring."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rankrobust.reporting.collect import collect_for_cli, writing
from rankrobust.reporting.leaderboard import RESAMPLES, SEED, board, write_board

PROG = "leaderboard"


def main(argv: Sequence[str] | None = None) -> int:
    """The command: 0 with the files written; SystemExit(2) with one paragraph on stderr when
    the runs folder is missing or holds no run, --out is a file, --resamples < 1, or a write
    fails (a full disk: every file under --out is whole, the old one or the new one)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m rankrobust.reporting.{PROG}",
        description="Many models -> leaderboard.json/csv/html and population claims P1-P3.",
    )
    parser.add_argument("roots", nargs="+", help="folders holding the run folders (OUT/runs)")
    parser.add_argument("--out", required=True, help="where leaderboard.* and figures go")
    parser.add_argument(
        "--resamples",
        type=int,
        default=RESAMPLES,
        help=f"bootstrap draws of the models, >= 1 (default {RESAMPLES})",
    )
    parser.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed (default {SEED})")
    args = parser.parse_args(argv)
    if args.resamples < 1:
        print(f"{PROG}: --resamples {args.resamples}: give at least 1 bootstrap draw (default "
              f"{RESAMPLES}); nothing was written.", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    rows = collect_for_cli(args.roots, args.out, PROG)
    found = board(rows, args.resamples, args.seed)
    with writing(PROG, args.out):
        paths = write_board(found, args.out)
    models = found["models"]
    ok = sum(m["status"] == "ok" for m in models)
    print(f"[{PROG}] {len(models)} models ({ok} ok) -> {', '.join(str(p) for p in paths[:3])}")
    for m in models:
        if m["status"] != "ok":
            print(f"[{PROG}]   {m['status']:8s} {m['name']}: {m['why']}")
    for c in found["population"]:
        rho = "" if c["rho"] is None else f" rho {c['rho']:+.2f}"
        interval = "" if c["lo"] is None else f" [{c['lo']:+.2f}, {c['hi']:+.2f}]"
        print(f"[{PROG}] {c['claim']} {c['dataset']} ({c['column']}, n={c['n_models']}):"
              f"{rho}{interval} {c['verdict']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
