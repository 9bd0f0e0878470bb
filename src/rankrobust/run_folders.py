"""Where the runs are: the one walk of a folder of runs, shared by every reader (collect and
through it figures / report / dashboard, the sweep summary).

A run folder is one holding a ``metrics.json`` or a Hydra ``.hydra/`` folder. The walk accepts
the arrangements runs end up in: the root itself a run (or its metrics.json), single runs and
multirun jobs at any depth (a sweep inside a sweep, a run holding sub-runs), folders with
spaces or non-ASCII names, symbolic links to run folders or to folders of runs. Each run is
listed once, however many ways it is reached (a link and its target: the path without links is
shown), and a link back to a parent (a loop) is not followed twice. It only reads.

A run's record, `metrics.json` (FILENAME), is read by `load_json` as the writer writes it:
strict JSON, finite numbers only (the writer never writes NaN or Infinity: NaN is null), and a
nesting that Python's parser can hold. `validate_metrics` raises ValueError naming the first
field (its dotted path and value) that is missing or not of the shape in `SHAPE`, so that the
readers (collect / report / figures) turn the file into an `invalid` row instead of failing on
it later; results.py (the contract) re-exports both.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["FILENAME", "SKIP", "find_run_dirs", "is_run_dir", "load_json", "validate_metrics"]

FILENAME = "metrics.json"

# Folders a run writes that never hold another run (big and slow to walk), unless one does.
SKIP = frozenset({"wandb", "checkpoints", "csv", "lightning_logs", "__pycache__", "figures"})


def run_folder_of(path: str | Path) -> Path:
    """The run folder a path names: the folder itself, or the folder of its metrics.json
    (``~`` expanded; a relative path stays relative to the current directory)."""
    path = Path(path).expanduser()
    return path.parent if path.name == FILENAME and path.is_file() else path


def is_run_dir(path: str | Path) -> bool:
    """True for a folder holding a metrics.json or a `.hydra/` folder."""
    path = Path(path)
    return (path / FILENAME).is_file() or (path / ".hydra").is_dir()


def _walked(here: Path, name: str) -> bool:
    """Whether the walk enters here/name: not a run's own bulky folder or a hidden one
    (.hydra, .git, .ipynb_checkpoints), unless that folder is itself a run."""
    if name not in SKIP and not name.startswith("."):
        return True
    return name != ".hydra" and (here / name / FILENAME).is_file()


def _walk(root: Path, follow: bool) -> Iterable[Path]:
    """The run folders below root (root included); with ``follow``, through symbolic links
    too, each real folder entered once (a link back to a parent is a loop, not followed)."""
    entered: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow):
        here = Path(dirpath)
        if follow:
            real = os.path.realpath(dirpath)
            if real in entered:
                dirnames[:] = []
                continue
            entered.add(real)
        if FILENAME in filenames or ".hydra" in dirnames:
            yield here
        dirnames[:] = sorted(d for d in dirnames if _walked(here, d))


def find_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Run folders under ``roots`` (folders, or a run's metrics.json), sorted, each once.

    Each run is shown by a path without symbolic links below the root when it has one (a first
    walk that does not follow links), else by the first path through links. Roots that do not
    exist are skipped (the command line says so; see collect_for_cli); unreadable sub-folders
    are skipped; nothing is written.
    """
    found: dict[str, Path] = {}  # real path -> the path shown
    for follow in (False, True):
        for root in roots:
            root = run_folder_of(root)
            if root.is_dir():
                for path in _walk(root, follow):
                    found.setdefault(os.path.realpath(path), path)
    return sorted(found.values())


# ---------------------------------------------------------------------------------------------
# A run's record: read raw, and the shape of every field a reader uses.

Check = Callable[[Any, str], None]

REQUIRED = ("schema", "status", "clean_acc", "robust_acc", "config", "timings")
CONFIG_KEYS = ("dataset", "model", "attack", "rank", "seed")


def load_json(path: str | Path) -> Any:
    """The JSON in `path`; ValueError naming the file for NaN, Infinity (a number too large for
    a float, e.g. 1e400) or nesting too deep to read. OSError when unreadable."""
    path = Path(path)

    def refuse(token: str) -> float:
        raise ValueError(f"{path}: holds the number {token}, which no run writes (null is NaN)")

    def finite(token: str) -> float:
        value = float(token)
        return value if math.isfinite(value) else refuse(token)

    try:
        return json.loads(path.read_text(), parse_constant=refuse, parse_float=finite)
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply to be a run's record") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(
    lo: float = -math.inf, hi: float = math.inf, integer: bool = False, what: str = ""
) -> Check:
    what = what or ("an integer" if integer else "a finite number")

    def check(value: Any, where: str) -> None:
        if value is None:
            return
        ok = _is_number(value) and math.isfinite(value) and lo <= value <= hi
        if not ok or (integer and not float(value).is_integer()):
            raise ValueError(f"{where}={_short(value)} is not {what} (or null)")

    return check


ACC = number(0.0, 1.0, what="an accuracy in [0, 1]")
COUNT = number(0, integer=True, what="a count (an integer >= 0)")
NUM = number()
INT = number(integer=True)


def text(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}={_short(value)} is not a string (or null)")


def scalar(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, str | bool | int | float):
        raise ValueError(f"{where}={_short(value)} is not a single value")
    if isinstance(value, float):
        NUM(value, where)


def list_of(item: Check) -> Check:
    def check(value: Any, where: str) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            raise ValueError(f"{where} is {type(value).__name__}, expected a list")
        for i, x in enumerate(value):
            item(x, f"{where}[{i}]")

    return check


def _object(value: Any, where: str, expected: str = "an object") -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is {type(value).__name__}, expected {expected}")


