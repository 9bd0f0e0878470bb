"""Hydra entry point: `python run.py [overrides]`, or `python run.py -m rank=1,4,16,32` to sweep."""

from __future__ import annotations

import sys
import traceback

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rankrobust.errors import ConfigError
from rankrobust.launch import job_device, record_failure, register_resolvers

register_resolvers()  # ${rr_local_jobs:...} in conf/launcher/local_gpus.yaml


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from rankrobust import pipeline

    hc = HydraConfig.get()
    multirun = hc.mode.name == "MULTIRUN"
    group = hc.sweep.dir if multirun else None
    try:
        with job_device(cfg):  # launcher=local_gpus: hold one free GPU for this job
            metrics = pipeline.run(cfg, hc.runtime.output_dir, group=group)
    except Exception as err:
        if not multirun:
            if isinstance(err, ConfigError):
                print(f"\nrankrobust: configuration error\n  {err}\n", file=sys.stderr)
                sys.exit(2)
            raise
        # A sweep goes on: the job's metrics.json says failed, sweep_summary.json names it.
        record_failure(hc.runtime.output_dir, err)
        print(f"[rankrobust] job {hc.job.num} failed:", file=sys.stderr)
        traceback.print_exc()
        return None
    return metrics.get("clean_acc")


if __name__ == "__main__":
    main()
