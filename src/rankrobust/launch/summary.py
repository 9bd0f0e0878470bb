"""Sweep summaries: which jobs of a multirun finished, which failed and why (sweep_summary.json).

Jobs are the run folders below the sweep folder (run_folders.find_run_dirs: any depth, links
followed once), so a job folder nested by a '/' in an override value (older runs) or written
without `.hydra/` (hydra.output_subdir=null) is still listed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rankrobust.files import write_json
from rankrobust.run_folders import FILENAME, find_run_dirs, load_json

SUMMARY = "sweep_summary.json"


def _overrides(job_dir: Path) -> list[str]:
    """The job's command-line overrides (.hydra/overrides.yaml; [] when absent or unreadable)."""
    try:
        overrides = OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")
    except Exception:  # noqa: BLE001 - absent, empty or broken: the job is still listed
        return []
    return [str(o) for o in overrides] if isinstance(overrides, ListConfig) else []


def summarize_sweep(sweep_dir: str | Path) -> dict:
    """Read every job folder of a sweep (run_folders.find_run_dirs: a .hydra/ folder or a
    metrics.json at any depth) into one summary."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    for job_dir in find_run_dirs([sweep_dir]):
        entry: dict[str, Any] = {
            "job": job_dir.relative_to(sweep_dir).as_posix(),
            "dir": str(job_dir),
            "overrides": _overrides(job_dir),
        }
        try:
            m = load_json(job_dir / FILENAME)
        except (OSError, ValueError):
            m = {"status": "missing", "error": "no metrics.json: the job died before it started"}
        if not isinstance(m, dict):
            what = type(m).__name__
            m = {"status": "invalid", "error": f"{FILENAME} holds {what}, not an object"}
        if m.get("status") == "running":
            m["error"] = m.get("error") or "still running, or killed before it finished"
        entry.update(
            status=m.get("status"),
            error=m.get("error"),
            clean_acc=m.get("clean_acc"),
            robust_acc=m.get("robust_acc"),
        )
        jobs.append(entry)
    jobs.sort(key=lambda j: (len(j["job"].split("_")[0]), j["job"]))
    failed = [j for j in jobs if j["status"] != "ok"]
    return {
        "sweep_dir": str(sweep_dir),
        "n_jobs": len(jobs),
        "n_ok": len(jobs) - len(failed),
        "n_failed": len(failed),
        "failed": [{k: j[k] for k in ("job", "overrides", "status", "error")} for j in failed],
        "jobs": jobs,
    }


def write_sweep_summary(sweep_dir: str | Path) -> dict:
    summary = summarize_sweep(sweep_dir)
    write_json(Path(sweep_dir) / SUMMARY, summary, indent=2)
    return summary


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object


class SweepSummary(_HydraCallback):
    """Hydra callback: at the end of a multirun, write <sweep dir>/sweep_summary.json.

    With `fail_on_error` the process then exits with status 1 when any job failed.
    """

    def __init__(self, fail_on_error: bool = True):
        self.fail_on_error = fail_on_error

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summary = write_sweep_summary(config.hydra.sweep.dir)
        print(
            f"[rankrobust] sweep: {summary['n_ok']}/{summary['n_jobs']} jobs ok; summary in "
            f"{Path(config.hydra.sweep.dir) / SUMMARY}",
            flush=True,
        )
        for job in summary["failed"]:
            print(f"[rankrobust]   FAILED {job['job']}: {job['error']}", file=sys.stderr)
        if summary["failed"] and self.fail_on_error:
            sys.exit(1)
