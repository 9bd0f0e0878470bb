"""The attribution comparison of a trained run (claim C3 measured as the field measures it):
gradient / IG / RIG / SIG maps on the same test images at equal gradient evaluations, and their
DiffID, sparseness, complexity and randomisation-test scores (rankrobust.attribution)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rankrobust.attribution import METHODS, SUPPORTED_SCORES
from rankrobust.attribution.methods import METRICS
from rankrobust.files import save_npz
from rankrobust.pipeline.settings import setting
from rankrobust.results import FILES


@dataclass
class AttributionSettings:
    """Gradient / IG / RIG / SIG maps on ``n_images`` seeded test images, every path method at
    ``steps`` gradient evaluations per image, scored by ``metrics`` (attribution/metrics.py).
    RIG's path runs through ``rig_ranks`` (None: 1, 4, 16, ..., full), the budget split by
    ``rig_first_share`` (attribution: comparison_rig_ranks in methods, rig_schedule)."""

    enabled: bool = False
    methods: list[str] = setting(
        ["gradient", "ig", "rig", "sig"],
        choices=METHODS,
        each=True,
        hint="E.g. attribution.methods=[gradient,ig,rig,sig].",
    )
    metrics: list[str] = setting(
        ["diffid", "sparseness", "complexity", "mprt"],
        choices=METRICS,
        each=True,
        hint="E.g. attribution.metrics=[diffid,sparseness,complexity,mprt].",
    )
    n_images: int = setting(16, kind=int, low=1)
    steps: int = setting(64, kind=int, low=1)  # >= RIG's segments: pipeline/rules.py
    score: str = setting("softmax", choices=SUPPORTED_SCORES)
    overlap: float = setting(0.5, kind=float, low=0, high=1, high_open=True)
    rig_ranks: list[int] | None = None  # a rank path ending at full rank: pipeline/rules.py
    rig_first_share: float | None = setting(
        0.6,
        kind=float,
        low=0,
        high=1,
        low_open=True,
        high_open=True,
        nullable=True,
        hint="It is the share of RIG's budget on its first segment (null: every segment alike).",
    )
    mprt_layers: int | None = setting(None, kind=int, low=1, nullable=True)
    batch_size: int = setting(256, kind=int, low=1)
    seed: int = setting(0, kind=int, low=0)


def run_attribution(
    model: nn.Module, datamodule, settings: AttributionSettings, run_dir: str | Path, title: str
) -> dict:
    """Maps of every method on the same seeded test images, explaining the model's top class,
    and their per-image metrics: writes attribution.npz and attribution.png into run_dir.

    Returns metrics.json's "attribution": per-method means and per-image values of each metric
    (diffid, sparseness, complexity, mprt = Spearman correlation once every layer is
    randomised), the mean insertion / deletion curves, the MPRT correlation per layer, the
    gradient evaluations per image and each path method's completeness gap per image
    (``per_image[method]["completeness_gap"]``, recomputed from its map: metrics.completeness_gap)
    with its median and range (``completeness_gap``). Gradient batches are cut to the memory
    available (attribution.memory.gradient_batch_size).
    """
    from rankrobust.attribution import (
        completeness_gap,
        complexity,
        explain,
        insertion_deletion,
        randomisation_test,
        sparseness,
    )
    from rankrobust.attribution.memory import gradient_batch_size
    from rankrobust.attribution.methods import top_label
    from rankrobust.attribution.plot import save_attribution_grid

    run_dir = Path(run_dir)
    net = getattr(model, "model", model)  # the bare network (MPRT deep-copies it)
    x, y = datamodule.test_tensors(raw=True, n=settings.n_images, seed=settings.seed)
    x = x.to(next(net.parameters()).device)
    target = top_label(net, x, settings.batch_size)
    batch = gradient_batch_size(net, x.shape[1:], settings.batch_size, name="attribution")
    kwargs = {"n_steps": settings.steps, "score": settings.score, "overlap": settings.overlap,
              "internal_batch_size": batch, "rig_ranks": settings.rig_ranks,
              "rig_first_share": settings.rig_first_share}  # fmt: skip
    out: dict = {"mean": {}, "per_image": {}, "curves": {}, "mprt_layers": {}, "evaluations": {},
                 "median_rel_delta": {}, "completeness_gap": {}}  # fmt: skip
    arrays: dict = {"images": x.cpu().numpy(), "labels": y.cpu().numpy(),
                    "targets": target.cpu().numpy()}  # fmt: skip
    for method in settings.methods:
        att = explain(net, x, method, target=target, **kwargs)
        arrays[f"map_{method}"] = att.pixel.detach().cpu().numpy()
        out["evaluations"][method] = att.evaluations
        scores: dict[str, torch.Tensor] = {}
        if att.relative_delta is not None:  # a path method: how far from converged
            gap = completeness_gap(net, x, att.pixel, target, score=settings.score,
                                   internal_batch_size=batch).double()  # fmt: skip
            scores["completeness_gap"] = gap
            out["median_rel_delta"][method] = float(gap.quantile(0.5))
            out["completeness_gap"][method] = {
                "median": float(gap.quantile(0.5)), "min": float(gap.min()), "max": float(gap.max())
            }  # fmt: skip
        if "diffid" in settings.metrics:
            curves = insertion_deletion(net, x, att.pixel, target, internal_batch_size=batch)
            scores["diffid"] = curves.diffid
            arrays[f"insertion_{method}"] = curves.insertion.cpu().numpy()
            arrays[f"deletion_{method}"] = curves.deletion.cpu().numpy()
            out["curves"][method] = {
                "ratios": curves.ratios,
                "insertion": curves.insertion.mean(0).tolist(),
                "deletion": curves.deletion.mean(0).tolist(),
            }
        if "sparseness" in settings.metrics:
            scores["sparseness"] = sparseness(att.pixel)
        if "complexity" in settings.metrics:
            scores["complexity"] = complexity(att.pixel)
        if "mprt" in settings.metrics:
            test = randomisation_test(
                net, x, lambda m, inp, t, method=method: explain(m, inp, method, target=t,
                                                                 **kwargs).pixel,
                target, seed=42 + settings.seed, max_layers=settings.mprt_layers,
            )  # fmt: skip
            scores["mprt"] = test.last
            out["mprt_layers"][method] = {
                "layers": test.layers,
                "mean_correlation": test.correlation.nanmean(dim=1).tolist(),
            }
        out["per_image"][method] = {
            k: v.detach().cpu().double().tolist() for k, v in scores.items()
        }
        out["mean"][method] = {k: float(v.double().nanmean()) for k, v in scores.items()}
    classes: Sequence[str] = datamodule.test_set.classes
    save_npz(Path(run_dir) / FILES["attribution_npz"], classes=np.asarray(classes), **arrays)
    save_attribution_grid(arrays, run_dir / FILES["attribution_png"], title, classes)
    meta = {"methods": list(settings.methods), "metrics": list(settings.metrics),
            "n_images": int(len(y)), "steps": settings.steps, "score": settings.score,
            "overlap": settings.overlap, "target": "predicted class",
            "rig_ranks": settings.rig_ranks, "rig_first_share": settings.rig_first_share,
            "batch_size": batch}  # fmt: skip
    return {"attribution": {**meta, **out}}
