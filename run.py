"""Hydra entry point: `python run.py [overrides]`; sweeps: `python run.py -m rank=1,4,16,32`."""

import hydra
from omegaconf import DictConfig

from rankrobust.pipeline import resolvers, task  # noqa: F401  (resolvers: ${rr_*:...} in conf/)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return task.run(cfg).get("clean_acc")


if __name__ == "__main__":
    main()
