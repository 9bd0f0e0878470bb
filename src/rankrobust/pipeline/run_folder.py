"""The run folder's guard: never overwrite a finished run, never "resume" nothing or another run.

`check_run_dir` runs right after the config check, before any data is read or model built;
`pipeline/resume.py` then matches a resume's settings to the run the folder holds. Whatever
they refuse, the folder's files stay as they were (the task writes no record for a refused
resume).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from rankrobust.errors import ConfigError, FolderBusy
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


LOCK_FILE = ".rankrobust.lock"


@contextlib.contextmanager
def held(run_dir: Path, primary: bool = True) -> Iterator[None]:
    """Hold the run folder for this process while the run goes on: an exclusive, non-blocking
    flock on run_dir/.rankrobust.lock, released when the run ends (or its process dies).

    A second process started in a folder already held (two identical sweeps into one sweep
    folder, a run started twice) raises FolderBusy naming the folder and the process that holds
    it, before it writes anything there. DDP's other processes (`primary` False) share their
    rank 0's hold. A file system without locks (ENOLCK) runs unguarded.
    """
    if not primary:
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # an unwritable folder: check_run_dir says so in one paragraph
        yield
        return
    try:
        if _locked(fd):
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise FolderBusy(
                f"The run folder '{run_dir}' is in use by {holder}: a run is already going on "
                "there (two identical sweeps started into one sweep folder, or the same run "
                "started twice). Nothing was written; wait for it to finish (a multirun started "
                "again then skips the finished jobs), or use another folder (hydra.run.dir=... "
                "or hydra.sweep.dir=...)."
            )
        os.ftruncate(fd, 0)  # in place, not replaced: the lock is on this file
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()} since {started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _locked(fd: int) -> bool:
    """Take the exclusive lock on fd without waiting: False once held, True when another process
    holds it. A file system without locks (ENOLCK, ...) counts as not locked."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        return err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    return False
