"""Runs as models: a finished run folder -> its model (eval mode), its config and its metrics.

run = rankrobust.load_run("outputs/demo/robust")
run.model(images).argmax(1)          # pixels in [0, 1], normalisation inside
run.config["attack"]["name"], run.metrics["robust_acc"]
rankrobust.runs.per_image("outputs/demo/robust")["clean"].correct   # per-image outcomes

Per-image records: an :class:`Outcomes` holds, for the images one evaluation saw, their
test-set ``index`` (the position in the full test split as the datamodule loads it, so two models
evaluated on the same data pair image by image), their ``label`` and the model's top-1 ``pred``:
shape (N,) for one accuracy (clean, robust), (K, N) for a sweep with one row per ``ks[i]`` (a
rank k of L_k / H_k, or a basis cut-off). Accuracy is ``(pred == label).mean()``, exactly the
number metrics.json holds. A run stores them in one small ``per_image.npz`` (PER_IMAGE; arrays
only, no pickle), one group per evaluation, its arrays named ``<group>.index``, ``.label``,
``.pred`` and for sweeps ``.ks``. Groups: ``clean``, ``robust``, ``rank_sweep.<mode>`` (low,
high, low_robust, high_robust) and ``basis_sweep.<basis>.<mode>``. :func:`write_per_image` and
:func:`read_per_image` are its one writer and reader (a malformed file: a ValueError naming it).
"""

from __future__ import annotations

import importlib
import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from rankrobust.files import save_npz
from rankrobust.results import FILES, last_checkpoint, read_metrics
from rankrobust.run_folders import FILENAME, run_folder_of

# statuses of a run that tested its model (results.final_status); anything else is unfinished
FINISHED = ("ok", "partial")


@dataclass
class LoadedRun:
    """A trained run: `model` in eval mode on the CPU, the whole resolved `config` (a dict)
    and `metrics` (metrics.json)."""

    model: nn.Module
    config: dict
    metrics: dict
    run_dir: Path


def run_config(run_dir: str | Path) -> dict:
    """The run's resolved config (metrics.json's `resolved_config`, written by every run).

    Raises FileNotFoundError / ValueError naming the file when it is missing or holds none.
    """
    run_dir = Path(run_dir)
    config = read_metrics(run_dir).get("resolved_config")
    if not isinstance(config, dict) or not config:
        raise ValueError(
            f"'{run_dir / FILENAME}' holds no resolved_config: it was not written by a run of "
            "this pipeline (or the run stopped before its config was checked)."
        )
    return config


def _locate(target: str):
    """A dotted path 'package.module.name' -> the object (what Hydra's _target_ names)."""
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _run_folder(run_dir: str | Path) -> Path:
    """run_dir (a str or Path, relative or not, or the run's metrics.json) as a Path to an
    existing folder holding metrics.json, else TypeError / ValueError naming it."""
    if not isinstance(run_dir, str | os.PathLike):
        raise TypeError(
            f"run_dir: expected a folder path (str or Path), got {type(run_dir).__name__}"
        )
    path = run_folder_of(run_dir)
    if not path.exists():
        raise ValueError(f"run_dir='{path}' does not exist: give the folder of a run.")
    if not path.is_dir():
        raise ValueError(
            f"run_dir='{path}' is a file, not a run folder: give the folder that holds "
            f"{FILENAME} (to load a checkpoint file on its own use "
            "rankrobust.models.build_model(name, checkpoint=...))."
        )
    if not (path / FILENAME).is_file():
        raise ValueError(f"run_dir='{path}' holds no {FILENAME}: it is not a run folder.")
    return path


def _check_finished(run_dir: Path, metrics: dict, allow_unfinished: bool) -> None:
    """Refuse (or, when allowed, warn about) a run whose status is not ok / partial."""
    status = metrics.get("status")
    if status in FINISHED:
        return
    why = f"'{run_dir / FILENAME}' says status={status!r}"
    if metrics.get("error"):
        why += f" ({metrics['error']})"
    if not allow_unfinished:
        raise ValueError(
            f"run_dir='{run_dir}' is not a finished run: {why}, so its weights are those of "
            "an unfinished training. Resume it (its metrics.json `command`), or pass "
            "load_run(run_dir, allow_unfinished=True) to load them anyway."
        )
    warnings.warn(
        f"loading an unfinished run: {why}; the weights are from its last checkpoint.",
        UserWarning,
        stacklevel=3,
    )


def _here(path: Path, metrics: dict, run_dir: Path) -> Path:
    """A path the run recorded, found in this folder: a run copied from another machine (or
    moved) names its files by their old absolute paths, under metrics.json's old `run_dir`;
    those that no longer exist are taken at the same place relative to this folder."""
    old = metrics.get("run_dir")
    if path.exists() or not old or not path.is_absolute():
        return path
    try:
        moved = run_dir / path.relative_to(old)
    except ValueError:  # not inside the old run folder: nothing to relocate
        return path
    return moved if moved.exists() else path


