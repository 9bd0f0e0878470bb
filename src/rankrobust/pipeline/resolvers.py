"""OmegaConf resolvers used by conf/ (registered on import; run.py and the tests import it)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from omegaconf import OmegaConf

from rankrobust.launch import gpus

MAX_JOB_NAME = 60  # sweep job folders stay short (<= ~80 characters with the job number)
# Overrides that tell jobs apart come first in a job's folder name; the size knobs last.
FIRST = ("experiment", "rank", "attack", "transform", "model", "dataset", "seed")
_RUNS_ONLY = ("launcher.", "logger.", "resume=", "launcher=", "logger=")
_ITEM = re.compile(r",(?=[+~]*[A-Za-z_][\w.]*=)")  # a comma that starts the next key=value


def rank_tag(mode: str, rank: Any, band: Any = None, basis: Any = "svd") -> str:
    """'full' (no transform), 'low8', 'high4', 'band2-6' or, in another basis than the SVD,
    'fourier-low4': a run's rank transform in a name."""
    if mode == "band" and band:
        return f"band{band[0]}-{band[1]}"
    if rank is None:
        return "full"
    return f"{mode}{rank}" if basis in (None, "svd") else f"{basis}-{mode}{rank}"


def job_name(override_dirname: str, zoo: Any = None) -> str:
    """A sweep job's folder name from its overrides: path-safe (never nests) and short.

    Keyed by content, never by the job's number: the same settings name the same folder however
    the sweep is ordered or extended, so a finished job is found and skipped. A '/' in a value
    (a data path) would nest job folders; long names are cut and given a hash of the whole so
    two jobs never share a folder. A zoo job (``zoo``: its entry, rankrobust.launch.zoo) is
    ``<entry name>_<hash of the entry and the other overrides>`` (where its weights lie aside).
    """
    # how a job runs, not what it computes (with hydra.job.config.override_dirname.exclude_keys)
    items = [i for i in _ITEM.split(override_dirname) if not i.lstrip("+~").startswith(_RUNS_ONLY)]
    override_dirname = ",".join(items)
    if zoo:
        entry = OmegaConf.to_container(zoo) if OmegaConf.is_config(zoo) else dict(zoo)
        entry.pop("weights", None)
        rest = sorted(i for i in _ITEM.split(override_dirname) if "zoo_entry=" not in i)
        text = json.dumps([entry, rest], sort_keys=True, default=str)
        name = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(entry.get("name"))).strip("_")[:48]
        return f"{name or 'entry'}_{hashlib.sha1(text.encode()).hexdigest()[:10]}"

    def order(item: str) -> tuple[int, str]:
        key = item.split("=", 1)[0].lstrip("+~")
        return (FIRST.index(key) if key in FIRST else len(FIRST), item)

    items = sorted(_ITEM.split(override_dirname), key=order)
    safe = re.sub(r"[^A-Za-z0-9=,._+-]+", "_", ",".join(items)).strip("_") or "job"
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
