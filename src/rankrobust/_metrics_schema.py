"""The shape of every metrics.json field a reader uses, and the one raw JSON reader.

`validate_metrics` raises ValueError naming the first malformed field (its dotted path and
value), so that collect / report / figures turn the file into an `invalid` row instead of
failing on it later. Every field below may be null (the writer stores NaN as null, and older
files lack newer fields); a field that is present has the shape given here. `load_json` reads a
file as the writer writes it: strict JSON objects, finite numbers only (the writer never writes
NaN or Infinity), and a nesting that Python's parser can hold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    threat=fields(norm=text, eps=NUM), limits=map_of(scalar),
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