def load_run(run_dir: str | Path, allow_unfinished: bool = False) -> LoadedRun:
    """A finished run folder -> its model in eval mode, its config and its metrics.

    The model is built from the run's resolved config (``model._target_`` and its arguments,
    ``rankrobust.models.build_model`` by default) and loaded with the run's trained weights
    (weights only, no pickled code): its last checkpoint (``results.last_checkpoint``: where
    ``callbacks.last_checkpoint.dirpath`` put it, found inside this folder even when the
    folder was copied) or else the checkpoint it evaluated (metrics.json's ``checkpoint``). A
    run that trained nothing and names no checkpoint is an error, not random weights.

    Args:
        run_dir: the run's folder (str or Path, relative or absolute) or its metrics.json. A
            run copied from another machine loads: files recorded under its old absolute
            folder are found at the same place in this one.
        allow_unfinished: load a run whose status is not "ok" / "partial" (running, failed,
            interrupted) with a UserWarning instead of refusing it.

    Returns:
        :class:`LoadedRun`: ``model`` (an ``nn.Module`` on the CPU in eval mode, taking
        (N, C, H, W) pixels in [0, 1] and returning (N, num_classes) logits: the input
        normalisation is inside), ``config`` (the resolved config, a dict), ``metrics``
        (metrics.json, a dict; results.py documents its keys) and ``run_dir`` (a Path).

    Raises:
        TypeError: ``run_dir`` is not a str or Path.
        ValueError: naming the folder or file: the folder missing, a file (e.g. a ``.pt``)
            or without metrics.json; metrics.json unreadable or without a resolved config;
            the run unfinished (unless ``allow_unfinished``); the weights missing, truncated
            or not those of the config's model.
    """
    run_dir = _run_folder(run_dir)
    try:
        metrics = read_metrics(run_dir)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"run_dir='{run_dir}': {FILENAME} cannot be read ({err}).") from None
    _check_finished(run_dir, metrics, allow_unfinished)
    config = run_config(run_dir)
    last = _here(last_checkpoint(run_dir, config), metrics, run_dir)
    named = metrics.get("checkpoint")
    if last.is_file():
        weights = str(last)
    else:
        weights = str(_here(Path(named), metrics, run_dir)) if named else None
    model_cfg = dict(config["model"])
    if weights:
        model_cfg["checkpoint"] = weights
    elif not (model_cfg.get("pretrained") or model_cfg.get("name") == "robustbench"):
        raise ValueError(
            f"run_dir='{run_dir}' has no '{last}' and names no checkpoint: there "
            "are no trained weights to load."
        )
    build = _locate(model_cfg.pop("_target_", "rankrobust.models.build_model"))
    try:
        model = build(**model_cfg)
    except Exception as err:  # noqa: BLE001 - torch / the builder raise many types
        where = f"the weights '{weights}'" if weights else "the model"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if weights and str(weights) in first:
            raise ValueError(f"run_dir='{run_dir}': {first}") from err
        raise ValueError(
            f"run_dir='{run_dir}': {where} could not be loaded into the model its config "
            f"describes ({type(err).__name__}: {first})."
        ) from err
    return LoadedRun(model=model.eval(), config=config, metrics=metrics, run_dir=run_dir)


def per_image(run_dir: str | Path) -> dict[str, Outcomes]:
    """A run's per-image record (metrics.json's `per_image`, read_per_image): {group:
    Outcomes} for clean, robust, rank_sweep.<mode>, basis_sweep.<basis>.<mode>.

    Raises FileNotFoundError naming the folder when the run has none (older runs) and
    ValueError naming the file when it is malformed."""
    run_dir = _run_folder(run_dir)
    named = read_metrics(run_dir).get("per_image")
    if not named:
        raise FileNotFoundError(
            f"run_dir='{run_dir}' has no per-image record: its {FILENAME} names no "
            "per_image file (runs before per-image records); rerun it to write one."
        )
    return read_per_image(run_dir / str(named))


# ---------------------------------------------------------------------------------------------
# Per-image records (per_image.npz).

PER_IMAGE = FILES["per_image_npz"]
PER_IMAGE_FIELDS = ("index", "label", "pred", "ks")


