"""Synthetic zoo job folders (metrics.json with its `zoo` block) for the leaderboard tests.

Each job is an evaluation run of a RobustBench entry (train false, weights loaded), written
with the project's metrics.json writer, its `zoo` block as the zoo runner writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rankrobust.identity import ROBUSTBENCH_EPS, run_identity
from rankrobust.results import write_metrics

RANKS = [1, 2, 4, 8, 16, 32]
N_IMAGES = 200

# (name, threat model, architecture, kind, clean reported, AutoAttack reported): CIFAR-10 entries
# of RobustBench's leaderboard (numbers as fractions), over two threat models.
ENTRIES = [
    ("Standard", "Linf", "WideResNet-28-10", "natural", 0.9478, 0.0),
    ("Carmon2019Unlabeled", "Linf", "WideResNet-28-10", "robust", 0.8975, 0.5953),
    ("Wong2020Fast", "Linf", "PreActResNet-18", "robust", 0.8334, 0.4321),
    ("Engstrom2019Robustness", "Linf", "ResNet-50", "robust", 0.8753, 0.4925),
    ("Rice2020Overfitting_Linf", "Linf", "PreActResNet-18", "robust", 0.8534, 0.5342),
    ("Rice2020Overfitting", "L2", "PreActResNet-18", "robust", 0.8867, 0.6768),
    ("Engstrom2019Robustness_L2", "L2", "ResNet-50", "robust", 0.9083, 0.6924),
    ("Augustin2020Adversarial", "L2", "ResNet-50", "robust", 0.9123, 0.7291),
    ("Sehwag2021Proxy_R18", "L2", "ResNet-18", "robust", 0.8976, 0.7433),
    ("Ding2020MMA", "L2", "WideResNet-28-4", "robust", 0.8802, 0.6602),
]
FAILED = ("Gowal2020Uncovering_70_16", "Linf", "WideResNet-70-16", "robust", 0.9110, 0.6587)


def composed(name: str, threat_model: str, seed: int = 0) -> dict:
    """The resolved config of a zoo job evaluating RobustBench entry `name` (the part
    run_identity reads)."""
    return {
        "dataset": {"name": "cifar10", "num_classes": 10, "n_test": N_IMAGES},
        "model": {
            "name": "robustbench",
            "name_rb": name,
            "rb_dataset": "cifar10",
            "threat_model": threat_model,
            "kind": None,
            "threat": None,
        },
        "attack": {"name": "none"},
        "rank": None,
        "transform": {"mode": "low", "apply_to": ["test"]},
        "seed": seed,
        "train": False,
        "trainer": {"max_epochs": 0},
        "name": f"zoo-{name}",
    }


def zoo_block(name, threat_model, arch, kind, clean, aa, weights_dir: Path) -> dict:
    """The `zoo` object of the runner's metrics.json for a RobustBench entry."""
    eps = ROBUSTBENCH_EPS[("cifar10", threat_model)]
    threat = {"norm": threat_model.lower(), "eps": eps} if kind == "robust" else None
    return {
        "name": name, "source": "robustbench", "dataset": "cifar10",
        "threat_model": threat_model, "architecture": arch, "kind": kind, "threat": threat,
        "clean_acc_reported": clean, "autoattack_acc_reported": aa, "venue": "venue",
        "link": f"https://example.org/{name}",
        "weights": str(weights_dir / "cifar10" / threat_model / f"{name}.pt"),
    }  # fmt: skip


def write_job(root: Path, index: int, spec: tuple, rng: np.random.Generator, models: Path) -> Path:
    """A finished zoo job: clean accuracy near the reported one, its share kept on L_k rising
    and its accuracy on H_k falling with the AutoAttack accuracy, a RIG top-4 share."""
    name, threat_model, arch, kind, clean, aa = spec
    run_dir = root / f"{name}-{index:02d}"
    run_dir.mkdir(parents=True)
    cfg = composed(name, threat_model)
    measured = float(np.clip(clean + rng.normal(0, 0.01), 0.1, 1.0))
    keep = {k: min(1.0, (0.25 + 0.9 * aa) * (k / 4) ** 0.3 + rng.normal(0, 0.03)) for k in RANKS}
    low = {k: round(measured * max(0.0, s), 4) for k, s in keep.items()}
    high = {k: round(max(0.1, 0.55 - 0.6 * aa - 0.005 * k + rng.normal(0, 0.03)), 4)
            for k in RANKS}  # fmt: skip
    metrics = {
        "status": "ok",
        "error": None,
        "clean_acc": round(measured, 4),
        "robust_acc": None,
        "config": run_identity(cfg),
        "resolved_config": cfg,
        "timings": {"rank_sweep": 3.0, "total": 5.0},
        "rank_sweep": {"low": low, "high": high},
        "n_test": N_IMAGES,
        "rank_sweep_n": N_IMAGES,
        "rig": {
            "top4_share": round(float(rng.uniform(0.2, 0.6)), 4),
            "median_rel_delta": 0.01,
            "mean_per_rank": [0.1] * 8,
            "ranks": list(range(1, 9)),
        },
        "zoo": zoo_block(name, threat_model, arch, kind, clean, aa, models),
    }
    write_metrics(run_dir, metrics)
    return run_dir


def write_failed_job(root: Path, spec: tuple, models: Path) -> Path:
    """A zoo job whose weights file is missing: status failed, the zoo block, the error naming
    the file to copy where."""
    name, threat_model, arch, kind, clean, aa = spec
    run_dir = root / f"{name}-99"
    cfg = composed(name, threat_model)
    block = zoo_block(name, threat_model, arch, kind, clean, aa, models)
    error = (f"ConfigError: the weights of {name} are not at {block['weights']}: fetch them on a "
             f"machine with a network and copy {name}.pt to {block['weights']}")  # fmt: skip
    write_metrics(run_dir, {"status": "failed", "error": error, "clean_acc": None,
                            "robust_acc": None, "config": run_identity(cfg),
                            "resolved_config": cfg, "timings": {"total": 0.1},
                            "zoo": block})  # fmt: skip
    return run_dir


def make_zoo(root: Path, seed: int = 0) -> Path:
    """root/runs: the ten ENTRIES' finished jobs and FAILED's failed one; returns root/runs."""
    rng = np.random.default_rng(seed)
    runs = root / "runs"
    models = root / "models"
    for i, spec in enumerate(ENTRIES):
        write_job(runs, i, spec, rng, models)
    write_failed_job(runs, FAILED, models)
    return runs
