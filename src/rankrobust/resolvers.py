"""OmegaConf resolvers used by conf/ (registered on import; run.py and the tests import it)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from omegaconf import OmegaConf

from rankrobust import gpus

MAX_JOB_NAME = 60  # sweep job folders stay short (<= ~80 characters with the job number)


def rank_tag(mode: str, rank: Any, band: Any = None) -> str:
    """'full' (no transform), 'low8', 'high4' or 'band2-6': a run's rank transform in a name."""
    if mode == "band" and band:
        return f"band{band[0]}-{band[1]}"
    return "full" if rank is None else f"{mode}{rank}"


def job_name(override_dirname: str) -> str:
    """A sweep job's folder name from its overrides: path-safe (never nests) and short.

    A '/' in a value (a data path) would nest job folders; long names are cut and given a
    hash of the whole so two jobs never share a folder.
    """
    safe = re.sub(r"[^A-Za-z0-9=,._+-]+", "_", override_dirname).strip("_") or "job"
    if len(safe) <= MAX_JOB_NAME:
        return safe
    digest = hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
    return f"{safe[: MAX_JOB_NAME - 9]}_{digest}"


def register() -> None:
    """Register rr_rank_tag, rr_job_name and rr_local_jobs (idempotent)."""
    resolvers = {
        "rr_rank_tag": rank_tag,
        "rr_job_name": job_name,
        # jobs at a time for the local_gpus launcher
        "rr_local_jobs": lambda cpu_jobs=None, count="auto": gpus.n_jobs(
            len(gpus.gpu_slots(count)), cpu_jobs
        ),
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()
