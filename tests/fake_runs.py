"""Synthetic run folders (metrics.json, rig.npz, .hydra) for the collect and figures tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rankrobust.identity import run_identity
from rankrobust.results import write_metrics

RANKS = [1, 2, 4, 8, 16, 32]
N_TEST, N_ROBUST, N_SWEEP = 1000, 500, 1000  # images behind clean / robust / rank-sweep accuracy


def composed(
    attack: str,
    rank: int | None = None,
    seed: int = 0,
    dataset: str = "synthetic",
    max_epochs: int = 2,
    root: str | None = None,
) -> dict:
    """A composed, resolved run config (the part run_identity reads)."""
    return {
        "dataset": {"name": dataset, "num_classes": 10, "n_train": 2000, "root": root},
        "model": {"name": "small_cnn"},
        "attack": {"name": attack},
        "rank": rank,
        "transform": {"mode": "low", "apply_to": ["train", "test"]},
        "seed": seed,
        "train": True,
        "trainer": {"max_epochs": max_epochs},
        "name": f"{dataset}-small_cnn-{attack}-rank{rank}",
    }


def _config(attack: str, rank: int | None = None, seed: int = 0, **kw) -> dict:
    return run_identity(composed(attack, rank, seed, **kw))


def _hydra(run_dir: Path, attack: str, rank: int | None) -> None:
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(
        "dataset:\n  name: synthetic\nmodel:\n  name: small_cnn\n"
        f"attack:\n  name: {attack}\nrank: {'null' if rank is None else rank}\n"
        "transform:\n  mode: low\n  apply_to: [train, test]\nseed: 0\ntrainer:\n  max_epochs: 2\n"
    )


def write_run(
    run_dir: Path,
    attack: str,
    clean: float,
    low: dict[int, float],
    high: dict[int, float],
    robust_acc: float,
    per_rank: np.ndarray | None = None,
    spectrum: list[float] | None = None,
    counts: bool | dict = True,
    bases: dict | None = None,
    **cfg,
) -> Path:
    """A finished full-image run with a rank sweep, optionally rig.npz and a spectrum; `counts`
    (True: the defaults, a dict: these, False: none) records the image counts behind its
    accuracies; `cfg` goes to `composed`."""
    _hydra(run_dir, attack, None)
    metrics = {
        "status": "ok",
        "error": None,
        "clean_acc": clean,
        "robust_acc": robust_acc,
        "config": _config(attack, **cfg),
        "resolved_config": composed(attack, **cfg),
        "run_dir": str(run_dir),
        "timings": {"setup": 1.0, "fit": 10.0, "test": 2.0, "rank_sweep": 1.5, "total": 14.5},
        "eval_attack": {"name": "pgd_linf", "eps": 8 / 255, "step_size": 2 / 255, "steps": 20},
        "rank_sweep": {"low": low, "high": high},
        "checkpoint": None,
    }
    if counts:
        default = {"n_test": N_TEST, "n_robust": N_ROBUST, "rank_sweep_n": N_SWEEP}
        metrics.update(counts if isinstance(counts, dict) else default)
    full = 8
    if spectrum is not None:
        metrics["perturbation_spectrum"] = {
            "clean": list(np.geomspace(10.0, 0.05, full)),
            "perturbation": spectrum,
            "n_images": 16,
        }
    if per_rank is not None:
        ranks = np.arange(1, full + 1)
        rng = np.random.default_rng(0 if attack == "none" else 1)
        n = 3
        images = rng.uniform(0, 1, (n, 3, full, full)).astype(np.float32)
        per = np.tile(per_rank, (n, 1)) + rng.normal(0, 1e-3, (n, full))
        np.savez(
            run_dir / "rig.npz",
            images=images,
            targets=np.arange(n),
            labels=np.array([0, 2, 2]),
            classes=np.array(["airplane", "automobile", "bird"]),
            pixel=rng.normal(0, 1, images.shape).astype(np.float32),
            vanilla=rng.normal(0, 1, images.shape).astype(np.float32),
            per_rank=per,
            ranks=ranks,
            delta=np.zeros(n),
        )
        shares = np.abs(per_rank) / np.abs(per_rank).sum()
        metrics["rig"] = {
            "top4_share": float(shares[:4].sum()),
            "median_rel_delta": 0.01,
            "mean_per_rank": list(per_rank),
            "ranks": list(ranks),
        }
    if bases is not None:  # metrics.json basis_sweep, basis_sweep_n and heat_maps
        metrics.update(bases)
    write_metrics(run_dir, metrics)
    return run_dir


def add_attribution(run_dir: Path, seed: int, cleaner: bool = True, n: int = 6) -> None:
    """Give a fake run an attribution.npz and metrics.json's `attribution` (gradient, IG, RIG,
    SIG); with `cleaner`, RIG's Gini is higher and its entropy lower than the gradient's."""
    from rankrobust.results import read_metrics

    rng = np.random.default_rng(seed)
    methods, metrics = ["gradient", "ig", "rig", "sig"], ["diffid", "sparseness", "complexity"]
    sign = 1.0 if cleaner else -1.0
    per_image, curves, arrays = {}, {}, {}
    ratios = [round(0.1 * i, 1) for i in range(1, 10)]
    for i, m in enumerate(methods):
        shift = 0.0 if m == "gradient" else sign * 0.1
        per_image[m] = {
            "diffid": list(rng.uniform(0.0, 0.3, n) + abs(shift)),
            "sparseness": list(rng.uniform(0.3, 0.35, n) + shift),
            "complexity": list(rng.uniform(5.0, 5.05, n) - 5 * shift),
        }
        ins = np.clip(np.linspace(1.0, 0.5, 9) + 0.05 * i, 0, 1)
        curves[m] = {"ratios": ratios, "insertion": list(ins), "deletion": list(ins[::-1] - 0.3)}
        arrays[f"map_{m}"] = rng.normal(0, 1, (n, 3, 8, 8)).astype(np.float32)
    np.savez(run_dir / "attribution.npz", images=rng.uniform(0, 1, (n, 3, 8, 8)),
             labels=np.zeros(n, int), targets=np.zeros(n, int),
             classes=np.array(["airplane", "automobile"]), **arrays)  # fmt: skip
    metrics_json = read_metrics(run_dir)
    metrics_json["attribution"] = {
        "methods": methods, "metrics": metrics, "n_images": n, "steps": 64,
        "evaluations": {"gradient": 1, "ig": 64, "rig": 64, "sig": 64},
        "per_image": per_image, "curves": curves,
        "mean": {m: {k: float(np.mean(v)) for k, v in per_image[m].items()} for m in methods},
    }  # fmt: skip
    write_metrics(run_dir, metrics_json)


def fake_bases(robust: bool) -> dict:
    """A basis sweep (svd, fourier, wavelet) and heat maps of the shape analyses writes: the
    accuracy is a function of the energy kept, the robust model's rising sooner."""
    energies = {
        "svd": {1: 0.9, 2: 0.95, 4: 0.98, 8: 0.995, 32: 1.0},
        "fourier": {0: 0.85, 1: 0.93, 4: 0.97, 8: 0.99, 23: 1.0},
        "wavelet": {0: 0.85, 2: 0.96, 5: 1.0},
    }

    def acc(e: float, high: bool) -> float:
        if high:
            return 0.1 if robust else 0.1 + 0.5 * e
        return (0.7 if robust else 0.9) * min(1.0, max(0.1, (e - 0.8) / (0.995 - 0.8) if not
                robust else (e - 0.8) / (0.95 - 0.8)))  # fmt: skip

    sweep = {
        b: {"low": {k: acc(e, False) for k, e in es.items()},
            "high": {k: acc(e, True) for k, e in es.items()}, "energy": es}
        for b, es in energies.items()
    }  # fmt: skip
    freqs = list(range(-2, 3))
    error = [[min(1.0, 0.1 + (0.1 if robust else 0.2) * (abs(a) + abs(b))) for b in freqs]
             for a in freqs]  # fmt: skip
    ranks = [1, 2, 4, 8]
    heat = {
        "fourier": {"freqs": freqs, "error": error, "eps": 4.0, "n_images": 100},
        "rank": {"ranks": ranks, "error": [0.5 / k if robust else 0.3 for k in ranks],
                 "eps": 4.0, "n_images": 100},
    }  # fmt: skip
    return {"basis_sweep": sweep, "basis_sweep_n": N_SWEEP, "heat_maps": heat}


