"""Benchmark of rankrobust.svd: cached factorisation vs recomputation, torch vs numpy, GPU paths.

Prints a JSON report and writes it to --out (default outputs/bench/svd.json). Measured side by
side in one run on the same data: real CIFAR-10 test images from the JPEG tarball
(../shared/data/cifar10-jpeg.tar.gz), or synthetic images if it is absent (said in the JSON).

    python bench/bench_svd.py [--n 2000] [--data PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from rankrobust.data import read_images
from rankrobust.svd import factorize, low_rank

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
RANKS = [1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28]


def load_images(path: Path, n: int) -> tuple[torch.Tensor, str]:
    """The first n test images (float32 [0, 1], n x 3 x 32 x 32) read sequentially, or synthetic."""
    if not path.is_file():
        g = torch.Generator().manual_seed(0)
        # smooth random images: low-frequency noise upsampled, so the spectrum decays like a photo
        low = torch.rand(n, 3, 8, 8, generator=g)
        x = torch.nn.functional.interpolate(low, size=(32, 32), mode="bilinear")
        return x.clamp(0, 1).contiguous(), f"synthetic (tarball not found at {path})"
    x = read_images(path, n, splits=("test",)).images
    return x.contiguous(), f"CIFAR-10 JPEG test images ({path.name})"


def timed(fn, sync: bool = False) -> tuple[float, object]:
    if sync:
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def bench_sweep(x: torch.Tensor) -> dict:
    """(a) 12-rank low-rank sweep: factorise once + slice, vs recompute the SVD per rank."""

    def cached():
        fac = factorize(x)
        return [fac.low_rank(k, clamp=True) for k in RANKS]

    def recompute():
        return [low_rank(x, k, clamp=True) for k in RANKS]

    cached(), recompute()  # warm-up (allocator, LAPACK workspace)
    t_cached, a = timed(cached)
    t_recompute, b = timed(recompute)
    max_diff = max(float((u - v).abs().max()) for u, v in zip(a, b, strict=True))
    return {
        "ranks": RANKS,
        "cached_s": round(t_cached, 4),
        "recompute_s": round(t_recompute, 4),
        "speedup": round(t_recompute / t_cached, 2),
        "max_abs_diff": max_diff,
    }


def bench_factorize_vs_numpy(x: torch.Tensor) -> dict:
    """(b) batched factorize vs a per-image np.linalg.svd loop (each image 3 x 32 x 32)."""
    xn = x.numpy()
    factorize(x[:64])
    t_torch, fac = timed(lambda: factorize(x))
    t_np, svals = timed(
        lambda: [np.linalg.svd(img, full_matrices=False, compute_uv=True)[1] for img in xn]
    )
    s_np = np.stack(svals)
    t_gram, _ = timed(lambda: factorize(x, method="gram"))
    n = x.shape[0]
    return {
        "images": n,
        "torch_batched_img_per_s": round(n / t_torch, 1),
        "torch_batched_gram_img_per_s": round(n / t_gram, 1),
        "numpy_loop_img_per_s": round(n / t_np, 1),
        "speedup": round(t_np / t_torch, 2),
        "max_abs_singular_value_diff": float(np.abs(fac.S.numpy() - s_np).max()),
    }


def bench_cuda(x: torch.Tensor, n: int = 128) -> dict:
    """(c) 3 x 224 x 224 images on CUDA: method svd vs gram, error vs a float64 reference."""
    dev = torch.device("cuda")
    big = torch.nn.functional.interpolate(x[:n], size=(224, 224), mode="bicubic").clamp(0, 1)
    big = big.to(dev)
    n = int(big.shape[0])
    ref = big.double()
    ref_l8 = factorize(ref, method="svd").low_rank(8)  # float64 reference for L_8
    out: dict = {"images": n, "shape": [3, 224, 224], "data": "upsampled (bicubic) test images"}
    for method in ("svd", "gram"):
        factorize(big[:4], method=method)  # warm-up
        t, fac = timed(lambda m=method: factorize(big, method=m), sync=True)
        out[method] = {
            "img_per_s": round(n / t, 1),
            "max_abs_err_reconstruct": float((fac.reconstruct().double() - ref).abs().max()),
            "max_abs_err_L8": float((fac.low_rank(8).double() - ref_l8).abs().max()),
        }
    out["gram_speedup"] = round(out["gram"]["img_per_s"] / out["svd"]["img_per_s"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="number of test images")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cifar10-jpeg.tar.gz")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "svd.json")
    args = p.parse_args()

    t0 = time.perf_counter()
    x, source = load_images(args.data, args.n)
    load_s = time.perf_counter() - t0
    report: dict = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "data": source,
        "images": int(x.shape[0]),
        "load_s": round(load_s, 2),
        "sweep_cached_vs_recompute": bench_sweep(x),
        "factorize_vs_numpy_loop": bench_factorize_vs_numpy(x),
    }
    if torch.cuda.is_available():
        report["cuda_224"] = bench_cuda(x)
    else:
        report["cuda_224"] = "skipped: CUDA not available"
    report["total_s"] = round(time.perf_counter() - t0, 2)
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
