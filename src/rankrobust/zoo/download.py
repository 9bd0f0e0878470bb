"""Fetch RobustBench weights into a models folder, on a machine with a network.

    python -m rankrobust.zoo.download --model-dir models --dataset cifar10 --threat-model Linf \\
        Carmon2019Unlabeled Wong2020Fast

Each name is checked against the shipped leaderboard entries first (a misspelt name is one
paragraph with the closest names, exit 2, before any download), then fetched by RobustBench's own
`robustbench.utils.load_model(name, model_dir, dataset, threat_model)` into
`<model-dir>/<dataset>/<threat model>/<name>.pt`, the layout `model=robustbench` and `make zoo`
read. `robustbench_compat()` first makes robustbench 1.1.1 importable where setuptools no longer
ships `pkg_resources` (a plain `python -c "from robustbench.utils import load_model"` fails there).
Needs the robustbench extra (`pip install '.[robustbench]'`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rankrobust.errors import ConfigError
from rankrobust.zoo.entries import robustbench_entry


def download(
    names: list[str], model_dir: str | Path, dataset: str = "cifar10", threat_model: str = "Linf"
) -> list[Path]:
    """Fetch each entry's weights; returns the files, `<model_dir>/<dataset>/<threat>/<name>.pt`.

    Raises ConfigError for a name RobustBench does not list for (dataset, threat_model), before
    anything is fetched, and when robustbench is not installed.
    """
    entries = [robustbench_entry(name, dataset, threat_model) for name in names]
    from rankrobust.models.external import robustbench_compat

    robustbench_compat()
    try:
        from robustbench.utils import load_model
    except ImportError as err:
        raise ConfigError(
            f"robustbench cannot be imported ({err}): pip install '.[robustbench]' "
            "(robustbench==1.1.1) in this environment."
        ) from None
    files = []
    for entry in entries:
        load_model(entry.name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)
        files.append(Path(model_dir) / dataset / threat_model / f"{entry.name}.pt")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rankrobust.zoo.download",
        description="Fetch RobustBench weights into MODEL_DIR/<dataset>/<threat model>/<name>.pt "
        "(a network is needed; copy the folder to the machine that runs the zoo).",
    )
    parser.add_argument("names", nargs="+", help="RobustBench entry names")
    parser.add_argument("--model-dir", default="models", help="the models folder (models)")
    parser.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet")
    parser.add_argument("--threat-model", default="Linf", help="Linf, L2 or corruptions")
    args = parser.parse_args(argv)
    try:
        files = download(args.names, args.model_dir, args.dataset, args.threat_model)
    except ConfigError as err:
        print(f"rankrobust: {err}", file=sys.stderr)
        return 2
    for path in files:
        print(f"[download] {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
