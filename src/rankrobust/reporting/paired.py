"""Paired intervals from per-image records (per_image.npz, rankrobust.runs), and chance
from the data. Pure numpy on files; no model is loaded.

Share kept = acc(L_k) / acc(clean) on the same images, and the difference of two models'
shares kept on the same images, get a paired percentile bootstrap (:func:`bootstrap`):
- one seed: B resamples of the images (indices drawn with replacement, jointly for every
  quantity: clean and L_k outcomes of one image, and of both models, move together);
- several seeds (runs of one identity, paired across models by seed): each resample first draws
  the seeds with replacement, then the images within each drawn seed; the statistic is the mean
  over the drawn seeds, so the interval covers the spread of both.
The 95% interval is the 2.5 and 97.5 percentiles of the B resampled values (B = 2000, RNG seed
0: the same files give the same interval). Every resampled value is a value the statistic can
take, so the interval never leaves its range: share kept in [0, N/clean correct], a difference
of shares kept in [-max, +max] of those; when both models' L_k-correct images are a subset of
their clean-correct ones, shares lie in [0, 1] and their difference in [-1, 1]. A resample in
which the clean accuracy is 0 has no share kept and is left out (counted in ``undefined``).

Chance (C2): the accuracy a model's own predictions get if they ignore the image,
sum_c p(pred = c) p(true = c) over the evaluated images (1/classes for balanced labels and
uniform guesses; right for class subsets and imbalanced sets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rankrobust.reporting.intervals import Estimate
from rankrobust.runs import Outcomes, read_per_image

RESAMPLES = 2000
RNG_SEED = 0
MIN_IMAGES = 10  # fewer common images than this: too few to pair (the claim says so)
METHOD = f"paired bootstrap ({RESAMPLES} resamples of the images)"
METHOD_SEEDS = f"hierarchical paired bootstrap ({RESAMPLES} resamples: seeds, then images)"

# One statistic of one seed's aligned outcomes: (arrays of that seed, image indices) -> value
Statistic = Callable[[dict[str, np.ndarray], np.ndarray], float]


class NotPairable(Exception):
    """Why per-image records cannot give a paired comparison: the reason, in words."""


def bootstrap(
    seeds: Sequence[dict[str, np.ndarray]],
    stat: Statistic,
    resamples: int = RESAMPLES,
    rng_seed: int = RNG_SEED,
) -> Estimate:
    """The paired (hierarchical over seeds) percentile bootstrap of mean-over-seeds `stat`.

    ``seeds``: per seed, aligned per-image arrays (the same length, image i of every array is
    one image). The RNG stream, in this order: for each resample b, the seed draw
    ``integers(0, S, size=S)`` (only when S > 1), then for each drawn seed the image draw
    ``integers(0, n_s, size=n_s)``. Point value: the mean of ``stat`` over the seeds on all
    images. Resamples where ``stat`` is NaN (undefined) are left out."""
    if not seeds:
        raise ValueError("seeds=[]: expected at least one seed's outcomes")
    sizes = [len(next(iter(s.values()))) for s in seeds]
    value = float(np.mean([stat(s, np.arange(n)) for s, n in zip(seeds, sizes, strict=True)]))
    rng = np.random.default_rng(rng_seed)
    out = np.empty(resamples)
    for b in range(resamples):
        drawn = rng.integers(0, len(seeds), size=len(seeds)) if len(seeds) > 1 else [0]
        out[b] = np.mean([stat(seeds[s], rng.integers(0, sizes[s], size=sizes[s])) for s in drawn])
    ok = out[~np.isnan(out)]
    method = METHOD if len(seeds) == 1 else METHOD_SEEDS
    if len(ok) == 0:
        return Estimate(value, n=sum(sizes), method=method)
    lo, hi = np.percentile(ok, [2.5, 97.5])
    se = float(ok.std(ddof=1)) if len(ok) > 1 else 0.0
    return Estimate(value, float(lo), float(hi), se, n=sum(sizes), method=method)


def share_kept(arrays: dict[str, np.ndarray], idx: np.ndarray, who: str = "") -> float:
    """acc(L_k) / acc(clean) on images idx (NaN when no clean image is right)."""
    clean = int(arrays[f"{who}clean"][idx].sum())
    return np.nan if clean == 0 else int(arrays[f"{who}low"][idx].sum()) / clean


def kept_difference(arrays: dict[str, np.ndarray], idx: np.ndarray) -> float:
    """Robust's share kept minus natural's, on the same images idx."""
    return share_kept(arrays, idx, "r_") - share_kept(arrays, idx, "n_")


def chance(o: Outcomes) -> float:
    """sum over classes c of p(pred = c) * p(true = c) on o's images (1-D outcomes)."""
    if o.pred.ndim != 1 or o.n == 0:
        raise ValueError("chance: expected one prediction per image and at least one image")
    classes = int(max(o.pred.max(), o.label.max())) + 1
    p_pred = np.bincount(o.pred, minlength=classes) / o.n
    p_true = np.bincount(o.label, minlength=classes) / o.n
    return float(p_pred @ p_true)


