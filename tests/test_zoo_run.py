"""One zoo, end to end as `make zoo` runs it: RobustBench files in RobustBench's layout (random
weights, built with robustbench's own classes) over three architectures and both threat models,
a local checkpoint and a missing entry, in one multirun; then a reordered rerun after one job
was interrupted: only that job is computed again."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import ROOT, child_env
from PIL import Image

from rankrobust.models import build_model
from rankrobust.models.external import robustbench_compat
from rankrobust.results import read_metrics
from rankrobust.run_folders import validate_metrics

pytestmark = pytest.mark.e2e  # the pipeline end to end: two sweeps of seven models

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# (name, threat model, architecture): PreActResNet-18, ResNet-18 and WideResNet-28-10, Linf + L2
ENTRIES = [
    ("Standard", "Linf", "WideResNet-28-10"),
    ("Wong2020Fast", "Linf", "PreActResNet-18"),
    ("Rice2020Overfitting", "L2", "PreActResNet-18"),
    ("Sehwag2021Proxy_R18", "L2", "ResNet-18"),
    ("Addepalli2021Towards_RN18", "Linf", "ResNet-18"),
]
MISSING = "Carmon2019Unlabeled"  # listed, its file never copied in
ATTACK = {"Linf": ("pgd_linf", 8 / 255), "L2": ("pgd_l2", 0.5)}
OPTS = ["dataset.n_test=4", "sweep.ranks=[1,4]", "rig.enabled=false",
        "trainer.enable_progress_bar=false"]  # fmt: skip


def _images(root) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 1), ("test", 1)):
        for c in CLASSES:
            folder = root / split / c
            folder.mkdir(parents=True)
            for j in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{j}.png")


def _zoo_yaml(path, entries, checkpoint) -> None:
    lines = [f"- {{name: {n}, dataset: cifar10, threat_model: {tm}}}" for n, tm in entries]
    lines.append(f"- {{name: mine, checkpoint: {checkpoint}, arch: preact_resnet18, "
                 "kind: robust, threat: {norm: linf, eps: 0.0314}}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    robustbench_compat()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    root = tmp_path_factory.mktemp("zoo")
    _images(root / "images")
    for name, tm, _ in ENTRIES:  # RobustBench's file layout: {"state_dict": ...} at its place
        torch.manual_seed(0)
        net = model_dicts[BenchmarkDataset("cifar10")][ThreatModel(tm)][name]["model"]()
        path = root / "models" / "cifar10" / tm / f"{name}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    mine = build_model("preact_resnet18", 10, (0.5,) * 3, (0.25,) * 3)
    (root / "weights").mkdir()
    torch.save(mine.net.state_dict(), root / "weights" / "mine.pt")
    listed = [(n, tm) for n, tm, _ in ENTRIES] + [(MISSING, "Linf")]
    _zoo_yaml(root / "zoo.yaml", listed, "weights/mine.pt")
    _zoo_yaml(root / "reordered.yaml", listed[::-1], "weights/mine.pt")
    return root


def _run_zoo(root, zoo_file, *extra):
    cmd = [sys.executable, "-m", "rankrobust.launch.zoo", "--zoo", str(zoo_file),
           "--models", str(root / "models"), "--out", str(root / "out"),
           "--data", str(root / "images"), *extra]  # fmt: skip
    env = child_env(RANKROBUST_CACHE=str(root / "cache"))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=root)


def _jobs(root) -> dict[str, dict]:
    found = {}
    for path in sorted((root / "out" / "runs").glob("*/metrics.json")):
        m = read_metrics(path.parent)
        found[m["zoo"]["name"]] = {**m, "_dir": path.parent, "_mtime": path.stat().st_mtime_ns}
    return found


def test_a_zoo_runs_every_entry_with_its_own_attack_and_a_rerun_recomputes_nothing(zoo):
    first = _run_zoo(zoo, zoo / "zoo.yaml", *OPTS)
    assert first.returncode == 1, first.stderr[-3000:]  # one entry failed: the sweep says so
    jobs = _jobs(zoo)
    assert set(jobs) == {n for n, _, _ in ENTRIES} | {MISSING, "mine"}
    for name, tm, arch in ENTRIES:
        m = jobs[name]
        validate_metrics(m)
        assert m["status"] == "ok" and m["_dir"].name.startswith(f"{name}_")
        assert (m["zoo"]["threat_model"], m["zoo"]["architecture"]) == (tm, arch)
        assert set(m["rank_sweep"]) == {"low", "high"} and set(m["rank_sweep"]["low"]) == {1, 4}
        assert m["n_test"] == 4 and (m["_dir"] / "per_image.npz").is_file()
        if name == "Standard":  # natural: no attack
            assert m["eval_attack"] is None and m["kind"] == "natural"
        else:  # its own threat model's attack, recorded
            attack, eps = ATTACK[tm]
            assert m["eval_attack"]["name"] == attack
            assert m["eval_attack"]["eps"] == pytest.approx(eps, abs=1e-6)
            assert m["zoo"]["threat"] == {"norm": tm.lower(), "eps": pytest.approx(eps, abs=1e-6)}
        assert m["zoo"]["autoattack_acc_reported"] is not None
    assert jobs["mine"]["status"] == "ok" and jobs["mine"]["zoo"]["source"] == "checkpoint"
    assert jobs["mine"]["eval_attack"]["eps"] == pytest.approx(0.0314)
    missing = jobs[MISSING]
    validate_metrics(missing)
    weights = zoo / "models" / "cifar10" / "Linf" / f"{MISSING}.pt"
    assert missing["status"] == "failed" and missing["zoo"]["weights"] == str(weights)
    assert (
        f"not at {weights}" in missing["error"] and "copy models/cifar10/Linf" in missing["error"]
    )
    assert "[zoo 1/7] Standard" in first.stdout and "[zoo 7/7] mine" in first.stdout
    assert "ZooProgress" not in first.stderr  # a Hydra callback with every hook
    # the test images' factorisation: computed once for the six models that ran
    assert len(list((zoo / "cache").glob("factors-*.npz"))) == 1

    # one job interrupted (SIGTERM) before it finished; the list reordered; resume=true
    wong = jobs["Wong2020Fast"]
    record = json.loads((wong["_dir"] / "metrics.json").read_text())
    (wong["_dir"] / "metrics.json").write_text(json.dumps({**record, "status": "interrupted"}))
    stopped = (wong["_dir"] / "metrics.json").stat().st_mtime_ns
    again = _run_zoo(zoo, zoo / "reordered.yaml", *OPTS[::-1], "resume=true")
    assert again.returncode == 1, again.stderr[-3000:]
    after = _jobs(zoo)
    assert set(after) == set(jobs)  # the same folders: nothing new
    for name in set(jobs) - {"Wong2020Fast", MISSING}:
        assert after[name]["_mtime"] == jobs[name]["_mtime"], name  # not recomputed
        assert (
            f"{name} " in again.stdout
            and f"finished before: skipped ({jobs[name]['_dir'].name})" in again.stdout
        )
    assert after["Wong2020Fast"]["status"] == "ok" and after["Wong2020Fast"]["_mtime"] != stopped
    assert "nothing to resume" not in again.stderr.replace("nothing to resume (no", "")


@pytest.mark.parametrize("name, threat_model", [("Rice2020Overfitting", "L2"),
                                                ("Sehwag2021Proxy_R18", "L2")])  # fmt: skip
def test_a_zoo_job_builds_the_network_robustbench_loads(zoo, name, threat_model):
    """The model a zoo job instantiates (its generated config's model) gives the logits of
    robustbench.load_model on the same file (model_dir: the test's files, no download)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from robustbench.utils import load_model

    from rankrobust.launch.zoo import entry_config
    from rankrobust.zoo import robustbench_entry

    entry = robustbench_entry(name, "cifar10", threat_model)
    model_cfg = OmegaConf.merge(
        OmegaConf.load(ROOT / "conf" / "model" / "robustbench.yaml"),
        entry_config(entry, zoo / "models")["model"],
        {"num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3},
    )
    ours = instantiate(model_cfg, _convert_="all").eval()
    theirs = load_model(name, model_dir=str(zoo / "models"), dataset="cifar10",
                        threat_model=threat_model).eval()  # fmt: skip
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
