"""One run: check, seed, instantiate, fit, test, analyse, write metrics.json (results.py).

`run(cfg)` is what run.py calls. Its one failure policy (`task_wrapper`): any exception
leaves metrics.json `failed` with the full config and the error (Ctrl-C: `interrupted` and the
resume command), except a resume stopped before it starts (refused: the folder's record stays),
W&B is finished, and under the CLI a ConfigError is one paragraph and exit
code 2 (in a multirun the sweep goes on and sweep_summary.json names the job). Outside Hydra
(tests, notebooks, DDP children) errors are raised.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rankrobust import results, run_folders, runs
from rankrobust.errors import (
    ConfigError,
    FolderBusy,
    StorageError,
    as_config_error,
    storage_error,
)
from rankrobust.identity import run_identity
from rankrobust.launch.ddp import end_ddp, prepare_ddp_children, rank_zero
from rankrobust.launch.jobs import JobInfo, current_job, resume_command
from rankrobust.launch.lease import job_device
from rankrobust.pipeline import checks, loggers, resume, run_folder
from rankrobust.pipeline.loggers import log
from rankrobust.pipeline.rules import skipped_line


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, preemption) raised as an interrupt in the main thread.

    A KeyboardInterrupt, so Lightning shuts down as for Ctrl-C and the task records
    `interrupted` with the resume command; raised from the signal handler, so it cuts into a
    long attack or analysis at once instead of waiting for the end of a batch.
    """


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"received {signal.Signals(signum).name}")


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM -> Terminated while the task runs (main thread only: signals need it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(stop: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C / SIGTERM behind `stop` (Lightning turns one during fit into exit(1) raised
    while handling it), else None."""
    seen: BaseException | None = stop
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__context__
    return None


@dataclasses.dataclass
class Attempt:
    """One start of a run in its folder. `recorded` once it has written its `running` record;
    a resume that stops before that (refused by a check, or failing in its set-up) writes no
    record: the folder's interrupted / failed run and its resume command stay as they were."""

    resuming: bool
    recorded: bool = False
    holds_folder: bool = False  # run_folder.held: a folder in use by another run is not written

    def may_record(self) -> bool:
        return self.holds_folder and (self.recorded or not self.resuming)


def _resuming(cfg: DictConfig) -> bool:
    """resume=true asked (any value but false / null counts: a bad one is refused later)."""
    try:
        value = OmegaConf.select(cfg, "resume", default=False)
    except Exception:
        return True
    return value not in (False, None, "false", "False")


def task_wrapper(fn):
    """Run fn(cfg, job, base, attempt) under the failure policy described in the module
    docstring."""

    @functools.wraps(fn)
    def wrapped(cfg: DictConfig, run_dir: str | Path | None = None) -> dict:
        job = current_job(run_dir)
        base: dict = {}
        attempt = Attempt(resuming=_resuming(cfg))
        start = time.perf_counter()
        try:
            # the folder is held first, then the lease decides the device; the config is
            # snapshotted once, after it
            with _sigterm_as_interrupt(), run_folder.held(job.run_dir, rank_zero()):
                attempt.holds_folder = True
                with job_device(cfg):  # local_gpus: hold one free GPU
                    base = _base(cfg, job)
                    return fn(cfg, job, base, attempt)
        except (KeyboardInterrupt, SystemExit) as stop:
            cause = _interrupt(stop)
            if cause is None:
                raise
            base = base or _base(cfg, job)
            term = isinstance(cause, Terminated)
            last = results.last_checkpoint(job.run_dir, base["resolved_config"])
            if not last.is_file():  # nothing to resume
                base["command"] = base["command"].replace(" resume=true", "")
            why = "interrupted by SIGTERM" if term else "interrupted by Ctrl-C (SIGINT)"
            if attempt.may_record():
                _write(job.run_dir, {**base, "status": "interrupted", "error": why})
                _say_measured({**base, "status": "interrupted"}, start)
            log.warning("\n[rankrobust] %s; resume with:\n  %s", why, base["command"])
            # the shell's codes for a death by the signal: 128 + 15 (SIGTERM), 128 + 2 (SIGINT)
            raise SystemExit(128 + (signal.SIGTERM if term else signal.SIGINT)) from None
        except Exception as raw:
            base = base or _base(cfg, job)
            err = as_config_error(raw)
            error = f"{type(err).__name__}: {err}"
            if attempt.may_record():
                _write(job.run_dir, {**base, "status": "failed", "error": error})
                _say_measured({**base, "status": "failed"}, start)
            loggers.record_failure(err, raw)  # run.log: the paragraph, or the traceback
            if not job.hydra:
                raise err from raw if err is not raw else raw
            if isinstance(err, ConfigError):
                print(f"\nrankrobust: {_heading(err, job)}\n  {err}\n", file=sys.stderr)
                if not job.multirun:
                    sys.exit(2)
                if isinstance(err, FolderBusy):  # the other run's folder and record stay
                    return {"status": "skipped", "error": error, "run_dir": str(job.run_dir)}
            elif job.multirun:  # the sweep goes on; sweep_summary.json names this job
                print(f"[rankrobust] job {job.job_num} failed:", file=sys.stderr)
                traceback.print_exc()
            else:
                raise
            return {**base, "status": "failed", "error": error}
        finally:
            loggers.finish_wandb()
            end_ddp()  # a multirun's next job in this process starts its own process group

    return wrapped


def _heading(err: ConfigError, job: JobInfo) -> str:
    if isinstance(err, FolderBusy):
        return f"job {job.job_num} skipped" if job.multirun else "run folder in use"
    return "cannot write" if isinstance(err, StorageError) else "configuration error"


def _say_measured(record: dict, start: float) -> None:
    """The closing lines of a run stopped after its test: the accuracies measured are kept in
    metrics.json (written as soon as they were measured) and shown."""
    if record.get("clean_acc") is None and record.get("robust_acc") is None:
        return
    record["timings"] = {**(record.get("timings") or {}), "total": time.perf_counter() - start}
    with contextlib.suppress(Exception):  # never hide the stop's own message
        log.warning("\n".join(results.closing_lines(record)))


def _base(cfg: DictConfig, job: JobInfo) -> dict:
    return results.base_record(_plain(cfg), job.run_dir, job.experiment, resume_command(job))


@task_wrapper
def run(cfg: DictConfig, job: JobInfo, base: dict, attempt: Attempt) -> dict:
    """Train (or load) the model, test it, run the analyses; write run_dir/metrics.json."""
    start, timings = time.perf_counter(), base["timings"]
    loggers.setup_logging()
    spec = checks.check_config(cfg)
    last = spec.last_checkpoint(job.run_dir)
    if spec.resume and job.multirun and not last.is_file() and not _finished(job.run_dir):
        spec = dataclasses.replace(spec, resume=False)  # -m resume=true: nothing to resume, start
        attempt.resuming = False
        log.info("[rankrobust] %s: nothing to resume (no %s): the job starts", job.run_dir,
                 last.name)  # fmt: skip
    if run_folder.check_run_dir(job, spec.resume, last):
        log.info("[rankrobust] %s finished before (metrics.json says ok): nothing to resume "
                 "or rerun; its results are kept as they are", job.run_dir)  # fmt: skip
        return results.read_metrics(job.run_dir)
    if spec.resume:
        cfg, spec = _resumed(cfg, spec, job, last)
        base.update({**_base(cfg, job), "timings": timings})
    # Lightning and the analyses load only now: a refused setting is reported in the time
    # Hydra and torch take to start (about half of Lightning's)
    import pytorch_lightning as pl

    from rankrobust.pipeline import analyses, build
    from rankrobust.pipeline.callbacks import TimeEstimate

    pl.seed_everything(spec.seed, workers=True, verbose=False)
    dm = build.datamodule(spec)
    module = build.module(spec, build.model(spec))
    logs = loggers.build(spec, job.run_dir, job.sweep_dir)
    cbs = build.callbacks(spec)
    for cb in cbs:  # the job's estimate counts the test and analyses after training
        if isinstance(cb, TimeEstimate):
            cb.work = functools.partial(analyses.planned_work, spec, dm)
    trainer = build.trainer(spec, job.run_dir, logs, cbs)
    prepare_ddp_children(cfg, job.run_dir)  # DDP: the extra processes rerun this config
    _note_precision(spec.config, trainer)
    _write(job.run_dir, {**base, "status": "running"})
    attempt.recorded = True
    timings["setup"] = time.perf_counter() - start
    if spec.train:  # every DDP process trains; rank 0 says how to resume
        if rank_zero():
            log.info("[rankrobust] run folder: %s", job.run_dir)
            log.info("[rankrobust] resume with: %s", base["command"])
        tick = time.perf_counter()
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if spec.resume else None)
        timings["fit"] = time.perf_counter() - tick
    tick = time.perf_counter()
    tested = trainer.test(module, datamodule=dm, verbose=False)[0]
    timings["test"] = time.perf_counter() - tick
    metrics = {
        **base,
        "clean_acc": tested.get("test/clean_acc"),
        "robust_acc": tested.get("test/robust_acc"),
        "clean_acc_attacked": tested.get("test/clean_acc_attacked"),
        "eval_attack": _as_dict(spec.eval_attack),
        "checkpoint": str(last) if last.exists() else spec.config["model"].get("checkpoint"),
        "n_test": _count(tested.get("test/n_clean")),
        "n_robust": _count(tested.get("test/n_robust")),
        "eval_precision": spec.eval.precision,
        "precision": str(trainer.precision),  # what ran (Lightning may replace what was asked)
        **_model_facts(module.model, dm),
        **_data_used(base, dm, job),
    }
    if not trainer.is_global_zero:
        return {**metrics, "status": results.final_status(None)}
    # kept from now on: a kill, SIGTERM or failure in the analyses leaves these numbers
    base.update(metrics)
    _write(job.run_dir, {**base, "status": "running"})
    module.to(trainer.strategy.root_device)  # Lightning's teardown moved it to the CPU
    found, errors, spent = analyses.run_all(spec, module, dm, job.run_dir)
    per_image = {**_test_outcomes(module, dm), **found.pop(analyses.OUTCOMES, {})}
    if per_image:
        metrics["per_image"] = runs.PER_IMAGE
    metrics.update(found, status=results.final_status(errors))
    metrics["warnings"] = results.number_warnings(metrics)
    if errors:
        metrics["analysis_errors"] = errors
    if spec.skipped:
        metrics["skipped_analyses"] = list(spec.skipped)
    timings.update(spent, total=time.perf_counter() - start)
    metrics["finished_at"] = results.now_utc()  # the newer of two runs of one seed is kept
    try:
        if per_image:
            runs.write_per_image(job.run_dir / runs.PER_IMAGE, per_image)
        results.write_metrics(job.run_dir, metrics)
    except OSError as err:  # a full disk: what was computed is shown (_say_measured), then
        base.update(metrics)  # one paragraph
        raise _unsaved(err, job.run_dir) from err
    loggers.log_results(logs, metrics, job.run_dir)
    lines = results.closing_lines(metrics, loggers.wandb_dir(logs))
    if spec.skipped:  # just before the "results:" line
        at = next(i for i, line in enumerate(lines) if line.startswith("  results:"))
        lines.insert(at, skipped_line(list(spec.skipped)))
    log.info("\n".join(lines))
    return metrics


def _resumed(cfg: DictConfig, spec, job: JobInfo, last: Path):
    """The config a resume continues with (pipeline/resume.py's rule): the folder's saved
    values put back where this release's defaults differ, checked again. Raises ConfigError
    when the command line changes a setting of the run."""
    changes = resume.check(job, spec.config, last)
    for line in resume.notes(changes):
        log.info("[rankrobust] resume: %s", line)
    if not changes.kept:
        return cfg, spec
    cfg = copy.deepcopy(cfg)
    for key, value in changes.kept.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg, checks.check_config(cfg)


def _unsaved(err: OSError, run_dir: Path) -> ConfigError:
    """The paragraph for results that were computed (and printed) but cannot be saved."""
    path = run_dir / run_folders.FILENAME
    unsaved = storage_error(err, f"'{path}'")
    return StorageError(
        f"{unsaved} The results printed were computed but not all saved: {path.name} keeps its "
        f"last record, status {results.run_status(run_dir) or 'nothing'!r} (running = "
        "unfinished) with the test accuracies."
    )


def _plain(cfg: DictConfig) -> dict:
    """The config as a plain dict, resolved where it resolves (a bad interpolation is kept)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:
        return OmegaConf.to_container(cfg, resolve=False)


def _write(run_dir: Path, metrics: dict) -> None:
    """metrics.json from global rank 0 only; a folder that cannot be written is said, once.

    A finished run's record (ok or partial) is only ever replaced by a new finished one: a run
    resumed in its folder, or a second run started there, writes no running / failed /
    interrupted record over it (killed or refused, the old accuracies stay).
    """
    if not rank_zero():
        return
    if metrics["status"] in ("running", "failed", "interrupted") and _finished(run_dir):
        return
    try:
        results.write_metrics(run_dir, metrics)
    except OSError as err:
        print(f"[rankrobust] cannot write {run_dir / run_folders.FILENAME}: {err}", file=sys.stderr)


def _as_dict(spec) -> dict | None:
    return dataclasses.asdict(spec) if spec is not None else None


def _finished(run_dir: Path) -> bool:
    return results.run_status(run_dir) in ("ok", "partial")


def _test_outcomes(module, dm) -> dict:
    """The test's per-image outcomes {"clean", "robust"} indexed by test-set index ({} when
    the test ran on several processes: each saw an interleaved share)."""
    found = module.test_outcomes()
    if not found:
        return {}
    index = dm.test_index()
    return {name: o.reindexed(index[: o.n]) for name, o in found.items()}


def _model_facts(model, dm) -> dict:
    """Which input normalisation the model applied and how many classes the test set held."""
    facts: dict = {"normalization": getattr(model, "normalization", None)}
    evaluated = getattr(dm, "classes_evaluated", None)
    if evaluated is not None:
        facts["n_classes_evaluated"] = evaluated
    return facts


def _data_used(base: dict, dm, job: JobInfo) -> dict:
    """n_train_used, and the identity rewritten with it when dataset.n_train asked for more
    images than the data holds (a run on 90 images is not recorded as one on 10,000)."""
    used = getattr(dm, "n_train_used", None)
    if used is None:
        return {}
    facts: dict = {"n_train_used": used}
    asked = base["config"].get("n_train")
    if asked is not None and used != asked:
        config = copy.deepcopy(base["resolved_config"])
        config["dataset"]["n_train"] = used
        facts["config"] = run_identity(config, job.experiment)
    return facts


# Lightning's names for a precision it was given in short form: not a change worth a word.
_PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}


def _note_precision(config: dict, trainer) -> None:
    """Say when the trainer runs another precision than trainer.precision asked for (on a CPU,
    Lightning runs 16-mixed as bf16-mixed); metrics.json's `precision` records what ran."""
    asked = str((config.get("trainer") or {}).get("precision"))
    ran = str(trainer.precision)
    if asked != "auto" and _PRECISION_ALIASES.get(asked, asked) != ran:
        log.warning(
            "[rankrobust] trainer.precision=%s runs as %s on this %s; metrics.json records "
            "precision=%s.",
            asked, ran, trainer.strategy.root_device.type, ran,
        )  # fmt: skip


def _count(value) -> int | None:
    return None if value is None else int(round(float(value)))


def main(argv: list[str] | None = None) -> int:
    """`python -m rankrobust.pipeline.task ddp-child <config.yaml> <run_dir>`: a DDP child."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["ddp-child"] and len(argv) == 3:
        run(OmegaConf.load(argv[1]), argv[2])
        return 0
    print(
        "usage: python -m rankrobust.pipeline.task ddp-child <config.yaml> <run_dir>",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
