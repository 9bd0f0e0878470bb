"""One job per GPU: a file lock per GPU, taken when a job starts and released when it ends.

The `local_gpus` launcher runs n_jobs = (number of GPUs) jobs at a time; each job takes the lock
of a free GPU before Lightning starts and trains on that GPU only. Locks are `fcntl.flock` locks
on files in a shared folder, so they also keep two sweeps on the same machine apart, and the
kernel releases them when a job dies. No torch, Hydra or Lightning here: unit-testable with fake
GPU ids.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LOCK_DIR = "/tmp/rankrobust-gpu-locks"


@dataclass(frozen=True)
class GpuSlot:
    """A GPU as this process sees it: `index` for torch / Lightning, `name` for its lock file.

    `name` is the entry of CUDA_VISIBLE_DEVICES (physical id or UUID) when that is set, so two
    sweeps with different visible sets still lock the same physical GPU under the same name.
    """

    index: int
    name: str


def gpu_slots(count: int | str | None = "auto") -> list[GpuSlot]:
    """The GPUs jobs may use: `auto` = every visible CUDA device; an int = the first `count`."""
    if count in (None, "auto"):
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    else:
        n = int(count)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    return [GpuSlot(i, names[i] if i < len(names) else str(i)) for i in range(n)]


def n_jobs(n_gpus: int, cpu_jobs: int | None = None) -> int:
    """Parallel jobs for the local launcher: one per GPU, else `cpu_jobs` (default: CPUs // 2)."""
    if n_gpus > 0:
        return n_gpus
    if cpu_jobs:
        return int(cpu_jobs)
    return max(1, (os.cpu_count() or 1) // 2)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
    return fd


@contextlib.contextmanager
def acquire_gpu(
    slots: Sequence[GpuSlot],
    lock_dir: str | Path = DEFAULT_LOCK_DIR,
    poll_s: float = 0.2,
    timeout_s: float | None = None,
) -> Iterator[GpuSlot | None]:
    """Hold the lock of the first free GPU in `slots` for the `with` block (None: no GPUs).

    Blocks, polling every `poll_s` seconds, while every GPU is held by another job (another
    sweep on the same machine); raises TimeoutError after `timeout_s` when given.
    """
    if not slots:
        yield None
        return
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for slot in slots:
            fd = _try_lock(lock_dir / f"gpu-{slot.name}.lock")
            if fd is None:
                continue
            try:
                yield slot
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU among {[s.name for s in slots]} in {lock_dir}")
        time.sleep(poll_s)
