"""A zoo is a list of entries: RobustBench leaderboard entries (shipped with the package) and
local checkpoints. This module reads, selects and validates them; it loads no weights (the
run loads them: `rankrobust.models.external` for RobustBench, `models.checkpoints` for files).

An entry in a zoo yaml (a list) is one of:

- ``{name: Rice2020Overfitting, dataset: cifar10, threat_model: L2}``: a RobustBench entry;
- ``{name: mine, checkpoint: <file>, arch: preact_resnet18, kind: robust,
  threat: {norm: linf, eps: 0.0314}}``: a local checkpoint (a relative path is read from the
  zoo yaml's folder; ``dataset`` defaults to cifar10);
- ``{select: {dataset: cifar10, threat_model: L2, architecture: PreActResNet-18}}``: every
  shipped RobustBench entry that matches (any of the three keys may be left out).
"""

from __future__ import annotations

import difflib
import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rankrobust.errors import ConfigError

SHIPPED = Path(__file__).with_name("robustbench_entries.json")  # zoo/generate.py writes it
DATASETS = ("cifar10", "cifar100", "imagenet")
THREAT_MODELS = ("Linf", "L2", "corruptions")
KINDS = ("natural", "robust")
NORMS = ("linf", "l2")
# Architectures a local checkpoint may name: the model registry's own (rankrobust.models).
CHECKPOINT_ARCHS = ("small_cnn", "resnet_small", "preact_resnet18", "wide_resnet", "wrn28_10",
                    "wrn34_10", "resnet50", "torchvision")  # fmt: skip
_ROBUSTBENCH_KEYS = {"name", "dataset", "threat_model"}
_CHECKPOINT_KEYS = {"name", "checkpoint", "arch", "kind", "threat", "dataset"}


@dataclass(frozen=True)
class Entry:
    """One model of a zoo. ``threat``: {"norm": "linf" | "l2", "eps": float} or None (natural,
    corruptions); accuracies are fractions in [0, 1] as the leaderboard reports them (None for
    a checkpoint). ``checkpoint``: the local file (source "checkpoint"), else None."""

    name: str
    source: str  # "robustbench" | "checkpoint"
    dataset: str
    threat_model: str  # Linf | L2 | corruptions; checkpoints: Linf | L2 | none
    architecture: str | None
    kind: str
    threat: dict | None
    clean_acc_reported: float | None = None
    autoattack_acc_reported: float | None = None
    venue: str | None = None
    link: str | None = None
    checkpoint: str | None = None

    def block(self, weights: str | Path) -> dict:
        """metrics.json's ``zoo`` object for this entry (docs/zoo.md), ``weights`` the file
        that is (or would be) loaded."""
        out = {k: v for k, v in asdict(self).items() if k != "checkpoint"}
        return {**out, "weights": str(weights)}


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[dict, ...]:
    return tuple(json.loads(SHIPPED.read_text()))


def robustbench_entries(
    dataset: str | None = None, threat_model: str | None = None, architecture: str | None = None
) -> list[Entry]:
    """The shipped RobustBench entries matching every given filter (architecture as the
    leaderboard writes it, e.g. "WideResNet-28-10", compared without case). ConfigError for a
    dataset or threat model RobustBench does not have."""
    if dataset is not None and dataset not in DATASETS:
        raise ConfigError(f"dataset={dataset!r}: RobustBench's datasets are {', '.join(DATASETS)}.")
    if threat_model is not None and threat_model not in THREAT_MODELS:
        raise ConfigError(
            f"threat_model={threat_model!r}: RobustBench's threat models are "
            f"{', '.join(THREAT_MODELS)} (case as written)."
        )
    arch = architecture.lower() if architecture else None
    return [
        _from_record(r)
        for r in _shipped()
        if (dataset is None or r["dataset"] == dataset)
        and (threat_model is None or r["threat_model"] == threat_model)
        and (arch is None or (r["architecture"] or "").lower() == arch)
    ]


def _from_record(r: dict) -> Entry:
    natural = r["name"].startswith("Standard")
    threat = None
    if not natural and r["threat_model"] in ("Linf", "L2"):
        threat = {"norm": r["threat_model"].lower(), "eps": r["eps"]}
    return Entry(
        name=r["name"], source="robustbench", dataset=r["dataset"],
        threat_model=r["threat_model"], architecture=r["architecture"],
        kind="natural" if natural else "robust", threat=threat,
        clean_acc_reported=r["clean_acc"], autoattack_acc_reported=r["autoattack_acc"],
        venue=r["venue"], link=r["link"],
    )  # fmt: skip


def robustbench_entry(name: str, dataset: str = "cifar10", threat_model: str = "Linf") -> Entry:
    """The shipped entry ``name`` of (dataset, threat model); ConfigError naming the closest
    names when there is none."""
    pool = robustbench_entries(dataset, threat_model)
    for entry in pool:
        if entry.name == name:
            return entry
    close = difflib.get_close_matches(name, [e.name for e in pool], n=3, cutoff=0.5)
    elsewhere = [f"{e.dataset}/{e.threat_model}" for e in robustbench_entries() if e.name == name]
    hint = f" It is an entry of {', '.join(elsewhere)}." if elsewhere else ""
    if close:
        hint += f" Closest names: {', '.join(close)}."
    raise ConfigError(
        f"RobustBench has no entry {name!r} for dataset {dataset!r}, threat model "
        f"{threat_model!r}.{hint} The names are the file names of RobustBench's model_info "
        'folder (python -c "from rankrobust.zoo import robustbench_entries; '
        f"print([e.name for e in robustbench_entries('{dataset}', '{threat_model}')])\")."
    )


