"""Hydra entry point: `python run.py [overrides]`, or `python run.py -m rank=1,4,16,32` to sweep."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rankrobust.errors import ConfigError


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from rankrobust import pipeline

    hc = HydraConfig.get()
    group = hc.sweep.dir if hc.mode.name == "MULTIRUN" else None
    try:
        metrics = pipeline.run(cfg, hc.runtime.output_dir, group=group)
    except ConfigError as err:
        print(f"\nrankrobust: configuration error\n  {err}\n", file=sys.stderr)
        sys.exit(2)
    return metrics.get("clean_acc")


if __name__ == "__main__":
    main()
