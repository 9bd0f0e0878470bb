"""Per-image outcomes: which test images a model got right, and what it predicted.

An :class:`Outcomes` holds, for the images one evaluation saw, their test-set ``index`` (the
position in the full test split as the datamodule loads it, so two models evaluated on the same
data pair image by image), their ``label`` and the model's top-1 ``pred``: shape (N,) for one
accuracy (clean, robust), (K, N) for a sweep with one row per ``ks[i]`` (a rank k of L_k / H_k,
or a basis cut-off). Accuracy is ``(pred == label).mean()``: the very numbers metrics.json holds.

A run stores its outcomes in one small ``per_image.npz`` (arrays only, no pickle), one group per
evaluation, each group's arrays named ``<group>.index``, ``<group>.label``, ``<group>.pred`` and
for sweeps ``<group>.ks``. Groups: ``clean``, ``robust``, ``rank_sweep.<mode>`` (mode low, high,
low_robust, high_robust) and ``basis_sweep.<basis>.<mode>``. :func:`write` and :func:`read` are
the one writer and the one reader (validated: a malformed file is a ValueError naming it).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILENAME = "per_image.npz"
FIELDS = ("index", "label", "pred", "ks")

__all__ = ["FILENAME", "Outcomes", "SweepResult", "read", "write"]


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
        f"({FILENAME}); rerun the run (resume=true keeps its training) to write it again."
    )


def write(path: str | Path, groups: Mapping[str, Outcomes]) -> Path:
    """Write ``groups`` to ``path`` (npz, arrays only) atomically: a temporary file, then a
    rename, so a reader never sees half a file."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for name, o in groups.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"groups: a group needs a non-empty name, got {name!r}")
        for field in FIELDS:
            value = getattr(o, field)
            if value is not None:
                arrays[f"{name}.{field}"] = np.ascontiguousarray(value, dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    return path


def read(path: str | Path) -> dict[str, Outcomes]:
    """The groups of a per-image record (a file, or the run folder holding per_image.npz).

    Raises FileNotFoundError when it is missing and ValueError naming the file and the array
    when it is malformed (not an npz, an array missing, wrong dtype or shape)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
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
        if not group or field not in FIELDS:
            raise _bad(path, f"array '{key}' is not <group>.<{'|'.join(FIELDS)}>")
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
