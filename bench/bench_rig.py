"""Throughput of Rank Integrated Gradients vs captum's IntegratedGradients, side by side.

Both run on the same small CNN (``rankrobust.models.build_model("small_cnn")``, 3x32x32 inputs,
eval mode) with the SAME number of gradient evaluations per image: RIG on the rank path
``ranks`` x ``n_steps_per_rank`` points (default [1, 2, 4, 8, 16, 32] x 8 = 48) and captum IG
with ``n_steps`` = 48, both with method "riemann_middle" and the same ``internal_batch_size``.
RIG's time includes its SVD of the batch and its no-grad forward pass for f(x), f(baseline)
(the completeness delta, always computed); captum is timed both without its convergence delta
(its default) and with it (``return_convergence_delta=True``, the like-for-like output).  Runs
are interleaved (warm-up, then ``--repeats`` rounds of the three) and the best of each is
reported; ``speedup`` = captum time / RIG time (> 1: RIG faster).  RIG builds its model
inputs channels_last on CPU (its default there); captum is also timed on a channels_last copy
of the input, for reference.

The "methods" section: gradient / IG / RIG / SIG (``rankrobust.attribution.explain``) at equal
gradient evaluations per image vs captum IG, medians of interleaved repeats, and the seconds
the whole attribution analysis of a run takes (maps and every metric) at that size.

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

from rankrobust.attribution import rank_integrated_gradients


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
            n_steps_per_rank=steps_per_rank,
            ranks=ranks,
            internal_batch_size=batch_size,
        )

    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run_captum(with_delta: bool, inputs: torch.Tensor = x):
        return ig.attribute(
            inputs,
            baselines=torch.zeros_like(inputs),
            target=target,
            n_steps=n_evals,
            method="riemann_middle",
            internal_batch_size=batch_size,
            return_convergence_delta=with_delta,
        )

    def timed(fn, *args) -> float:
        _sync(device)
        t0 = time.perf_counter()
        fn(*args)
        _sync(device)
        return time.perf_counter() - t0

    # warm-up (allocator, cuDNN autotuning, lazy imports), then interleaved rounds
    timed(run_rig)
    timed(run_captum, False)
    timed(run_captum, True)
    timed(run_captum, False, x_cl)
    rig_t, cap_t, cap_delta_t, cap_cl_t = [], [], [], []
    for _ in range(repeats):
        rig_t.append(timed(run_rig))
        cap_t.append(timed(run_captum, False))
        cap_delta_t.append(timed(run_captum, True))
        cap_cl_t.append(timed(run_captum, False, x_cl))
    rig_best, cap_best, cap_delta_best = min(rig_t), min(cap_t), min(cap_delta_t)
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
        "rig_seconds": rig_t,
        "captum_ig_seconds": cap_t,
        "captum_ig_with_delta_seconds": cap_delta_t,
        "captum_ig_channels_last_input_seconds": cap_cl_t,
        "rig_images_per_s": images / rig_best,
        "captum_ig_images_per_s": images / cap_best,
        "captum_ig_with_delta_images_per_s": images / cap_delta_best,
        "speedup_rig_over_captum": cap_best / rig_best,
        "speedup_rig_over_captum_with_delta": cap_delta_best / rig_best,
        "captum_ig_channels_last_input_images_per_s": images / min(cap_cl_t),
        "speedup_rig_over_captum_channels_last_input": min(cap_cl_t) / rig_best,
        "rig_channels_last": device.type == "cpu",
        "rig_median_relative_delta": float(res.relative_delta.median()),
    }


def bench_methods(
    device: torch.device, images: int, steps: int, batch_size: int, repeats: int
) -> dict:
    """Every attribution method through ``rankrobust.attribution.explain`` at ``steps`` gradient
    evaluations per image (gradient: 1) against captum IG (riemann_middle, n_steps=steps, with
    its convergence delta, the like-for-like output), interleaved rounds; median and min/max
    images/s; ``ratio_vs_captum_ig`` = median captum time / median method time (> 1: faster).
    Also the cost of the whole attribution analysis (maps + DiffID + Gini + entropy + MPRT of
    every layer) as a run does it (``explain.run_attribution``)."""
    import statistics
    from types import SimpleNamespace

    from captum.attr import IntegratedGradients

    from rankrobust.attribution import METHODS, explain
    from rankrobust.pipeline import explain as run_explain

    torch.manual_seed(0)
    model = _model().to(device).eval()
    x = torch.rand(images, 3, 32, 32, device=device)
    with torch.no_grad():
        target = model(x).argmax(1)
    ig = IntegratedGradients(model)

    def timed(fn) -> float:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - t0

    runs = {m: (lambda m=m: explain(model, x, m, n_steps=steps, target=target,
                                    internal_batch_size=batch_size)) for m in METHODS}  # fmt: skip
    runs["captum_ig"] = lambda: ig.attribute(
        x, target=target, n_steps=steps, method="riemann_middle",
        internal_batch_size=batch_size, return_convergence_delta=True,
    )  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():  # warm-up
        timed(fn)
    for r in range(repeats):  # interleaved, order alternating
        for k in list(runs)[:: 1 if r % 2 == 0 else -1]:
            times[k].append(timed(runs[k]))
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "device": str(device), "threads": torch.get_num_threads(), "images": images,
        "steps": steps, "batch_size": batch_size, "repeats": repeats,
        "images_per_s": {k: {"median": images / med[k], "min": images / max(v),
                             "max": images / min(v)} for k, v in times.items()},
        "ratio_vs_captum_ig": {k: med["captum_ig"] / med[k] for k in METHODS},
    }  # fmt: skip
    dm = SimpleNamespace(
        test_tensors=lambda raw=False, n=None, seed=None: (x[:n].cpu(), target[:n].cpu()),
        test_set=SimpleNamespace(classes=[str(i) for i in range(10)]),
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        settings = run_explain.AttributionSettings(enabled=True, n_images=images, steps=steps)
        t0 = time.perf_counter()
        run_explain.run_attribution(model, dm, settings, tmp, "bench")
        out["analysis_seconds"] = time.perf_counter() - t0
    return out


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
    parser.add_argument("--methods-images", type=int, default=16, help="images, methods section")
    parser.add_argument("--methods-steps", type=int, default=64, help="evaluations per image")
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

    results["methods"] = [
        bench_methods(torch.device("cpu"), args.methods_images, args.methods_steps,
                      args.batch_size, max(args.repeats, 3))
    ]  # fmt: skip
    if torch.cuda.is_available() and not args.no_cuda:
        results["methods"].append(
            bench_methods(torch.device("cuda"), args.cuda_images, args.methods_steps,
                          args.batch_size, max(args.repeats, 3))
        )  # fmt: skip
    text = json.dumps(results, indent=2)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
