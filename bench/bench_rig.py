"""Throughput of Rank Integrated Gradients vs captum's IntegratedGradients, side by side.

Both run on the same small CNN (``rankrobust.models.build_model("small_cnn")``, 3x32x32 inputs,
eval mode) with the SAME number of gradient evaluations per image: RIG on the rank path
``ranks`` x ``steps_per_rank`` points (default [1, 2, 4, 8, 16, 32] x 8 = 48) and captum IG with
``n_steps`` = 48 (method "riemann_middle"), ``internal_batch_size`` = RIG's ``batch_size``.
RIG's time includes its SVD of the batch and its forward pass for f(x), f(baseline) (the
completeness delta); captum's is timed without its convergence delta.  Runs are interleaved
(warm-up, then ``--repeats`` alternating rounds) and the best round of each is reported.

Usage:  python bench/bench_rig.py [--images 32] [--batch-size 256] [--out outputs/bench/rig.json]
Prints one JSON document and writes it to ``--out``.  CPU always; CUDA too when available.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from rankrobust.rig import rank_integrated_gradients


def _model(num_classes: int = 10) -> nn.Module:
    try:
        from rankrobust.models import build_model

        return build_model("small_cnn", num_classes, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    except ImportError:  # pragma: no cover - fallback when the models module is absent

        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        return nn.Sequential(
            *stage(3, 32),
            nn.MaxPool2d(2),
            *stage(32, 64),
            nn.MaxPool2d(2),
            *stage(64, 128),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(128, num_classes),
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_device(
    device: torch.device,
    images: int,
    ranks: list[int],
    steps_per_rank: int,
    batch_size: int,
    repeats: int,
) -> dict:
    from captum.attr import IntegratedGradients

    torch.manual_seed(0)
    model = _model().to(device).eval()
    x = torch.rand(images, 3, 32, 32, device=device)
    with torch.no_grad():
        target = model(x).argmax(1)
    n_evals = len(ranks) * steps_per_rank
    ig = IntegratedGradients(model)

    def run_rig():
        return rank_integrated_gradients(
            model,
            x,
            target=target,
            steps_per_rank=steps_per_rank,
            ranks=ranks,
            batch_size=batch_size,
        )

    def run_captum():
        return ig.attribute(
            x,
            baselines=torch.zeros_like(x),
            target=target,
            n_steps=n_evals,
            method="riemann_middle",
            internal_batch_size=batch_size,
        )

    def timed(fn) -> float:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - t0

    timed(run_rig)  # warm-up (allocator, cuDNN autotuning, lazy imports)
    timed(run_captum)
    rig_times, captum_times = [], []
    for _ in range(repeats):
        rig_times.append(timed(run_rig))
        captum_times.append(timed(run_captum))
    rig_best, captum_best = min(rig_times), min(captum_times)
    res = run_rig()
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "images": images,
        "image_shape": [3, 32, 32],
        "ranks": ranks,
        "steps_per_rank": steps_per_rank,
        "gradient_evaluations_per_image": n_evals,
        "captum_n_steps": n_evals,
        "batch_size": batch_size,
        "rig_seconds": rig_times,
        "captum_ig_seconds": captum_times,
        "rig_images_per_s": images / rig_best,
        "captum_ig_images_per_s": images / captum_best,
        "speedup_rig_over_captum": captum_best / rig_best,
        "rig_median_relative_delta": float(res.relative_delta.median()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="images per run on CPU")
    parser.add_argument("--cuda-images", type=int, default=256, help="images per run on CUDA")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--steps-per-rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--no-cuda", action="store_true")
    parser.add_argument("--out", default="outputs/bench/rig.json")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    results = {
        "benchmark": "rank_integrated_gradients vs captum.attr.IntegratedGradients",
        "torch": torch.__version__,
        "runs": [],
    }
    try:
        import captum

        results["captum"] = captum.__version__
    except ImportError:  # pragma: no cover
        pass
    common = dict(
        ranks=args.ranks,
        steps_per_rank=args.steps_per_rank,
        batch_size=args.batch_size,
        repeats=args.repeats,
    )
    results["runs"].append(bench_device(torch.device("cpu"), images=args.images, **common))
    if torch.cuda.is_available() and not args.no_cuda:
        results["runs"].append(
            bench_device(torch.device("cuda"), images=args.cuda_images, **common)
        )

    text = json.dumps(results, indent=2)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