@dataclass(frozen=True)
class Outcomes:
    """Per-image predictions of one model on one set of images (see the module docstring)."""

    index: np.ndarray
    label: np.ndarray
    pred: np.ndarray
    ks: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("index", "label", "pred") + (("ks",) if self.ks is not None else ()):
            value = np.asarray(getattr(self, name))
            if value.dtype.kind not in "iu":
                raise ValueError(f"Outcomes.{name}: expected integers, got dtype {value.dtype}")
            object.__setattr__(self, name, value.astype(np.int64))
        n = self.index.shape
        if self.index.ndim != 1 or self.label.shape != n:
            raise ValueError(
                f"Outcomes: index {self.index.shape} and label {self.label.shape} must be (N,)"
            )
        want = n if self.ks is None else (len(self.ks), n[0])
        if self.ks is not None and self.ks.ndim != 1:
            raise ValueError(f"Outcomes.ks: expected shape (K,), got {self.ks.shape}")
        if self.pred.shape != want:
            raise ValueError(f"Outcomes.pred: expected shape {want}, got {self.pred.shape}")

    @property
    def n(self) -> int:
        return int(self.index.shape[0])

    @property
    def correct(self) -> np.ndarray:
        """Bool (N,) or (K, N): the prediction equals the label."""
        return self.pred == self.label

    def accuracy(self) -> float | dict[int, float]:
        """Share correct (one number, or {k: share} for a sweep): count / N, exactly."""
        if self.ks is None:
            return int(self.correct.sum()) / self.n
        return {int(k): int(c.sum()) / self.n for k, c in zip(self.ks, self.correct, strict=True)}

    def at(self, k: int) -> Outcomes:
        """The (N,) outcomes at sweep point k (a KeyError naming k and the ks measured)."""
        if self.ks is None:
            raise ValueError("Outcomes.at: these outcomes are not a sweep (ks is None)")
        hit = np.flatnonzero(self.ks == int(k))
        if len(hit) == 0:
            raise KeyError(f"k={k} was not measured: ks are {self.ks.tolist()}")
        return Outcomes(self.index, self.label, self.pred[hit[0]])

    def reindexed(self, index: np.ndarray) -> Outcomes:
        """The same outcomes with ``index`` (N,) as the images' test-set indices."""
        return Outcomes(np.asarray(index), self.label, self.pred, self.ks)

    def first(self, n: int) -> Outcomes:
        """The first n images' outcomes."""
        return Outcomes(self.index[:n], self.label[:n], self.pred[..., :n], self.ks)


@dataclass
class SweepResult:
    """A sweep's per-image outcomes by mode, and (basis sweeps) the mean energy kept per k.

    :meth:`accuracies` gives the plain ``{mode: {k: accuracy}}`` dict (plus "energy")."""

    outcomes: dict[str, Outcomes]
    energy: dict[int, float] | None = None

    def accuracies(self) -> dict[str, dict[int, float]]:
        out = {mode: o.accuracy() for mode, o in self.outcomes.items()}
        if self.energy is not None:
            out["energy"] = dict(self.energy)
        return out


def _bad(path: Path, what: str) -> ValueError:
    return ValueError(
        f"'{path}' is not a valid per-image record: {what}. It is written by the run itself "
        f"({PER_IMAGE}); rerun the run (resume=true keeps its training) to write it again."
    )


def write_per_image(path: str | Path, groups: Mapping[str, Outcomes]) -> Path:
    """Write ``groups`` to ``path`` (npz, arrays only) atomically: a temporary file, then a
    rename, so a reader never sees half a file."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for name, o in groups.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"groups: a group needs a non-empty name, got {name!r}")
        for field in PER_IMAGE_FIELDS:
            value = getattr(o, field)
            if value is not None:
                arrays[f"{name}.{field}"] = np.ascontiguousarray(value, dtype=np.int64)
    return save_npz(path, **arrays)  # files.py: whole or not at all


def read_per_image(path: str | Path) -> dict[str, Outcomes]:
    """The groups of a per-image record (a file, or the run folder holding per_image.npz).

    Raises FileNotFoundError when it is missing and ValueError naming the file and the array
    when it is malformed (not an npz, an array missing, wrong dtype or shape)."""
    path = Path(path)
    if path.is_dir():
        path = path / PER_IMAGE
    if not path.is_file():
        raise FileNotFoundError(f"'{path}': no per-image record there")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise _bad(path, f"it cannot be read as an npz file ({err})") from None
    names: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        group, _, field = key.rpartition(".")
        if not group or field not in PER_IMAGE_FIELDS:
            raise _bad(path, f"array '{key}' is not <group>.<{'|'.join(PER_IMAGE_FIELDS)}>")
        names.setdefault(group, {})[field] = value
    out = {}
    for group, parts in names.items():
        missing = [f for f in ("index", "label", "pred") if f not in parts]
        if missing:
            raise _bad(path, f"group '{group}' lacks {', '.join(group + '.' + f for f in missing)}")
        try:
            out[group] = Outcomes(parts["index"], parts["label"], parts["pred"], parts.get("ks"))
        except ValueError as err:
            raise _bad(path, f"group '{group}': {err}") from None
    return out