def map_of(item: Check, int_keys: bool = False, expected: str = "an object") -> Check:
    """{key: item}; int_keys: every key an integer (a rank or a cutoff)."""

    def check(value: Any, where: str) -> None:
        if value is None:
            return
        _object(value, where, expected)
        for k, x in value.items():
            if int_keys and not str(k).lstrip("-").isdigit():
                raise ValueError(f"{where} has the rank {k!r}, expected an integer")
            item(x, f"{where}.{k}")

    return check


def fields(**shape: Check) -> Check:
    """An object whose named fields, where present, have these shapes (others are free)."""

    def check(value: Any, where: str) -> None:
        if value is None:
            return
        _object(value, where)
        for k, c in shape.items():
            if k in value:
                c(value[k], f"{where}.{k}")

    return check


def either(*checks: Check, what: str) -> Check:
    def check(value: Any, where: str) -> None:
        for c in checks:
            try:
                return c(value, where)
            except ValueError:
                continue
        raise ValueError(f"{where}={_short(value)} is not {what}")

    return check


def file_name(value: Any, where: str) -> None:
    """The name of a file beside metrics.json (per_image.npz), never a path elsewhere."""
    if value is not None and not (isinstance(value, str) and value and Path(value).name == value):
        raise ValueError(f"{where}={value!r} is not the name of a file in the run folder")


def anything(value: Any, where: str) -> None:
    return None


ACCS = map_of(ACC, int_keys=True, expected="{rank: accuracy}")
NUMBERS = list_of(NUM)
GRID = list_of(either(NUM, NUMBERS, what="a number or a list of numbers"))
CONFIG = fields(
    dataset=text, model=text, attack=text, arch=text, kind=text, name=text, experiment=text,
    transform_mode=text, transform_basis=text, weights=scalar, setup=text,
    rank=INT, seed=scalar, max_epochs=INT, n_train=INT, train=scalar,
    band=list_of(INT), apply_to=either(text, list_of(text), what="a split or a list of splits"),
    threat=text, limits=text,  # identity: a label (threat "Linf 8/255", limits "limit_...=2")
)  # fmt: skip
HEAT_MAP = fields(freqs=NUMBERS, ranks=NUMBERS, error=GRID, eps=NUM, n_images=COUNT)
PER_METHOD = map_of(map_of(either(NUM, NUMBERS, what="a number or a list of numbers")))
SHAPE: dict[str, Check] = {
    "schema": INT,
    "status": text,
    "error": anything,  # shown as it is
    "clean_acc": ACC,
    "robust_acc": ACC,
    "clean_acc_attacked": ACC,
    "n_test": COUNT,
    "n_robust": COUNT,
    "n_train_used": COUNT,
    "n_classes_evaluated": COUNT,
    "basis_sweep_n": COUNT,
    "rank_sweep_n": either(COUNT, map_of(COUNT), what="a count or {mode: count}"),
    "kind": text,
    "threat": fields(norm=text, eps=NUM),
    "run_dir": text,
    "checkpoint": text,
    "command": text,
    "config": CONFIG,
    "resolved_config": fields(dataset=fields(num_classes=COUNT)),
    "timings": map_of(NUM),
    "eval_attack": fields(name=text, eps=NUM, step_size=NUM, steps=INT),
    "analysis_errors": map_of(anything),
    "normalization": fields(source=text, mean=NUMBERS, std=NUMBERS),
    "rank_sweep": map_of(ACCS, expected="{mode: {...}}"),
    "rank_sweep_clean_attacked": map_of(ACCS, expected="{mode: {...}}"),
    "basis_sweep": map_of(map_of(map_of(NUM, int_keys=True))),
    "heat_maps": map_of(HEAT_MAP),
    "perturbation_spectrum": fields(clean=NUMBERS, perturbation=NUMBERS, n_images=COUNT),
    "rig": fields(top4_share=NUM, median_rel_delta=NUM, mean_per_rank=NUMBERS, ranks=NUMBERS),
    "attribution": fields(
        methods=list_of(text),
        metrics=list_of(text),
        n_images=COUNT,
        steps=INT,
        mean=PER_METHOD,
        per_image=PER_METHOD,
        curves=PER_METHOD,
        evaluations=map_of(NUM),
    ),  # fmt: skip
    "warnings": list_of(text),
    "per_image": file_name,  # per_image.npz, beside metrics.json (rankrobust.runs)
    # a zoo job's entry (rankrobust.zoo.Entry.block; docs/zoo.md): reported accuracies cited
    "zoo": fields(
        name=text,
        source=text,
        dataset=text,
        threat_model=text,
        architecture=text,
        kind=text,
        threat=fields(norm=text, eps=NUM),
        clean_acc_reported=ACC,
        autoattack_acc_reported=ACC,
        venue=text,
        link=text,
        weights=text,
    ),  # fmt: skip
}


def validate_metrics(metrics: Any) -> None:
    """Raise ValueError naming the field that is missing or malformed (see `SHAPE`).

    Checked: the file holds an object; REQUIRED keys present; `config` an object with
    CONFIG_KEYS; every field of `SHAPE` that is present has its shape: accuracies null or in
    [0, 1], counts integers >= 0, rank sweeps {mode: {rank: accuracy or null}} (null is how the
    writer stores NaN: a valid, unmeasured point), and so on.
    """
    if not isinstance(metrics, dict):
        raise ValueError(f"the file holds {type(metrics).__name__}, expected an object")
    missing = [k for k in REQUIRED if k not in metrics]
    if missing:
        raise ValueError(f"lacks {missing}")
    _object(metrics["config"], "config")
    missing = [k for k in CONFIG_KEYS if k not in metrics["config"]]
    if missing:
        raise ValueError(f"config lacks {missing}")
    for key, check in SHAPE.items():
        if key in metrics:
            check(metrics[key], key)
