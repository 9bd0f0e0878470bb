"""Benchmark of rankrobust.svd: cached factorisation vs recomputation, torch vs numpy, and at
224x224 the truncated route (factorize(x, max_rank=32)) vs the full routes, CPU and CUDA.

Prints a JSON report and writes it to --out (default outputs/bench/svd.json). Measured side by
side in one run on the same data: 32x32 sections on real CIFAR-10 test images from the JPEG
tarball (../shared/data/cifar10-jpeg.tar.gz, synthetic if absent, said in the JSON); 224x224
sections on random 224 crops of the real sample photos of scikit-image and matplotlib
(rankrobust.data.photos). Each section names the device it ran on. Speeds are medians of interleaved
repeats; errors are max abs pixel differences to a float64 LAPACK SVD, over every k <= 32.

    python bench/bench_svd.py [--quick] [--n 2000] [--n224 32] [--threads 1] [--out PATH]
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

from rankrobust import _svd_maths
from rankrobust.data import read_images
from rankrobust.svd import Factorization, factorize, low_rank

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
RANKS = [1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28]
K224 = 32  # the largest rank served by the truncated route at 224x224
JACOBI_SWEEPS = 3  # block Jacobi sweeps to convergence on 224x224 photos' Ritz matrices
# (oversampling p, power iterations q) tried for the accuracy table that justifies the defaults
SETTINGS = [(16, 2), (16, 4), (16, 6), (32, 2), (32, 4), (32, 6), (32, 8), (48, 4)]


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


def _max_errors(fac, x: torch.Tensor, ref: list[torch.Tensor]) -> dict:
    """Max abs error of L_k and H_k (k = 1..K224) against the float64 references L_k."""
    x64 = x.double().cpu()
    err_l = [float((fac.low_rank(k).double().cpu() - r).abs().max()) for k, r in _ranks(ref)]
    err_h = [
        float((fac.high_rank(k).double().cpu() - (x64 - r)).abs().max()) for k, r in _ranks(ref)
    ]
    return {"max_abs_err_L": max(err_l), "max_abs_err_H": max(err_h), "per_k_L": err_l}


def _cpu_name() -> str:
    return platform.processor() or platform.machine()


def _ranks(ref: list[torch.Tensor]):
    return enumerate(ref, start=1)


def _references(x: torch.Tensor) -> list[torch.Tensor]:
    """L_1..L_K224 of x from a float64 LAPACK SVD on the CPU, summed term by term."""
    u, s, vh = torch.linalg.svd(x.double().cpu(), full_matrices=False)
    out, total = [], torch.zeros(x.shape, dtype=torch.float64)
    for k in range(K224):
        total = total + (u[..., :, k : k + 1] * s[..., None, k : k + 1]) @ vh[..., k : k + 1, :]
        out.append(total)
    return out


def bench_224(x: torch.Tensor, device: torch.device, n_err: int, repeats: int, n_full: int) -> dict:
    """(c) 3 x 224 x 224 photos: truncated (max_rank=32) vs torch.linalg.svd vs float64 Gram.

    Throughput: median over ``repeats`` interleaved rounds (each round times every route once);
    the full routes time the first ``n_full`` images only (they are slow on GPUs). Errors on
    the first ``n_err`` images, every k <= 32, against float64 LAPACK.
    """
    cuda = device.type == "cuda"
    xd = x.to(device)
    routes = {
        "truncated": lambda z: factorize(z, max_rank=K224),
        "torch_svd": lambda z: factorize(z, method="svd"),
        "gram_float64": lambda z: factorize(z, method="gram"),
    }
    if cuda:  # the Ritz solve by torch.linalg.eigh, which loops over the batch above 32 x 32
        routes["truncated_torch_eigh"] = lambda z: _truncated_fac(z, jacobi=False)
    fast = ("truncated", "truncated_torch_eigh")
    inputs = {name: xd if name in fast else xd[:n_full] for name in routes}
    times: dict[str, list[float]] = {name: [] for name in routes}
    for name, fn in routes.items():  # warm-up: allocator, cuSOLVER/LAPACK workspaces
        fn(inputs[name][:2])
    for _ in range(repeats):
        for name, fn in routes.items():
            times[name].append(timed(lambda f=fn, z=inputs[name]: f(z), sync=cuda)[0])
    ref = _references(x[:n_err])
    out: dict = {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({_cpu_name()})",
        "images": int(x.shape[0]),
        "shape": list(x.shape[1:]),
        "repeats": repeats,
        "max_rank": K224,
        "error_images": n_err,
    }
    for name, fn in routes.items():
        med = float(np.median(times[name]))
        out[name] = {
            "images_timed": int(inputs[name].shape[0]),
            "img_per_s": round(int(inputs[name].shape[0]) / med, 1),
            "median_s": round(med, 4),
            **_max_errors(fn(xd[:n_err]), x[:n_err], ref),
        }
    sweeps = JACOBI_SWEEPS if cuda else 0  # CUDA solves the 64 x 64 Ritz problem by Jacobi
    flop = 3 * _svd_maths.flops(224, 224, K224, jacobi_sweeps=sweeps)["total"]
    out["truncated"]["gflop_per_image"] = round(flop / 1e9, 3)
    out["truncated"]["achieved_gflop_per_s"] = round(flop * out["truncated"]["img_per_s"] / 1e9, 1)
    out["truncated_vs_torch_svd_speedup"] = round(
        out["truncated"]["img_per_s"] / out["torch_svd"]["img_per_s"], 2
    )
    out["gram_vs_torch_svd_speedup"] = round(
        out["gram_float64"]["img_per_s"] / out["torch_svd"]["img_per_s"], 2
    )
    return out


def _truncated_fac(z: torch.Tensor, **kwargs) -> Factorization:
    """factorize(z, max_rank=K224) with options of the truncated route passed through."""
    u, s, vh = (t.float() for t in _svd_maths.truncated_svd(z, K224, **kwargs))
    return Factorization(u, s, vh, z.dtype, z.shape, K224, z)


def bench_settings(x: torch.Tensor) -> dict:
    """(d) why p = 32, q = 6: max error over k <= 32 of other (oversampling, iterations) on
    x = the 7 sample photos resized and centre-cropped to 224 (harder than native-size crops,
    whose pixels are smoother), the photos of tests/test_svd.py."""
    ref = _references(x)
    rows = []
    for p, q in SETTINGS:
        t, (u, s, vh) = timed(lambda p=p, q=q: _svd_maths.truncated_svd(x, K224, p, q))
        err = 0.0
        for k, r in _ranks(ref):
            err = max(
                err, float(((u[..., :k] * s[..., None, :k]) @ vh[..., :k, :] - r).abs().max())
            )
        flop = 3 * _svd_maths.flops(224, 224, K224, p, q)["total"]
        rows.append(
            {
                "oversample": p,
                "power_iters": q,
                "max_abs_err_L": err,
                "gflop_per_image": round(flop / 1e9, 3),
                "cpu_s": round(t, 3),
            }
        )
    chosen = {"oversample": _svd_maths.OVERSAMPLE, "power_iters": _svd_maths.POWER_ITERS}
    data = (
        "the 7 sample photos resized + centre-cropped to 224 (rankrobust.data.photos.center_crops)"
    )
    return {"device": "cpu", "data": data, "chosen": chosen, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few seconds per CPU section")
    p.add_argument("--n", type=int, default=2000, help="number of CIFAR-10 test images")
    p.add_argument("--n224", type=int, default=32, help="random 224 photo crops (CPU)")
    p.add_argument("--n224-gpu", type=int, default=512, help="random 224 photo crops (CUDA)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: robust on shared cores)"
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cifar10-jpeg.tar.gz")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "svd.json")
    args = p.parse_args()
    if args.quick:
        args.n, args.n224, args.repeats = min(args.n, 300), min(args.n224, 8), min(args.repeats, 3)

    torch.set_num_threads(args.threads)
    from rankrobust.data.photos import center_crops, random_crops  # scikit-image: dev extra

    t0 = time.perf_counter()
    x, source = load_images(args.data, args.n)
    crops = random_crops(max(args.n224, args.n224_gpu if torch.cuda.is_available() else 0))
    load_s = time.perf_counter() - t0
    n_err = min(4 if args.quick else 8, args.n224)
    report: dict = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "data": source,
        "data_224": "random 224x224 crops of the scikit-image/matplotlib sample photos",
        "images": int(x.shape[0]),
        "load_s": round(load_s, 2),
        "truncated_method": {
            "name": "randomized subspace iteration, Householder QR (CPU) / shifted CholeskyQR2 "
            "in float64 (CUDA) at every half step, float64 Rayleigh-Ritz (torch eigh on CPU, "
            "block Jacobi with batched 32x32 eighs on CUDA)",
            "oversample": _svd_maths.OVERSAMPLE,
            "power_iters": _svd_maths.POWER_ITERS,
            "flops_per_matrix_224_k32": _svd_maths.flops(224, 224, K224),
            "flops_per_matrix_224_k32_cuda": _svd_maths.flops(
                224, 224, K224, jacobi_sweeps=JACOBI_SWEEPS
            ),
        },
    }
    # The CUDA section first (the only place the CUDA truncated route is timed), and the JSON
    # rewritten after every section: a run stopped by a time limit keeps what it measured.
    sections = []
    if torch.cuda.is_available():
        sections.append(
            (
                "photos_224_cuda",
                lambda: bench_224(
                    crops[: args.n224_gpu], torch.device("cuda"), n_err, args.repeats, 64
                ),
            )
        )
    else:
        report["photos_224_cuda"] = "skipped: CUDA not available"
    sections += [
        ("sweep_cached_vs_recompute", lambda: {"device": "cpu", **bench_sweep(x)}),
        ("factorize_vs_numpy_loop", lambda: {"device": "cpu", **bench_factorize_vs_numpy(x)}),
        (
            "photos_224_cpu",
            lambda: bench_224(
                crops[: args.n224], torch.device("cpu"), n_err, args.repeats, args.n224
            ),
        ),
        ("truncated_settings_224", lambda: bench_settings(center_crops(224))),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, run in sections:
        report["sections_pending"] = [n for n, _ in sections if n not in report]
        _save(report, args.out)
        t = time.perf_counter()
        try:
            report[name] = run()
        except Exception as exc:  # report the failure, keep the other sections' figures
            report[name] = f"failed: {type(exc).__name__}: {exc}"
        print(f"{name}: {time.perf_counter() - t:.1f} s", flush=True)
    report.pop("sections_pending", None)
    report["total_s"] = round(time.perf_counter() - t0, 2)
    print(_save(report, args.out))


def _save(report: dict, out: Path) -> str:
    """Write the report (atomically: a kill mid-write leaves the previous version)."""
    text = json.dumps(report, indent=2)
    tmp = out.with_suffix(".part")
    tmp.write_text(text + "\n")
    tmp.replace(out)
    return text


if __name__ == "__main__":
    main()
