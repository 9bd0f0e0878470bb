"""The zoo protocol's throughput on this machine, and the shared factorisation's saving.

Per model, the protocol of one zoo job (conf/experiment/zoo.yaml) at tiny settings, through the
library (no Hydra, no Lightning): clean accuracy on ``--n`` test images, the rank sweep L_k / H_k
at k = 1, 2, 4, 8, 16 (one factorisation of the images), and RIG on ``--rig-images`` images
(RobustBench's networks with random weights, built with robustbench's own classes: their cost,
not their accuracy, is measured). ``models_per_hour`` = 3600 / median seconds per model.

Shared factorisation: ``--models`` small networks evaluated one after another, either each
factorising the test images itself ("per_model") or all reading the one factorisation from the
disk cache (data/factor_cache, "shared": computed by the first, read by the rest). Rounds of
the two are interleaved, ``--repeats`` times; the medians are reported and ``ratio`` =
per_model / shared (> 1: sharing saves time).

Usage:  python bench/bench_zoo.py [--n 32] [--models 4] [--out outputs/bench/zoo.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rankrobust.attribution import rank_integrated_gradients
from rankrobust.data import factor_cache
from rankrobust.evaluate import accuracy, rank_sweep
from rankrobust.files import write_json
from rankrobust.models import build_model
from rankrobust.models.external import robustbench_compat

RANKS = [1, 2, 4, 8, 16]
ARCHS = {  # RobustBench entry -> the leaderboard's architecture
    "Wong2020Fast": ("Linf", "PreActResNet-18"),
    "Sehwag2021Proxy_R18": ("L2", "ResNet-18"),
    "Standard": ("Linf", "WideResNet-28-10"),
}
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def _images(n: int, data: Path) -> tuple[torch.Tensor, torch.Tensor, str]:
    if data.is_file():
        from rankrobust.data import CIFAR10_CLASSES, read_images

        got = read_images(data, n, splits=("test",), classes=CIFAR10_CLASSES)
        return got.images, got.labels, str(data)
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g), "random"


def _protocol(model, x, y, rig_images: int, fac=None) -> float:
    """Seconds for one model's zoo job: clean accuracy, rank sweep, RIG."""
    start = time.perf_counter()
    with torch.no_grad():
        accuracy(model, x, y, batch_size=256)
    rank_sweep(model, x, y, RANKS, batch_size=256, factorization=fac)
    rank_integrated_gradients(model, x[:rig_images], y[:rig_images], steps_per_rank=2,
                              baseline_steps=4)  # fmt: skip
    return time.perf_counter() - start


def models_per_hour(x, y, rig_images: int, repeats: int) -> dict:
    robustbench_compat()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    out = {}
    for name, (tm, arch) in ARCHS.items():
        torch.manual_seed(0)
        net = model_dicts[BenchmarkDataset("cifar10")][ThreatModel(tm)][name]["model"]().eval()
        times = [_protocol(net, x, y, rig_images) for _ in range(repeats)]
        sec = statistics.median(times)
        out[arch] = {"entry": name, "seconds_per_model": sec, "models_per_hour": 3600 / sec}
        print(f"[bench_zoo] {arch}: {sec:.1f} s per model", file=sys.stderr, flush=True)
    return out


def shared_vs_per_model(x, y, n_models: int, repeats: int) -> dict:
    """Median seconds of the zoo's rank sweeps with one factorisation per model vs one shared."""
    nets = []
    for seed in range(n_models):
        torch.manual_seed(seed)
        nets.append(build_model("small_cnn", 10, (0.5,) * 3, (0.25,) * 3, width=8).eval())
    top = max(RANKS)
    per_model, shared = [], []
    for _ in range(repeats):  # interleaved rounds
        tick = time.perf_counter()
        for net in nets:
            fac = factor_cache.factorize_batches(x, top, 256, "cpu")
            rank_sweep(net, x, y, RANKS, batch_size=256, factorization=fac)
        per_model.append(time.perf_counter() - tick)
        with tempfile.TemporaryDirectory() as cache:
            os.environ["RANKROBUST_CACHE"] = cache
            tick = time.perf_counter()
            for net in nets:
                fac = factor_cache.cached_factorization(x, top, 256, "cpu")
                rank_sweep(net, x, y, RANKS, batch_size=256, factorization=fac)
            shared.append(time.perf_counter() - tick)
    a, b = statistics.median(per_model), statistics.median(shared)
    return {"n_models": n_models, "model": "small_cnn width 8", "per_model_s": a,
            "shared_s": b, "ratio": a / b, "per_model_all": per_model,
            "shared_all": shared}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=32, help="test images per model")
    p.add_argument("--rig-images", type=int, default=2)
    p.add_argument("--models", type=int, default=4, help="models in the shared-SVD comparison")
    p.add_argument("--shared-n", type=int, default=500, help="images in that comparison")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (shared SVD)")
    p.add_argument("--protocol-repeats", type=int, default=1, help="runs per architecture")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=Path("outputs/bench/zoo.json"))
    args = p.parse_args()
    torch.manual_seed(0)
    x, y, source = _images(max(args.n, args.shared_n), args.data)
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "data": source, "n_images": args.n, "ranks": RANKS, "rig_images": args.rig_images,
        "load_average": os.getloadavg()[0],  # shared cores: the load the numbers were taken under
        "zoo_protocol": models_per_hour(x[: args.n], y[: args.n], args.rig_images,
                                        args.protocol_repeats),
        "shared_factorisation": shared_vs_per_model(x[: args.shared_n], y[: args.shared_n],
                                                    args.models, args.repeats),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
