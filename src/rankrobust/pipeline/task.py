"""One run: check, seed, instantiate, fit, test, analyse, write metrics.json (results.py).

`run(cfg)` is what run.py calls. Its one failure policy (`task_wrapper`): any exception
leaves metrics.json `failed` with the full config and the error (Ctrl-C: `interrupted` and the
resume command), W&B is finished, and under the CLI a ConfigError is one paragraph and exit
code 2 (in a multirun the sweep goes on and sweep_summary.json names the job). Outside Hydra
(tests, notebooks, DDP children) errors are raised.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
import traceback
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rankrobust import results
from rankrobust.errors import ConfigError, as_config_error
from rankrobust.launch.ddp import end_ddp, prepare_ddp_children, rank_zero
from rankrobust.launch.jobs import JobInfo, current_job, resume_command
from rankrobust.launch.lease import job_device
from rankrobust.pipeline import analyses, build, checks, loggers
from rankrobust.pipeline.loggers import log


def task_wrapper(fn):
    """Run fn(cfg, job, base) under the failure policy described in the module docstring."""

    @functools.wraps(fn)
    def wrapped(cfg: DictConfig, run_dir: str | Path | None = None) -> dict:
        job = current_job(run_dir)
        base = results.base_record(_plain(cfg), job.run_dir, job.experiment, resume_command(job))
        try:
            with job_device(cfg):  # launcher=local_gpus: hold one free GPU for this job
                base["resolved_config"] = _plain(cfg)  # the device the lease gave
                return fn(cfg, job, base)
        except (KeyboardInterrupt, SystemExit) as stop:
            # Lightning turns Ctrl-C during fit into exit(1) raised while handling it
            ctrl_c = isinstance(stop, KeyboardInterrupt) or isinstance(
                stop.__context__, KeyboardInterrupt
            )
            if not ctrl_c:
                raise
            if not (job.run_dir / "checkpoints" / "last.ckpt").is_file():  # nothing to resume
                base["command"] = base["command"].replace(" resume=true", "")
            _write(job.run_dir, {**base, "status": "interrupted"})
            log.warning("\n[rankrobust] interrupted; resume with:\n  %s", base["command"])
            raise SystemExit(130) from None
        except Exception as raw:
            err = as_config_error(raw)
            error = f"{type(err).__name__}: {err}"
            _write(job.run_dir, {**base, "status": "failed", "error": error})
            if not job.hydra:
                raise err from raw if err is not raw else raw
            if isinstance(err, ConfigError):
                print(f"\nrankrobust: configuration error\n  {err}\n", file=sys.stderr)
                if not job.multirun:
                    sys.exit(2)
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


@task_wrapper
def run(cfg: DictConfig, job: JobInfo, base: dict) -> dict:
    """Train (or load) the model, test it, run the analyses; write run_dir/metrics.json."""
    start, timings = time.perf_counter(), base["timings"]
    loggers.setup_logging()
    checks.check_config(cfg)
    if checks.check_run_dir(job.run_dir, bool(cfg.resume), skip_finished=job.multirun):
        log.info("[rankrobust] job %s: finished before, skipped (%s)", job.job_num, job.run_dir)
        return results.read_metrics(job.run_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build.datamodule(cfg)
    module = build.module(cfg, build.model(cfg))
    logs = loggers.build(cfg, job.run_dir, job.sweep_dir)
    trainer = build.trainer(cfg, job.run_dir, logs, build.callbacks(cfg))
    prepare_ddp_children(cfg, job.run_dir)  # DDP: the extra processes rerun this config
    _write(job.run_dir, {**base, "status": "running"})
    timings["setup"] = time.perf_counter() - start
    last = job.run_dir / "checkpoints" / "last.ckpt"
    if cfg.train:  # every DDP process trains; rank 0 says how to resume
        if rank_zero():
            log.info("[rankrobust] run folder: %s", job.run_dir)
            log.info("[rankrobust] resume with: %s", base["command"])
        tick = time.perf_counter()
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if cfg.resume else None)
        timings["fit"] = time.perf_counter() - tick
    tick = time.perf_counter()
    tested = trainer.test(module, datamodule=dm, verbose=False)[0]
    timings["test"] = time.perf_counter() - tick
    metrics = {
        **base,
        "status": "ok",
        "clean_acc": tested.get("test/clean_acc"),
        "robust_acc": tested.get("test/robust_acc"),
        "eval_attack": _as_dict(build.attack_spec(cfg.attack.eval)),
        "checkpoint": str(last) if last.exists() else cfg.model.get("checkpoint"),
        "n_test": _count(tested.get("test/n_clean")),
        "n_robust": _count(tested.get("test/n_robust")),
        "eval_precision": cfg.eval.precision,
    }
    if not trainer.is_global_zero:
        return metrics
    module.to(trainer.strategy.root_device)  # Lightning's teardown moved it to the CPU
    metrics.update(run_analyses(cfg, module, dm, job.run_dir, timings))
    timings["total"] = time.perf_counter() - start
    results.write_metrics(job.run_dir, metrics)
    loggers.log_results(logs, metrics, job.run_dir)
    log.info("\n".join(results.closing_lines(metrics, loggers.wandb_dir(logs))))
    return metrics


def _plain(cfg: DictConfig) -> dict:
    """The config as a plain dict, resolved where it resolves (a bad interpolation is kept)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:
        return OmegaConf.to_container(cfg, resolve=False)


