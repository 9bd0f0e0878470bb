"""The paper's analyses of a trained model, run by the task after testing (global rank 0 only).

Each is a plain function ``(model, datamodule, settings, ...) -> dict`` whose dict is merged
into metrics.json (keys: rank_sweep + rank_sweep_n, basis_sweep + basis_sweep_n, heat_maps,
perturbation_spectrum, rig, attribution); the files they write (rig.npz, rig.png,
attribution.npz, attribution.png) are named in ``results.FILES``; `run_all` runs the enabled
ones. They always run in float32 (autocast off), whatever eval.precision says for the test
accuracies. Settings are typed dataclasses built from conf/ (``_target_``) once, by the config
check; each field states its default and its rule (pipeline/settings.py `setting`).
`planned_work` counts the forward passes the test and the enabled analyses will cost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rankrobust import bases
from rankrobust.attacks import Attack
from rankrobust.attribution import rank_integrated_gradients, vanilla_gradient
from rankrobust.attribution.memory import gradient_batch_size
from rankrobust.attribution.methods import default_rig_ranks as default_ranks
from rankrobust.attribution.plot import save_rig_grid
from rankrobust.bases import BASES, WAVELETS
from rankrobust.data.factor_cache import cached_factorization, factorize_batches
from rankrobust.evaluate import basis_sweep, fourier_heat_map, rank_heat_map, rank_sweep
from rankrobust.files import save_npz
from rankrobust.identity import model_kind
from rankrobust.pipeline.explain import run_attribution
from rankrobust.pipeline.settings import EVAL_PRECISIONS, FOR_RANK_TRAINED, setting
from rankrobust.results import FILES, RIG_TOP_RANKS
from rankrobust.svd import factorize

log = logging.getLogger("rankrobust")
# the key under which an analysis returns its per-image outcomes ({group: Outcomes}); the task
# takes them out of the metrics and writes them to per_image.npz (rankrobust.runs)
OUTCOMES = "per_image_outcomes"


@dataclass
class EvalSettings:
    """Clean / robust testing: ``n_robust`` test images attacked (None = all), and the precision
    of the test accuracies (float32 by default, whatever the training precision; "trainer": the
    training precision). The analyses below always run in float32."""

    n_robust: int | None = setting(1000, kind=int, low=0, nullable=True)
    precision: str = setting("32-true", choices=EVAL_PRECISIONS)


@dataclass
class SweepSettings:
    """Accuracy on L_k(x) and H_k(x) for k in ``ranks`` (None = default_ranks; each against the
    image size: pipeline/rules.py)."""

    enabled: bool = True
    ranks: list[int] | None = None
    modes: list[str] = setting(["low", "high"], choices=("low", "high"), each=True)
    n_images: int | None = setting(None, kind=int, low=1, nullable=True)
    robust: bool = False
    n_robust: int | None = setting(500, kind=int, low=1, nullable=True)
    # Other bases (metrics.json basis_sweep): low/high accuracy and energy kept per cutoff
    bases: list[str] = setting(
        [], choices=BASES, each=True, empty=True, hint="E.g. sweep.bases=[svd,fourier]; [] = off."
    )
    # per basis; None = bases.default_cutoffs (each against the image size: rules.py)
    cutoffs: dict[str, list[int] | None] = field(default_factory=lambda: dict.fromkeys(BASES))
    wavelet: str = setting("haar", choices=tuple(WAVELETS))
    basis_n_images: int | None = setting(None, kind=int, low=1, nullable=True)  # None: n_images
    cache_factors: bool = False  # the images' SVD from / to the disk cache (data/factor_cache)


@dataclass
class RIGSettings:
    """Rank Integrated Gradients on ``n_images`` seeded test images (rig.py; the rank path
    against the image size: pipeline/rules.py)."""

    enabled: bool = False
    n_images: int = setting(8, kind=int, low=1)
    steps_per_rank: int = setting(8, kind=int, low=1)
    baseline_steps: int | None = setting(64, kind=int, low=1, nullable=True)
    ranks: list[int] | None = None
    baseline: str = setting("zero", choices=("zero", "mean"))
    batch_size: int = setting(256, kind=int, low=1)
    seed: int = setting(0, kind=int, low=0)


@dataclass
class SpectrumSettings:
    """Mean singular values of clean images and of evaluation-attack perturbations."""

    perturbation_spectrum: bool = True
    n_images: int = setting(256, kind=int, low=1)
    # Fourier heat map (Yin et al.) and its rank analogue (metrics.json heat_maps)
    heat_maps: bool = False
    heat_map_eps: float = setting(4.0, kind=float, low=1e-12)
    heat_map_size: int = setting(8, kind=int, low=0)
    heat_map_n_images: int = setting(200, kind=int, low=1)
    heat_map_ranks: list[int] | None = None
    # the rule for rank=k runs (pipeline/rules.py scope_analyses)
    for_rank_trained: str = setting(
        "figures",
        choices=FOR_RANK_TRAINED,
        hint="figures: rank-trained runs compute only the clean and robust accuracy that "
        "fig-train-rank and C4 read; all: every analysis the config enables.",
    )


def run_rank_sweep(
    model: nn.Module, datamodule, settings: SweepSettings, attack: Attack | None, batch_size: int
) -> dict:
    """rank_sweep: {mode: {k: accuracy}} on the raw test images (+ "<mode>_robust" when
    settings.robust); rank_sweep_n: {mode: number of images behind each accuracy}."""
    images, labels = datamodule.test_tensors(raw=True, n=settings.n_images)
    ranks = list(settings.ranks) if settings.ranks else default_ranks(min(images.shape[-2:]))
    modes = tuple(settings.modes)
    device = next(model.parameters()).device
    full = min(images.shape[-2:])
    top = max((k for k in ranks if k < full), default=None)  # one factorisation for both sweeps
    # a zoo: the images' factors from the disk cache, computed once for every model
    factorized = cached_factorization if settings.cache_factors else factorize_batches
    fac = factorized(images, top, batch_size, device)
    found = rank_sweep(
        model, images, labels, ranks, modes=modes, batch_size=batch_size, factorization=fac,
        per_image=True,
    ).outcomes  # fmt: skip
    if settings.robust and attack is not None:
        n = settings.n_robust or len(labels)
        robust = rank_sweep(
            model, images[:n], labels[:n], ranks, modes=modes, batch_size=batch_size,
            attack=attack, factorization=fac[:n], per_image=True,
        ).outcomes  # fmt: skip
        found.update({k: v for k, v in robust.items() if k.endswith("_robust")})
        # the clean accuracy of the attacked images, for results.number_warnings
        attacked = {m: robust[m].accuracy() for m in modes}
    sweep = {mode: o.accuracy() for mode, o in found.items()}
    counts = {m: min(settings.n_robust or len(labels), len(labels)) for m in sweep}
    counts.update({m: int(len(labels)) for m in modes})
    index = datamodule.test_index(n=settings.n_images)
    out = {
        "rank_sweep": sweep,
        "rank_sweep_n": counts,
        OUTCOMES: {f"rank_sweep.{m}": o.reindexed(index[: o.n]) for m, o in found.items()},
    }
    if settings.robust and attack is not None:
        out["rank_sweep_clean_attacked"] = attacked
    return out


def run_perturbation_spectrum(
    model: nn.Module, datamodule, settings: SpectrumSettings, attack: Attack, batch_size: int
) -> dict:
    """Per rank index i: mean s_i of clean test images x and of perturbations x_adv - x.

    Averaged over images and channels; the images are the first ``n_images`` test images as
    the model sees them (after the run's rank transform).
    """
    images, labels = datamodule.test_tensors(raw=False, n=settings.n_images)
    device = next(model.parameters()).device
    clean, pert = [], []
    for lo in range(0, len(labels), batch_size):
        x = images[lo : lo + batch_size].to(device)
        y = labels[lo : lo + batch_size].to(device)
        delta = (attack(model, x, y) - x).detach()
        clean.append(factorize(x.float()).S.cpu().flatten(0, -2))
        pert.append(factorize(delta.float()).S.cpu().flatten(0, -2))
    return {
        "perturbation_spectrum": {
            "clean": torch.cat(clean).mean(0).tolist(),
            "perturbation": torch.cat(pert).mean(0).tolist(),
            "n_images": int(len(labels)),
        }
    }


def rank_shares(per_rank: torch.Tensor) -> torch.Tensor:
    """Share of each rank segment in an image's attribution: |a_k| / sum_j |a_j| (rows sum to 1)."""
    magnitude = per_rank.abs()
    return magnitude / magnitude.sum(dim=1, keepdim=True).clamp_min(1e-12)


def run_rig(
    model: nn.Module, datamodule, settings: RIGSettings, run_dir: str | Path, title: str
) -> dict:
    """RIG on a seeded pick of raw test images: writes rig.npz and rig.png into run_dir.

    Returns the metrics.json summary under "rig": ``top4_share`` (mean share of |rank
    attribution| in ranks <= RIG_TOP_RANKS = 4), ``median_rel_delta`` (median |completeness error| /
    |f(x) - f(b)|), ``mean_per_rank`` (mean share per path segment), ``ranks`` and the settings.
    """
    run_dir = Path(run_dir)
    # a seeded pick, read alone (a streamed set decodes only these images)
    x, y = datamodule.test_tensors(raw=True, n=settings.n_images, seed=settings.seed)
    x = x.to(next(model.parameters()).device)
    # a backward pass of batch_size images must fit in the memory available (attribution.memory)
    batch = gradient_batch_size(model, x.shape[1:], settings.batch_size, name="rig")
    result = rank_integrated_gradients(
        model,
        x,
        n_steps_per_rank=settings.steps_per_rank,
        baseline_steps=settings.baseline_steps,
        ranks=settings.ranks,
        baselines=settings.baseline,
        internal_batch_size=batch,
    )
    vanilla = vanilla_gradient(model, x, target=result.target, internal_batch_size=batch)
    arrays = {
        "images": x.cpu().numpy(),
        "targets": result.target.cpu().numpy(),
        "labels": y.cpu().numpy(),
        "pixel": result.pixel.cpu().numpy(),
        "vanilla": vanilla.cpu().numpy(),
        "per_rank": result.per_rank.cpu().numpy(),
        "ranks": np.asarray(result.ranks),
        "delta": result.delta.cpu().numpy(),
        "relative_delta": result.relative_delta.cpu().numpy(),
    }
    classes: Sequence[str] = datamodule.test_set.classes
    save_npz(Path(run_dir) / FILES["rig_npz"], classes=np.asarray(classes), **arrays)
    save_rig_grid(arrays, run_dir / FILES["rig_png"], title, classes)
    shares = rank_shares(result.per_rank.detach().cpu())
    in_top = torch.tensor(result.ranks) <= RIG_TOP_RANKS
    return {
        "rig": {
            "top4_share": float(shares[:, in_top].sum(1).mean()),
            "median_rel_delta": float(result.relative_delta.median()),
            "mean_per_rank": shares.mean(0).tolist(),
            "ranks": list(result.ranks),
            "n_images": len(y),
            "steps_per_rank": settings.steps_per_rank,
            "baseline_steps": settings.baseline_steps,
            "batch_size": batch,
        }
    }


def run_all(spec, module, datamodule, run_dir: str | Path) -> tuple[dict, dict, dict]:
    """Every enabled analysis on the tested module (eval mode, autocast off) -> (metrics.json
    fields, {analysis: error} for those that failed, {analysis: seconds}). The fields hold the
    sweeps' per-image outcomes under OUTCOMES, for per_image.npz (not for metrics.json).

    A failing analysis does not lose the test accuracies or the other analyses: its error is
    returned and the run becomes `partial` (results.final_status).
    """
    attack, batch = module.eval_attack, spec.config["dataset"]["eval_batch_size"]
    kind = model_kind(spec.config).description  # the one rule (results.py)
    title = f"RIG: {type(getattr(module.model, 'net', module.model)).__name__}, {kind}"
    todo = {
        "rank_sweep": (spec.sweep.enabled, run_rank_sweep, (spec.sweep, attack, batch)),
        "perturbation_spectrum": (
            spec.analysis.perturbation_spectrum and attack is not None,
            run_perturbation_spectrum,
            (spec.analysis, attack, batch),
        ),
        "rig": (spec.rig.enabled, run_rig, (spec.rig, run_dir, title)),
        "basis_sweep": (
            bool(spec.sweep.enabled and spec.sweep.bases),
            run_basis_sweep,
            (spec.sweep, batch),
        ),
        "heat_maps": (spec.analysis.heat_maps, run_heat_maps, (spec.analysis, batch)),
        # gradient / IG / RIG / SIG maps and their metrics
        "attribution": (
            spec.attribution.enabled,
            run_attribution,
            (spec.attribution, run_dir, title.replace("RIG: ", "")),
        ),
    }
    out, errors, timings = {}, {}, {}
    module.eval()
    sizes = {"rank_sweep": spec.sweep, "perturbation_spectrum": spec.analysis, "rig": spec.rig}
    per_image = None
    for name, (enabled, fn, args) in todo.items():
        if not enabled:
            continue
        try:  # a progress line with an estimate; it never stops a run
            if name in sizes:
                if per_image is None:  # one timed forward pass for every estimate
                    per_image = forward_seconds(module.model, datamodule)
                work = work_estimate(name, sizes[name], datamodule, spec.config["attack"]["eval"])
                log.info(estimate_line(name, work, per_image))
        except Exception as err:
            log.info("[rankrobust] %s: started (no estimate: %s)", name, err)
        tick = time.perf_counter()
        try:
            with torch.autocast(device_type=module.device.type, enabled=False):
                found = fn(module, datamodule, *args)
            out.setdefault(OUTCOMES, {}).update(found.pop(OUTCOMES, {}))
            out.update(found)
        except Exception as err:
            log.warning("[rankrobust] analysis %s failed: %s", name, err)
            errors[name] = f"{type(err).__name__}: {err}"
        timings[name] = time.perf_counter() - tick
        log.info("[rankrobust] %s: done in %.0f s", name, timings[name])
    return out, errors, timings


def forward_seconds(model: nn.Module, datamodule, n: int = 8) -> float | None:
    """Seconds one test image's forward pass takes (timed on n images after a warm-up)."""
    import time

    images, _ = datamodule.test_tensors(raw=True, n=n)
    if len(images) == 0:
        return None
    x = images.to(next(model.parameters()).device)
    with torch.no_grad():
        model(x[:1])
        tick = time.perf_counter()
        model(x)
    return (time.perf_counter() - tick) / len(x)


def work_estimate(name: str, settings, datamodule, eval_attack=None) -> int:
    """Forward-pass equivalents an analysis costs (a backward pass counted as two forwards):
    rank sweep n x ranks x modes; RIG n x (steps per segment x segments + baseline steps) x 3;
    perturbation spectrum n x (attack steps + 1) x 3."""
    streams = getattr(datamodule, "_streams", None)
    n_test = len(streams["test"]) if streams else len(datamodule.test_set.labels)
    full_rank = getattr(datamodule, "full_rank", 32)
    if name == "rank_sweep":
        n = min(settings.n_images or n_test, n_test)
        return n * len(settings.ranks or default_ranks(full_rank)) * len(settings.modes)
    if name == "rig":
        segments = len(settings.ranks or default_ranks(full_rank))
        first = settings.baseline_steps or settings.steps_per_rank
        return settings.n_images * (settings.steps_per_rank * segments + first) * 3
    steps = (eval_attack or {}).get("steps") or 10
    return min(settings.n_images, n_test) * (steps + 1) * 3


def estimate_line(name: str, work: int, per_image: float | None) -> str:
    """'[rankrobust] rank_sweep: 9000 forward passes, about 40 s' for the run's log."""
    about = f", about {work * per_image:.0f} s" if per_image else ""
    return f"[rankrobust] {name}: {work} forward passes{about} (started)"


def run_basis_sweep(model: nn.Module, datamodule, settings: SweepSettings, batch_size: int) -> dict:
    """basis_sweep: {basis: {"low": {k: acc}, "high": {k: acc}, "energy": {k: mean energy
    kept}}} on the raw test images, for each basis in settings.bases at its cutoffs
    (settings.cutoffs[basis], or bases.default_cutoffs); basis_sweep_n: images behind each
    (basis_n_images of the rank sweep's own test images: test_tensors nests its picks)."""
    n = settings.n_images if settings.basis_n_images is None else settings.basis_n_images
    if settings.n_images is not None:
        n = min(n, settings.n_images)  # some of the rank sweep's images, never others
    images, labels = datamodule.test_tensors(raw=True, n=n)
    H, W = int(images.shape[-2]), int(images.shape[-1])
    out, outcomes = {}, {}
    index = datamodule.test_index(n=n)
    for basis in settings.bases:
        cuts = (settings.cutoffs or {}).get(basis)
        cuts = list(cuts) if cuts else bases.default_cutoffs(basis, H, W, settings.wavelet)
        found = basis_sweep(
            model, images, labels, basis, cuts, tuple(settings.modes), batch_size,
            wavelet=settings.wavelet, per_image=True,
        )  # fmt: skip
        out[basis] = found.accuracies()
        for mode, o in found.outcomes.items():
            outcomes[f"basis_sweep.{basis}.{mode}"] = o.reindexed(index)
    return {"basis_sweep": out, "basis_sweep_n": int(len(labels)), OUTCOMES: outcomes}


def run_heat_maps(
    model: nn.Module, datamodule, settings: SpectrumSettings, batch_size: int
) -> dict:
    """heat_maps: {"fourier": {freqs, error (rows k_y, columns k_x), eps, n_images}, "rank":
    {ranks, error, eps, n_images}} on the first heat_map_n_images raw test images."""
    images, labels = datamodule.test_tensors(raw=True, n=settings.heat_map_n_images)
    eps = settings.heat_map_eps
    fourier = fourier_heat_map(model, images, labels, eps, settings.heat_map_size, batch_size)
    rank = rank_heat_map(model, images, labels, eps, settings.heat_map_ranks, batch_size)
    return {
        "heat_maps": {
            "fourier": {"freqs": fourier.freqs, "error": fourier.error.tolist(), "eps": eps,
                        "n_images": fourier.n_images},
            "rank": {"ranks": rank.ranks, "error": rank.error.tolist(), "eps": eps,
                     "n_images": rank.n_images},
        }
    }  # fmt: skip


def planned_work(spec, datamodule) -> int:
    """Forward passes the test and the enabled analyses of `spec` will cost (a backward pass
    counted as two forwards): clean test n_test, robust test n_robust x (attack steps + 1) x 3,
    plus analyses.work_estimate of the rank sweep, perturbation spectrum and RIG. 0 when the
    test set is not known yet (a streamed set before setup)."""
    try:
        n_test = len(datamodule.test_set.labels)
    except Exception:
        return 0
    attack = spec.config["attack"].get("eval") or {}
    n_robust = n_test if spec.eval.n_robust is None else min(spec.eval.n_robust, n_test)
    work = n_test + (n_robust * ((attack.get("steps") or 1) + 1) * 3 if spec.eval_attack else 0)
    todo = {
        "rank_sweep": (spec.sweep.enabled, spec.sweep),
        "perturbation_spectrum": (
            spec.analysis.perturbation_spectrum and spec.eval_attack is not None,
            spec.analysis,
        ),
        "rig": (spec.rig.enabled, spec.rig),
    }
    for name, (enabled, settings) in todo.items():
        if enabled:
            work += work_estimate(name, settings, datamodule, attack)
    return int(work)
