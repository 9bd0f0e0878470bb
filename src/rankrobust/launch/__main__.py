"""`python -m rankrobust.launch summarize <sweep dir>`: (re)write sweep_summary.json."""

from __future__ import annotations

import json
import sys

from rankrobust.launch.summary import write_sweep_summary


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["summarize"] and len(argv) == 2:
        summary = write_sweep_summary(argv[1])
        print(json.dumps({k: summary[k] for k in ("n_jobs", "n_ok", "failed")}, indent=2))
        return 1 if summary["failed"] else 0
    print("usage: python -m rankrobust.launch summarize <sweep dir>", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
