"""Which runs the claims use, averaged how and compared with which: grouping and pairing.

- Usable runs: status "ok" or "partial" (accuracies present, some analysis missing), each
  result once: of two runs of one identity and one seed only the newer counts (seeds.py).
- Grouping: runs are averaged only over seeds: a group shares every `IDENTITY_KEYS` field but
  seed, run name and experiment preset (an image_folder dataset counts with its root), so a
  1-epoch debug run never averages with a 3-epoch run, nor synthetic data with CIFAR-10.
- Pairing: a natural and a robust group are compared only when they share the data and the
  architecture family (`PAIR_KEYS`: dataset, n_train, arch, rank, transform, train); the
  training schedule may differ (robust training has its own). A run's kind and threat model
  come from metrics.json (identity.model_kind: the training attack, or `model.kind` /
  `model.threat` of loaded weights), so evaluation-only pairs pair too; "unknown" runs never
  pair (`unlabelled` names them for the report).
- A group's accuracy: Wilson for one run (n images from metrics.json), t over seeds for several.

The rules and verdicts built on these live in claims/c1.py ... c5.py; rankrobust.reporting.claims
re-exports this module's public names, so figures and report import claims alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankrobust.identity import settings
from rankrobust.reporting.intervals import Estimate, binomial, mean_of, ratio
from rankrobust.reporting.paired import NotPairable, bootstrap, has_records, kept_arrays, share_kept
from rankrobust.reporting.seeds import GROUP_KEYS, USABLE, duplicates
from rankrobust.reporting.seeds import data_key as data_key  # re-exported
from rankrobust.reporting.seeds import resolved as _resolved
from rankrobust.reporting.seeds import training_identity as _identity

PAIR_KEYS = ("dataset", "n_train", "arch", "rank", "transform_mode", "transform_basis", "band",
             "apply_to", "train")  # fmt: skip
DATASET_NAMES = {"cifar10": "CIFAR-10", "imagenet": "ImageNet", "synthetic": "synthetic"}


# ---------------------------------------------------------------------------------------------
# Runs, their data and their counts.


def usable(rows: Sequence[dict]) -> list[dict]:
    """Finished runs (ok / partial), each result once: a run repeating a newer run of the same
    identity and seed is left out (seeds.duplicates), never counted as another seed."""
    dropped = {id(r) for r, _ in duplicates(rows)}
    return [r for r in rows if r.get("status") in USABLE and id(r) not in dropped]


def dataset_name(row: dict) -> str:
    """Display name: CIFAR-10 for cifar10 or an image_folder whose root names cifar10."""
    name = str(row.get("dataset"))
    if name == "image_folder":
        root = Path(str(_resolved(row, "dataset", "root") or "")).name.lower().replace("-", "")
        return "CIFAR-10" if "cifar10" in root else f"image folder {root or '?'}"
    return DATASET_NAMES.get(name, name)


def num_classes(rows: Sequence[dict]) -> int:
    for r in rows:
        n = _resolved(r, "dataset", "num_classes") or r.get("num_classes")
        if n:
            return int(n)
    return 10


def n_images(row: dict, what: str) -> int | None:
    """Images behind an accuracy: "clean" (n_test), "robust" (n_robust, at most n_test) or a
    rank-sweep mode (rank_sweep_n: one count, or {mode: count}); None when not recorded."""
    n_test = row.get("n_test")
    if what == "clean":
        n = n_test
    elif what == "robust":
        n = row.get("n_robust")
        n = min(n, n_test) if n and n_test else n
    else:
        n = row.get("rank_sweep_n")
        n = n.get(what) if isinstance(n, dict) else n
    return int(n) if n else None


# ---------------------------------------------------------------------------------------------
# Grouping and pairing.


@dataclass
class Group:
    """Runs of one training identity (GROUP_KEYS), differing only in seed / name / experiment."""

    identity: dict
    runs: list[dict]
    label: str = ""

    @property
    def kind(self) -> str:
        return self.identity.get("kind") or "unknown"

    @property
    def dataset(self) -> str:
        return dataset_name(self.runs[0])

    @property
    def pair_key(self) -> tuple:
        return tuple(str(self.identity[k]) for k in PAIR_KEYS)

    def estimate(self, value: Callable[[dict], float | None], what: str) -> Estimate | None:
        """A per-run accuracy over the group: Wilson (one run), t over seeds (several)."""
        vals = [(v, r) for r in self.runs if (v := value(r)) is not None]
        if not vals:
            return None
        if len(vals) == 1:
            return binomial(vals[0][0], n_images(vals[0][1], what))
        return mean_of([v for v, _ in vals])

    def clean(self) -> Estimate | None:
        return self.estimate(lambda r: r.get("clean_acc"), "clean")

    def robust(self) -> Estimate | None:
        return self.estimate(lambda r: r.get("robust_acc"), "robust")

    def sweep_ks(self, mode: str) -> list[int]:
        # a null accuracy is the writer's NaN (not measured): not a point of the curve
        sets = [
            {k for k, v in ((r.get("rank_sweep") or {}).get(mode) or {}).items() if v is not None}
            for r in self.runs
        ]
        return sorted(int(k) for k in set.intersection(*sets)) if sets else []

    def sweep(self, mode: str, k: int) -> Estimate | None:
        return self.estimate(lambda r: _sweep_value(r, mode, k), mode)

    def kept(self, k: int) -> Estimate | None:
        """Accuracy on L_k(x) / clean accuracy: per seed then t, or one run by the delta method."""
        runs = [
            r for r in self.runs if r.get("clean_acc") and _sweep_value(r, "low", k) is not None
        ]
        if len(runs) > 1:
            kept = [_sweep_value(r, "low", k) / r["clean_acc"] for r in runs]
            return mean_of(kept, bounds=(0.0, float("inf")))
        acc, clean = self.sweep("low", k), self.clean()
        return ratio(acc, clean) if acc and clean and clean.value else None

    def kept_paired(self, k: int) -> Estimate | None:
        """kept(k) from the runs' per-image records: a paired bootstrap over the images (seeds,
        then images) as C1 computes it; kept(k) when a run has no record (an older folder)."""
        runs = [r for r in self.runs if r.get("clean_acc")]
        if not runs or not all(has_records(r) for r in runs):
            return self.kept(k)
        try:
            seeds = [kept_arrays(r, k)[1] for r in runs]
        except (NotPairable, ValueError):
            return self.kept(k)
        if any(not s["clean"].any() for s in seeds):
            return self.kept(k)
        return bootstrap(seeds, share_kept)


def _sweep_value(row: dict, mode: str, k: int) -> float | None:
    accs = (row.get("rank_sweep") or {}).get(mode) or {}
    value = accs.get(k, accs.get(str(k)))
    return None if value is None else float(value)


def groups(rows: Sequence[dict], where: Callable[[dict], bool] = lambda r: True) -> list[Group]:
    """Usable runs passing `where`, grouped by training identity, labelled distinctly."""
    found: dict[tuple, Group] = {}
    for r in usable(rows):
        if r.get("attack") is None or not where(r):
            continue
        ident = _identity(r)
        key = tuple(str(ident[k]) for k in GROUP_KEYS)
        found.setdefault(key, Group(ident, [])).runs.append(r)
    out = [found[k] for k in sorted(found)]
    _label(out)
    return out


def _label(gs: list[Group]) -> None:
    """'robust: small_cnn (fgsm_rs), CIFAR-10', plus what tells apart groups sharing that."""
    base = {}
    for g in gs:
        i = g.identity
        how = i.get("threat") or (i["attack"] if i["attack"] not in (None, "none") else None)
        how = f" ({how})" if g.kind == "robust" and how else ""
        base[id(g)] = f"{g.kind}: {_model_name(i)}{how}, {g.dataset}"
    for g in gs:
        twins = [h for h in gs if base[id(h)] == base[id(g)] and h is not g]
        differ = [
            k for k in GROUP_KEYS if any(str(h.identity[k]) != str(g.identity[k]) for h in twins)
        ]
        extra = [
            f"{k}={g.identity[k]}"
            for k in differ
            if k not in ("attack", "model", "threat", "setup")
        ]
        if "setup" in differ:  # say which settings differ, not the hash
            extra += _setting_differences(g, twins)
        seeds = f", mean of {len(g.runs)} seeds" if len(g.runs) > 1 else ""
        g.label = base[id(g)] + "".join(f", {e}" for e in extra) + seeds


def _setting_differences(g: Group, twins: Sequence[Group], most: int = 3) -> list[str]:
    """'model.width=8' for the settings in which g's runs differ from its look-alike groups."""
    mine = settings(g.runs[0].get("resolved_config") or {})
    keys: list[str] = []
    for h in twins:
        theirs = settings(h.runs[0].get("resolved_config") or {})
        keys += [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
    keys = [k for k in dict.fromkeys(keys) if not k.startswith(("attack.", "model.name"))]
    return [f"{k}={mine.get(k)}" for k in keys[:most]]


def _model_name(ident: dict) -> str:
    """'resnet50', or 'robustbench Salman2020Do_R50 (resnet50)' where the model name alone
    does not tell the weights apart."""
    weights = ident.get("weights") or ""
    if str(weights).startswith("robustbench:"):
        return f"{str(weights).rsplit('/', 1)[-1]} ({ident.get('arch')})"
    arch = ident.get("arch")
    return str(ident["model"]) if arch in (None, ident["model"]) else f"{ident['model']} {arch}"


def unlabelled(rows: Sequence[dict]) -> list[dict]:
    """Usable runs of loaded weights whose kind is unknown: the report asks to label them."""
    return [r for r in usable(rows) if r.get("kind") == "unknown"]


def full_image(row: dict) -> bool:
    return row.get("rank") is None


def sweep_groups(rows: Sequence[dict], mode: str) -> list[Group]:
    """Full-image groups whose every run has a `mode` rank sweep with a common rank."""
    gs = groups(rows, lambda r: full_image(r) and bool((r.get("rank_sweep") or {}).get(mode)))
    return [g for g in gs if g.sweep_ks(mode)]


def pairs(gs: Sequence[Group]) -> list[tuple[Group, Group]]:
    """(natural, robust) groups with the same data and architecture (PAIR_KEYS)."""
    nat = [g for g in gs if g.kind == "natural"]
    rob = [g for g in gs if g.kind == "robust"]
    return [(n, r) for n in nat for r in rob if n.pair_key == r.pair_key]


def rank_attribution(row: dict) -> tuple[list[int], np.ndarray] | None:
    """(path ranks, per-image rank attributions (n, ranks)) from rig.npz, else the mean share
    per rank from metrics.json as one row."""
    if row.get("rig_npz") and Path(row["rig_npz"]).is_file():
        with np.load(row["rig_npz"]) as z:
            if "per_rank" in z.files and "ranks" in z.files:
                return [int(k) for k in z["ranks"]], np.atleast_2d(z["per_rank"]).astype(float)
    rig = row.get("rig") or {}
    if rig.get("mean_per_rank") and rig.get("ranks"):
        return [int(k) for k in rig["ranks"]], np.atleast_2d(rig["mean_per_rank"]).astype(float)
    return None


def top_shares(ranks: Sequence[int], per_rank: np.ndarray, top: int) -> np.ndarray:
    """Per image: share of its |rank attribution| in the path ranks <= top."""
    a = np.abs(np.atleast_2d(np.asarray(per_rank, dtype=float)))
    total = a.sum(1)
    inside = a[:, np.asarray(ranks) <= top].sum(1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)


def rig_runs(rows: Sequence[dict]) -> dict[str, dict]:
    """One run of each kind with a rig.npz, from a natural/robust pair when there is one."""
    gs = groups(rows, lambda r: full_image(r) and bool(r.get("rig_npz")))
    for n, r in pairs(gs):
        return {"natural": n.runs[0], "robust": r.runs[0]}
    found: dict[str, dict] = {}
    for g in groups(rows, lambda r: bool(r.get("rig_npz"))):
        found.setdefault(g.kind, g.runs[0])
    return found


def _data_kind(identity: dict) -> str:
    """'low-rank' for the SVD, 'low-pass fourier' etc. in another basis (transform.basis)."""
    basis = identity.get("transform_basis")
    mode = identity["transform_mode"]
    return f"{mode}-rank" if basis in (None, "svd") else f"{mode}-pass {basis}"


def train_rank_groups(rows: Sequence[dict]) -> list[dict]:
    """Runs trained on rank-k data: one series per training identity but the rank."""
    gs = groups(rows, lambda r: r.get("rank") is not None and r.get("clean_acc") is not None)
    series: dict[tuple, list[Group]] = {}
    for g in gs:
        key = tuple(str(g.identity[k]) for k in GROUP_KEYS if k != "rank")
        series.setdefault(key, []).append(g)
    out = []
    for members in series.values():
        members.sort(key=lambda g: int(g.identity["rank"]))
        first = members[0]
        label = first.label.replace(f", rank={first.identity['rank']}", "")
        out.append(
            {
                "label": f"{label}, {_data_kind(first.identity)} data",
                "kind": first.kind,
                "ks": [int(g.identity["rank"]) for g in members],
                "clean": [g.clean() for g in members],
                "robust": [g.robust() for g in members],
                "n_runs": sum(len(g.runs) for g in members),
            }
        )
    return sorted(out, key=lambda s: s["label"])
