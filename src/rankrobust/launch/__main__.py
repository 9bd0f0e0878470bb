"""`python -m rankrobust.launch summarize <sweep dir>`: (re)write sweep_summary.json."""

from __future__ import annotations

import json
import sys

from rankrobust.launch.summary import write_sweep_summary

USAGE = (
    "usage: python -m rankrobust.launch summarize <sweep dir>\n"
    "  (re)write <sweep dir>/sweep_summary.json from its job folders' metrics.json;\n"
    "  exit 1 when a job failed"
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--help"], ["-h"]):
        print(USAGE)
        return 0
    if argv[:1] == ["summarize"] and len(argv) == 2:
        summary = write_sweep_summary(argv[1])
        print(json.dumps({k: summary[k] for k in ("n_jobs", "n_ok", "failed")}, indent=2))
        return 1 if summary["failed"] else 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
