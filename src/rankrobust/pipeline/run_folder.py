"""The run folder's guard: never overwrite a finished run, never "resume" nothing or another run.

`check_run_dir` runs right after the config check, before any data is read or model built.
"""

from __future__ import annotations

import json
from pathlib import Path

from rankrobust.errors import ConfigError
from rankrobust.launch.preflight import unwritable
from rankrobust.results import FILENAME, resume_differences, run_status


def check_run_dir(
    run_dir: Path,
    resume: bool,
    last: Path,
    skip_finished: bool = False,
    config: dict | None = None,
) -> bool:
    """A finished run (metrics.json status ok) is never overwritten; resume needs a readable
    checkpoint and the folder's own config (`check_resume`).

    `last` is the run's last checkpoint (RunSpec.last_checkpoint), `config` the new run's
    resolved config. Returns True when the folder holds a finished run that the caller should
    skip (a multirun job rerun to fill in its sweep: `skip_finished`); else raises or returns
    False.
    """
    problem = unwritable(run_dir)
    if problem:
        raise ConfigError(
            f"The run folder '{run_dir}' cannot be written ({problem}). Choose a writable "
            "folder with hydra.run.dir=... (or hydra.sweep.dir=... for -m)."
        )
    status = run_status(run_dir)
    if resume and not last.is_file():
        raise ConfigError(
            f"resume=true but '{last}' does not exist: nothing to resume in '{run_dir}'. Check "
            "hydra.run.dir (the folder of the run to continue), or drop resume=true to start "
            "a new run."
        )
    if resume:
        check_resume(run_dir, last, config)
    if status == "ok" and not resume and skip_finished:
        return True
    if status == "ok" and not resume:
        raise ConfigError(
            f"'{run_dir}' holds a finished run (metrics.json says ok); it is not overwritten. "
            "Use another folder (leave hydra.run.dir unset for a new one), or resume=true to "
            "continue that run."
        )
    return False


def check_resume(run_dir: Path, last: Path, config: dict | None) -> None:
    """resume=true continues the run its folder holds, or stops before any work: the checkpoint
    must load (weights only) and the config must be the one the folder was started with
    (metrics.json's resolved_config), seed and rank included; a longer schedule is refused
    (the one-cycle learning rate cannot be stretched over more steps after the fact)."""
    import torch

    try:
        torch.load(last, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"resume=true but '{last}' cannot be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}): it is truncated or not a checkpoint. The run's "
            "metrics.json is kept; start a new run in another folder."
        ) from None
    saved = _saved_config(run_dir)
    if saved is None or config is None:
        return
    differ = resume_differences(saved, config)
    if differ:
        raise ConfigError(
            f"resume=true in '{run_dir}' with settings that differ from the run it holds: "
            f"{'; '.join(differ[:5])}{' ...' if len(differ) > 5 else ''}. A resumed run continues "
            "the same training; drop those overrides, or start a new run in another folder "
            "(a longer schedule too: train a new run with trainer.max_epochs=...)."
        )


def _saved_config(run_dir: Path) -> dict | None:
    """The config the folder's run was started with (metrics.json, written from its start)."""
    try:
        saved = json.loads((run_dir / FILENAME).read_text()).get("resolved_config")
    except (OSError, ValueError, AttributeError):
        return None
    return saved if isinstance(saved, dict) and saved else None
