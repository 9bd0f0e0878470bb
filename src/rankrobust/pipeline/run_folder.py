"""The run folder's guard: never overwrite a finished run, never "resume" nothing or another run.

`check_run_dir` runs right after the config check, before any data is read or model built;
`pipeline/resume.py` then matches a resume's settings to the run the folder holds. Whatever
they refuse, the folder's files stay as they were (the task writes no record for a refused
resume).
"""

from __future__ import annotations

from pathlib import Path

from rankrobust.errors import ConfigError
from rankrobust.launch.jobs import JobInfo, fresh_command
from rankrobust.launch.preflight import unwritable
from rankrobust.results import run_status


def check_run_dir(job: JobInfo, resume: bool, last: Path) -> bool:
    """A finished run (metrics.json status ok) is never overwritten, nor run again: resumed, or
    rerun as a multirun job, it is skipped and its record returned (a scheduler that requeues a
    job with resume=true after it finished gets exit 0 and the same results); resume needs the
    run's checkpoint, readable (`check_checkpoint`).

    `last` is the run's last checkpoint (RunSpec.last_checkpoint). Returns True when the folder
    holds a finished run that the caller should skip; else raises ConfigError or returns False.
    """
    run_dir = job.run_dir
    problem = unwritable(run_dir)
    if problem:
        raise ConfigError(
            f"The run folder '{run_dir}' cannot be written ({problem}). Choose a writable "
            "folder with hydra.run.dir=... (or hydra.sweep.dir=... for -m)."
        )
    status = run_status(run_dir)
    if status == "ok" and (job.multirun or resume):
        return True  # a requeued job, or a sweep rerun to fill in: its results stand
    if status == "ok":
        raise ConfigError(
            f"'{run_dir}' holds a finished run (metrics.json says ok); it is not overwritten. "
            f"Use another folder (leave hydra.run.dir unset for a new one: {fresh_command(job)})."
        )
    if resume and not last.is_file():
        raise ConfigError(
            f"resume=true but '{last}' does not exist: nothing to resume in '{run_dir}' (its "
            f"metrics.json says {status or 'nothing'}). Check hydra.run.dir (the folder of the "
            f"run to continue), or start a new run: {fresh_command(job)}"
        )
    if resume:
        check_checkpoint(last)
    return False


def check_checkpoint(last: Path) -> None:
    """The checkpoint a resume continues from must load (weights only), before any work."""
    import torch

    try:
        torch.load(last, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"resume=true but '{last}' cannot be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}): it is truncated or not a checkpoint. The run's "
            "metrics.json is kept; start a new run in another folder."
        ) from None