def _write(run_dir: Path, metrics: dict) -> None:
    """metrics.json from global rank 0 only; a folder that cannot be written is said, once.

    A finished run's metrics.json is never replaced by a failure record (a second run started
    in its folder stops with a ConfigError and must not erase the first one's results).
    """
    if not rank_zero():
        return
    if metrics["status"] in ("failed", "interrupted") and _finished(run_dir):
        return
    try:
        results.write_metrics(run_dir, metrics)
    except OSError as err:
        print(f"[rankrobust] cannot write {run_dir / results.FILENAME}: {err}", file=sys.stderr)


def _as_dict(spec) -> dict | None:
    return dataclasses.asdict(spec) if spec is not None else None


def _finished(run_dir: Path) -> bool:
    return results.run_status(run_dir) == "ok"


def _count(value) -> int | None:
    return None if value is None else int(round(float(value)))


def run_analyses(cfg: DictConfig, module, dm, run_dir: Path, timings: dict) -> dict:
    """The rank sweep, perturbation spectrum and RIG in float32 (eval mode, no autocast).

    A failing analysis does not lose the test accuracies: the run becomes `partial` and
    metrics.json names the analysis and its error.
    """
    s = {k: instantiate(cfg[k], _convert_="all") for k in ("sweep", "rig", "analysis")}
    attack = module.eval_attack
    batch = cfg.dataset.eval_batch_size
    kind = "natural" if module.train_attack is None else "adversarial"
    title = f"RIG: {type(getattr(module.model, 'net', module.model)).__name__}, {kind} training"
    todo = {
        "rank_sweep": (s["sweep"].enabled, analyses.run_rank_sweep, (s["sweep"], attack, batch)),
        "perturbation_spectrum": (
            s["analysis"].perturbation_spectrum and attack is not None,
            analyses.run_perturbation_spectrum,
            (s["analysis"], attack, batch),
        ),
        "rig": (s["rig"].enabled, analyses.run_rig, (s["rig"], run_dir, title)),
        "basis_sweep": (
            bool(s["sweep"].enabled and s["sweep"].bases),
            analyses.run_basis_sweep,
            (s["sweep"], batch),
        ),
        "heat_maps": (s["analysis"].heat_maps, analyses.run_heat_maps, (s["analysis"], batch)),
    }
    out: dict = {}
    module.eval()
    for name, (enabled, fn, args) in todo.items():
        if not enabled:
            continue
        tick = time.perf_counter()
        try:
            with torch.autocast(device_type=module.device.type, enabled=False):
                out.update(fn(module, dm, *args))
        except Exception as err:
            log.warning("[rankrobust] analysis %s failed: %s", name, err)
            out.setdefault("analysis_errors", {})[name] = f"{type(err).__name__}: {err}"
            out["status"] = "partial"
        timings[name] = time.perf_counter() - tick
    return out


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
