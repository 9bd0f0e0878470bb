"""This job's place in Hydra: its run folder, its own overrides, the command that resumes it."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class JobInfo:
    """Where a run writes and how it was started."""

    run_dir: Path
    hydra: bool = False  # started by Hydra (run.py), not from Python
    multirun: bool = False
    sweep_dir: str | None = None
    job_num: int | None = None
    experiment: str | None = None
    overrides: tuple[str, ...] = ()
    # hydra.searchpath=[...] given on the command line (a zoo's generated config groups): the
    # config cannot be composed again without it
    searchpath: tuple[str, ...] = ()


def current_job(run_dir: str | Path | None = None) -> JobInfo:
    """The running Hydra job (or a plain run in `run_dir` when Hydra is not running)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        if run_dir is None:
            raise ValueError("run_dir is required when Hydra is not running")
        return JobInfo(run_dir=Path(run_dir))
    hc = HydraConfig.get()
    multirun = hc.mode.name == "MULTIRUN"
    return JobInfo(
        run_dir=Path(run_dir if run_dir is not None else hc.runtime.output_dir),
        hydra=True,
        multirun=multirun,
        sweep_dir=str(hc.sweep.dir) if multirun else None,
        job_num=hc.job.num if multirun else None,
        experiment=hc.runtime.choices.get("experiment"),
        overrides=tuple(hc.overrides.task),
        searchpath=tuple(o for o in hc.overrides.hydra if o.startswith(SEARCHPATH)),
    )


SEARCHPATH = "hydra.searchpath="

# Hydra's options that choose the config itself: a resume must compose the same one.
CONFIG_OPTIONS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")


def config_options(argv: list[str]) -> list[str]:
    """The config-choosing options of a command line (`--config-dir DIR`, `-cn=NAME`, ...),
    each with its value; a --config-dir / -cd folder made absolute (it is read from the
    working directory, which a resume may not share)."""
    kept: list[str] = []
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name not in CONFIG_OPTIONS:
            continue
        if not eq:
            value = next(args, "")
        if name in ("--config-dir", "-cd") and value:
            value = str(Path(value).expanduser().resolve())
        kept += [f"{name}={value}"] if eq else [name, value]
    return kept


def resume_command(job: JobInfo) -> str:
    """`python run.py [--config-dir ...] <this job's overrides> hydra.run.dir=<run_dir>
    resume=true`."""
    return _command(job, [f"hydra.run.dir={job.run_dir}", "resume=true"])


def fresh_command(job: JobInfo) -> str:
    """`python run.py [--config-dir ...] <this job's overrides>`: the same settings as a new run
    in a new folder (what a refused resume offers instead)."""
    return _command(job, [])


def _command(job: JobInfo, tail: list[str]) -> str:
    given = job.overrides or tuple(a for a in sys.argv[1:] if "=" in a and not a.startswith("-"))
    args = [*config_options(sys.argv[1:]), *job.searchpath, *own_overrides(given), *tail]
    return " ".join(["python run.py", *(shlex.quote(a) for a in args)])


def own_overrides(overrides: tuple[str, ...] | list[str]) -> list[str]:
    """The overrides that choose a run's settings: all but where it runs (hydra.run.dir), where
    Hydra looks for config groups (hydra.searchpath) and whether it resumes."""
    return [o for o in overrides if not o.startswith(("resume=", "hydra.run.dir=", SEARCHPATH))]


def command_overrides(command: str) -> list[str] | None:
    """The settings overrides of a stored `resume_command` (its `key=value` arguments, less
    hydra.run.dir and resume), or None when `command` is not one."""
    try:
        words = shlex.split(command)
    except (AttributeError, TypeError, ValueError):
        return None
    if words[:2] != ["python", "run.py"]:
        return None
    options = set(CONFIG_OPTIONS)
    args, skip = [], False
    for word in words[2:]:
        if skip:  # the value of a `--config-dir DIR` option
            skip = False
        elif word in options:
            skip = True
        elif "=" in word and not word.startswith("-"):
            args.append(word)
    return own_overrides(args)