def _problem(unknown: set) -> str:
    return f"unknown: {', '.join(sorted(unknown))}" if unknown else "name is missing"


def _where(path: Path, i: int) -> str:
    return f"{path}: entry {i + 1}"


def _checkpoint_entry(item: dict, where: str, folder: Path) -> Entry:
    """A local checkpoint entry, checked (the file itself is checked when the job runs, so a
    missing file is a failed job that says where to copy it, not a refused zoo)."""
    arch, kind, threat = item.get("arch"), item.get("kind"), item.get("threat")
    if arch not in CHECKPOINT_ARCHS:
        raise ConfigError(
            f"{where}: arch={arch!r} is not an architecture of rankrobust.models: use one of "
            f"{', '.join(CHECKPOINT_ARCHS)} (a RobustBench network is named by its entry: "
            "{name, dataset, threat_model})."
        )
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind={kind!r}: use kind: natural or kind: robust.")
    if kind == "natural" and threat:
        raise ConfigError(f"{where}: a natural model has no threat model; drop threat: {threat}.")
    if kind == "robust":
        if not isinstance(threat, dict) or str(threat.get("norm")).lower() not in NORMS:
            raise ConfigError(
                f"{where}: threat={threat!r}: a robust checkpoint needs threat: {{norm: linf | "
                "l2, eps: <budget>}}, e.g. {norm: linf, eps: 0.0314} (8/255) or {norm: l2, "
                "eps: 0.5}."
            )
        eps = threat.get("eps")
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
            raise ConfigError(f"{where}: threat.eps={eps!r} must be a number > 0.")
        threat = {"norm": str(threat["norm"]).lower(), "eps": float(eps)}
    dataset = item.get("dataset", "cifar10")
    if dataset not in DATASETS:
        raise ConfigError(f"{where}: dataset={dataset!r}: use one of {', '.join(DATASETS)}.")
    file = Path(str(item["checkpoint"])).expanduser()
    return Entry(
        name=str(item["name"]), source="checkpoint", dataset=dataset,
        threat_model={"linf": "Linf", "l2": "L2"}[threat["norm"]] if threat else "none",
        architecture=arch, kind=kind, threat=threat,
        checkpoint=str(file if file.is_absolute() else (folder / file).resolve()),
    )  # fmt: skip


def parse_entries(items: Any, path: Path) -> list[Entry]:
    """The entries of a zoo yaml's list ``items`` (read from ``path``). ConfigError naming the
    file, the entry's position and the fix for every malformed entry; a name given twice is
    refused (it names the job folder)."""
    if not isinstance(items, list) or not items:
        raise ConfigError(
            f"{path}: a zoo is a non-empty yaml list of entries, e.g. '- {{name: "
            "Rice2020Overfitting, dataset: cifar10, threat_model: L2}' (docs/zoo.md)."
        )
    out: list[Entry] = []
    for i, item in enumerate(items):
        where = _where(path, i)
        if not isinstance(item, dict):
            raise ConfigError(f"{where} is {item!r}, not a mapping such as {{name: ..., ...}}.")
        keys = set(item)
        if keys == {"select"} and isinstance(item["select"], dict):
            unknown = set(item["select"]) - {"dataset", "threat_model", "architecture"}
            if unknown:
                raise ConfigError(f"{where}: select takes dataset, threat_model, architecture; "
                                  f"not {', '.join(sorted(unknown))}.")  # fmt: skip
            try:
                picked = robustbench_entries(**item["select"])
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
            if not picked:
                raise ConfigError(f"{where}: no RobustBench entry matches {item['select']}.")
            out.extend(picked)
        elif "checkpoint" in keys:
            unknown = keys - _CHECKPOINT_KEYS
            if unknown or "name" not in keys:
                raise ConfigError(
                    f"{where}: a checkpoint entry takes name, checkpoint, arch, kind, threat "
                    f"(and dataset); {_problem(unknown)}."
                )
            out.append(_checkpoint_entry(item, where, path.parent))
        else:
            unknown = keys - _ROBUSTBENCH_KEYS
            if unknown or "name" not in keys:
                raise ConfigError(
                    f"{where}: a RobustBench entry is {{name, dataset, threat_model}}; "
                    f"{_problem(unknown)}. A local file also needs checkpoint, arch, kind, threat."
                )
            try:
                out.append(robustbench_entry(str(item["name"]), item.get("dataset", "cifar10"),
                                             item.get("threat_model", "Linf")))  # fmt: skip
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
    seen: set[tuple[str, str, str]] = set()
    for e in out:
        key = (e.name, e.dataset, e.threat_model)
        if key in seen:
            raise ConfigError(f"{path}: the entry {e.name!r} ({e.dataset}, {e.threat_model}) is "
                              "given twice; each entry is one job: list it once.")  # fmt: skip
        seen.add(key)
    return out


def read_zoo(path: str | Path) -> list[Entry]:
    """The entries of the zoo yaml at ``path`` (`parse_entries`); ConfigError when the file is
    absent or not yaml."""
    import yaml

    path = Path(path).expanduser()
    try:
        items = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"The zoo file {path} cannot be read ({err.strerror or err}).") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"The zoo file {path} is not yaml: {str(err).splitlines()[0]}") from err
    return parse_entries(items, path)