# ---------------------------------------------------------------------------------------------
# Reading a run's records and aligning them by test-set index.


def has_records(row: dict, *groups: str) -> bool:
    """Whether a run has a per-image record (holding these groups, when named)."""
    if not row.get("per_image_npz") or not Path(row["per_image_npz"]).is_file():
        return False
    return not groups or set(groups) <= set(load(row))


def load(row: dict) -> dict[str, Outcomes]:
    """A run's per-image groups (rankrobust.runs.read_per_image: a malformed file names itself)."""
    return read_per_image(row["per_image_npz"])


def _correct_at(o: Outcomes, index: np.ndarray) -> np.ndarray:
    pos = {int(i): p for p, i in enumerate(o.index)}
    return o.correct[[pos[int(i)] for i in index]]


def kept_arrays(row: dict, k: int, prefix: str = "") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(test-set indices, {prefix+"clean", prefix+"low"}: correctness on clean and L_k images)
    for the run's rank-sweep images that its clean test also saw."""
    found = load(row)
    if "clean" not in found or "rank_sweep.low" not in found:
        raise NotPairable(f"run {row.get('run_dir')}: its per-image record has no clean or L_k "
                          "outcomes")  # fmt: skip
    clean, low = found["clean"], found["rank_sweep.low"]
    try:
        low = low.at(k)
    except KeyError:
        where = row.get("run_dir")
        raise NotPairable(f"run {where}: k={k} is not in its per-image record") from None
    index = np.intersect1d(low.index, clean.index)
    return index, {
        f"{prefix}clean": _correct_at(clean, index),
        f"{prefix}low": _correct_at(low, index),
    }


def aligned_pair(natural: dict, robust: dict, k: int) -> dict[str, np.ndarray]:
    """One natural and one robust run's clean and L_k correctness on their common test images
    ("n_clean", "n_low", "r_clean", "r_low"), or NotPairable naming why not."""
    ni, na = kept_arrays(natural, k, "n_")
    ri, ra = kept_arrays(robust, k, "r_")
    common = np.intersect1d(ni, ri)
    if len(common) == 0:
        raise NotPairable(
            f"no common images: {natural.get('run_dir')} and {robust.get('run_dir')} evaluated "
            "different test images (dataset.n_test, sweep.n_images or the data's seed differ)"
        )
    if len(common) < MIN_IMAGES:
        raise NotPairable(
            f"too few images: {len(common)} common test images between {natural.get('run_dir')} "
            f"and {robust.get('run_dir')} (at least {MIN_IMAGES} are needed to pair)"
        )
    out = {}
    for index, arrays in ((ni, na), (ri, ra)):
        where = np.searchsorted(index, common)
        out.update({name: a[where] for name, a in arrays.items()})
    return out


def seed_pairs(natural: Sequence[dict], robust: Sequence[dict]) -> list[tuple[dict, dict]]:
    """Natural and robust runs of the same seed (the same data), in seed order."""
    by_seed = {r.get("seed"): r for r in robust}
    return [(n, by_seed[n.get("seed")]) for n in sorted(natural, key=lambda r: str(r.get("seed")))
            if n.get("seed") in by_seed]  # fmt: skip


@dataclass
class PairedC1:
    natural_kept: Estimate
    robust_kept: Estimate
    difference: Estimate
    n_images: int
    n_seeds: int


def paired_c1(natural: Sequence[dict], robust: Sequence[dict], k: int) -> PairedC1:
    """C1's shares kept and their difference, paired over images (and seeds), or NotPairable."""
    matched = seed_pairs(natural, robust)
    if not matched:
        raise NotPairable("no common images: the natural and robust runs share no seed (data)")
    seeds = [aligned_pair(n, r, k) for n, r in matched]
    for side, name in (("n_", "natural"), ("r_", "robust")):
        for (n, r), s in zip(matched, seeds, strict=True):
            if not s[f"{side}clean"].any():
                run = (n if side == "n_" else r).get("run_dir")
                raise NotPairable(f"share kept undefined: clean accuracy is 0 in {name} run {run}")
    return PairedC1(
        bootstrap(seeds, lambda a, i: share_kept(a, i, "n_")),
        bootstrap(seeds, lambda a, i: share_kept(a, i, "r_")),
        bootstrap(seeds, kept_difference),
        sum(len(s["n_clean"]) for s in seeds),
        len(seeds),
    )


def run_chance(row: dict, mode: str, k: int) -> float | None:
    """Chance on the images a run's `mode` sweep at k evaluated, from its predictions (None
    without records)."""
    if not has_records(row):
        return None
    found = load(row).get(f"rank_sweep.{mode}")
    if found is None or found.ks is None or int(k) not in found.ks.tolist():
        return None
    return chance(found.at(k))
