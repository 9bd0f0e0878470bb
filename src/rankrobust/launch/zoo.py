"""`make zoo`: every entry of a zoo is one job of one Hydra multirun (docs/zoo.md).

`write_entry_configs` writes one config-group option per entry, ``<out>/conf/zoo_entry/<name>.yaml``
(``@package _global_``): the entry's model (RobustBench's network from ``<models>/<dataset>/
<threat model>/<name>.pt``, or a local checkpoint with its architecture, kind and threat), its
threat model's attack (L2: PGD L2 at its eps; Linf: PGD Linf; natural and corruptions: none) and
the metrics.json ``zoo`` block. `zoo_command` sweeps them, ``+zoo_entry=a,b,c`` with
``experiment=zoo``, so any launcher (basic, joblib, submitit / SLURM) runs a zoo. Job folders
are ``<out>/runs/<name>_<key>`` (pipeline/resolvers.job_name): a rerun skips finished jobs.

    python -m rankrobust.launch.zoo --models DIR --out DIR --data IMAGES [--zoo FILE] [overrides]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from rankrobust.errors import ConfigError
from rankrobust.files import write_text
from rankrobust.zoo import Entry, read_zoo

REPO = Path(__file__).resolve().parents[3]  # src/rankrobust/launch/ -> the repository
DEFAULT_ZOO = Path(__file__).resolve().parents[1] / "zoo" / "default_zoo.yaml"
GROUP = "zoo_entry"
SIZE_ENV = "RANKROBUST_ZOO_SIZE"  # the number of entries, for the progress lines
_PGD = {"linf": "pgd_linf", "l2": "pgd_l2"}


def option_name(entry: Entry) -> str:
    """The entry's config-group option (and file) name: its name, path- and override-safe."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", entry.name).strip("_.") or "entry"


def weights_path(entry: Entry, models: str | Path) -> Path:
    """The file the job loads: RobustBench's cache layout under ``models``, or the checkpoint."""
    if entry.checkpoint:
        return Path(entry.checkpoint)
    root = Path(models).expanduser().resolve()
    return root / entry.dataset / entry.threat_model / f"{entry.name}.pt"


def entry_config(entry: Entry, models: str | Path) -> dict:
    """The config-group option of one entry (a plain dict, written as yaml)."""
    weights = weights_path(entry, models)
    attack = _PGD.get((entry.threat or {}).get("norm"), "none")
    cfg: dict = {"defaults": [], "zoo": entry.block(weights)}
    if entry.source == "robustbench":
        cfg["defaults"].append({"override /model": "robustbench"})
        cfg["model"] = {
            "name_rb": entry.name, "rb_dataset": entry.dataset,
            "threat_model": entry.threat_model, "model_dir": str(weights.parents[2]),
        }  # fmt: skip
    else:
        arch = entry.architecture
        cfg["defaults"].append({"override /model": arch})
        cfg["model"] = {"checkpoint": str(weights)}
    cfg["model"].update(kind=entry.kind, threat=entry.threat)
    cfg["defaults"].append({"override /attack": attack})
    if entry.threat:
        eps = float(entry.threat["eps"])
        cfg["attack"] = {"eval": {"eps": eps, "step_size": eps / 4}}
    else:  # natural, corruptions: no attack
        cfg["attack"] = {"eval": None}
    return cfg


def write_entry_configs(entries: list[Entry], conf: str | Path, models: str | Path) -> list[str]:
    """``<conf>/zoo_entry/<name>.yaml`` for every entry (other files there removed); returns
    the option names in the zoo's order."""
    import yaml

    folder = Path(conf) / GROUP
    folder.mkdir(parents=True, exist_ok=True)
    plain = [option_name(e) for e in entries]
    names = [  # one name in two leaderboards: both named by theirs
        f"{n}_{e.dataset}_{e.threat_model}" if plain.count(n) > 1 else n
        for n, e in zip(plain, entries, strict=True)
    ]
    for stale in folder.glob("*.yaml"):
        if stale.stem not in names:
            stale.unlink()
    for name, entry in zip(names, entries, strict=True):
        text = yaml.safe_dump(entry_config(entry, models), sort_keys=False)
        write_text(folder / f"{name}.yaml", f"# @package _global_\n# zoo entry {entry.name} "
                   "(written by rankrobust.launch.zoo)\n" + text)  # fmt: skip
    return names


def zoo_command(names: list[str], out: str | Path, data: str | Path | None,
                overrides: list[str]) -> list[str]:  # fmt: skip
    """The ``run.py -m`` command line that runs the zoo (one job per option name)."""
    out = Path(out).expanduser().resolve()
    cmd = [sys.executable, str(REPO / "run.py"), "-m", "experiment=zoo",
           f"hydra.searchpath=['file://{out / 'conf'}']", f"hydra.sweep.dir='{out / 'runs'}'",
           "+hydra.callbacks.zoo_progress._target_=rankrobust.launch.zoo.ZooProgress",
           f"+{GROUP}={','.join(names)}"]  # fmt: skip
    if data:
        cmd.append(f"dataset.root='{Path(data).expanduser().resolve()}'")  # quoted: any path
    return cmd + list(overrides)


try:  # hydra-core: every hook a no-op unless defined here
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object


class ZooProgress(_HydraCallback):
    """A Hydra callback: "[zoo 3/12] Rice2020Overfitting (robustbench, cifar10 L2, PreActResNet-18)"
    as each job starts, or "... finished before: skipped" for a finished job folder."""

    def on_job_start(self, config, **kwargs) -> None:
        zoo = config.get("zoo")
        if not zoo:
            return
        from rankrobust.results import run_status

        num = int(config.hydra.job.num) + 1
        size = os.environ.get(SIZE_ENV, "?")
        what = f"({zoo.source}, {zoo.dataset} {zoo.threat_model}, {zoo.architecture})"
        folder = Path(config.hydra.runtime.output_dir)
        done = run_status(folder) == "ok"
        tail = f"finished before: skipped ({folder.name})" if done else f"-> {folder.name}"
        print(f"[zoo {num}/{size}] {zoo.name} {what} {tail}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rankrobust.launch.zoo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--zoo", default=None, help=f"zoo yaml (default: {DEFAULT_ZOO.name})")
    parser.add_argument("--models", required=True, help="<dataset>/<threat model>/<name>.pt")
    parser.add_argument("--out", required=True, help="runs go to OUT/runs")
    parser.add_argument("--data", default=None, help="test images (dataset.root)")
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    args, overrides = parser.parse_known_args(argv)
    try:
        entries = read_zoo(args.zoo or DEFAULT_ZOO)
        names = write_entry_configs(entries, Path(args.out) / "conf", args.models)
    except ConfigError as err:
        print(f"\nrankrobust zoo: {err}\n", file=sys.stderr)
        return 2
    cmd = zoo_command(names, args.out, args.data, overrides)
    print(f"[zoo] {len(names)} entries -> {Path(args.out) / 'runs'}", flush=True)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    sys.stdout.flush()
    # the sweep replaces this process: a SIGTERM / Ctrl-C reaches the running job directly (it
    # records `interrupted`; make zoo again restarts it and skips the finished ones)
    os.execve(sys.executable, cmd, {**os.environ, SIZE_ENV: str(len(names))})
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
