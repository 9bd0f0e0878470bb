"""Hydra entry point: `python run.py [overrides]`; sweeps: `python run.py -m rank=1,4,16,32`."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rankrobust.launch.overrides import check_cli
from rankrobust.pipeline import resolvers, task  # noqa: F401  (resolvers: ${rr_*:...} in conf/)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return task.run(cfg).get("clean_acc")


if __name__ == "__main__":
    check_cli(sys.argv[1:], Path(__file__).parent / "conf")  # a key the config lacks: exit 2
    main()