def make_outputs(root: Path, claims_hold: bool = True) -> Path:
    """An outputs/ tree: natural + robust single runs, a rank sweep with a failed and an unfinished
    job and a never-started job. With claims_hold=False, C1-C3 are built to fail."""
    ks = RANKS
    nat_low = {k: min(0.9, 0.1 + 0.8 * (k / 32) ** 0.5) for k in ks}
    rob_low = {k: min(0.7, 0.35 + 0.35 * (k / 8)) for k in ks}
    nat_high = {k: max(0.1, 0.6 - 0.015 * k) for k in ks}
    rob_high = {k: 0.1 + 0.01 * (k == 1) for k in ks}
    nat_rig = np.array([0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.1, 0.1])
    rob_rig = np.array([0.5, 0.2, 0.1, 0.1, 0.04, 0.03, 0.02, 0.01])
    if not claims_hold:
        nat_low, rob_low = rob_low, nat_low
        nat_high, rob_high = rob_high, nat_high
        nat_rig, rob_rig = rob_rig, nat_rig
    runs = root / "runs" / "2026-01-01"
    write_run(
        runs / "10-00-00_natural",
        "none",
        clean=0.9 if claims_hold else 0.7,
        low=nat_low,
        high=nat_high,
        robust_acc=0.01,
        per_rank=nat_rig,
        spectrum=list(np.geomspace(0.3, 0.2, 8)),
        bases=fake_bases(robust=False),
    )
    write_run(
        runs / "10-10-00_robust",
        "pgd_linf",
        clean=0.7 if claims_hold else 0.9,
        low=rob_low,
        high=rob_high,
        robust_acc=0.4,
        per_rank=rob_rig,
        spectrum=list(np.geomspace(0.6, 0.05, 8)),
        bases=fake_bases(robust=True),
    )
    add_attribution(runs / "10-00-00_natural", 0, cleaner=claims_hold)
    add_attribution(runs / "10-10-00_robust", 1, cleaner=claims_hold)
    sweep = root / "multirun" / "2026-01-01" / "11-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for i, (k, clean, rob) in enumerate([(2, 0.4, 0.2), (8, 0.6, 0.15), (32, 0.9, 0.05)]):
        job = sweep / f"{i}_rank={k}"
        _hydra(job, "none", k)
        write_metrics(
            job,
            {
                "status": "ok",
                "error": None,
                "clean_acc": clean,
                "robust_acc": rob,
                "config": _config("none", k),
                "resolved_config": composed("none", k),
                "timings": {"fit": 5.0, "total": 6.0},
                "n_test": N_TEST,
                "n_robust": N_ROBUST,
            },
        )
    failed = sweep / "3_rank=40"
    _hydra(failed, "none", 40)
    write_metrics(
        failed,
        {
            "status": "failed",
            "error": "ConfigError: rank=40 must satisfy 1 <= rank <= 32",
            "clean_acc": None,
            "robust_acc": None,
            "config": _config("none", 40),
            "timings": {"total": 0.1},
        },
    )
    running = sweep / "4_rank=16"
    _hydra(running, "none", 16)
    write_metrics(
        running,
        {
            "status": "running",
            "error": None,
            "clean_acc": None,
            "robust_acc": None,
            "config": _config("none", 16),
            "timings": {},
        },
    )
    _hydra(sweep / "5_rank=4", "none", 4)  # never wrote metrics.json
    return root
