"""The paper's ImageNet half: real 224px photos in wnid folders, checkpoints of every layout
researchers have (random weights, real key layouts), declared kinds and evaluation-only pairs.

References: each loaded model's logits are compared with the torchvision network the file was
written from (MadryLab: behind the file's own normaliser, as robustness' model does it).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torchvision
from helpers import make_cfg

from rankrobust import identity, results
from rankrobust.data import photos
from rankrobust.errors import ConfigError
from rankrobust.models import Normalize, build_model
from rankrobust.models.checkpoints import read_checkpoint
from rankrobust.pipeline import task
from rankrobust.reporting.collect import collect
from rankrobust.reporting.report import report

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the dataset's (ImageNet's)
MADRY_MEAN, MADRY_STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)  # a file's own, deliberately different
TABBY = "n02123045"  # ImageNet index 281
# cat photo -> tabby; the others to two other ImageNet classes (tench 0, king penguin 145)
TREE = {TABBY: ("chelsea", "coffee"), "n01440764": ("rocket",), "n02056570": ("astronaut",)}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return photos.center_crops(224, ("chelsea", "coffee", "rocket"))


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=1000).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics: a dropped buffer would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def _madrylab(state: dict) -> dict:
    """robustness' AttackerModel layout: module.model.*, module.attacker.model.* (the same
    network), module.normalizer.new_mean/new_std and module.attacker.normalize.* (3x1x1)."""
    mean = torch.tensor(MADRY_MEAN).view(3, 1, 1)
    std = torch.tensor(MADRY_STD).view(3, 1, 1)
    model = {f"module.model.{k}": v for k, v in state.items()}
    model |= {f"module.attacker.model.{k}": v.clone() for k, v in state.items()}
    model |= {"module.normalizer.new_mean": mean, "module.normalizer.new_std": std}
    model |= {"module.attacker.normalize.new_mean": mean, "module.attacker.normalize.new_std": std}
    return {"model": model, "epoch": 90, "optimizer": {"state": {}, "param_groups": []},
            "schedule": {"step_size": 30, "gamma": 0.1}}  # fmt: skip


def _layouts(net: torch.nn.Module) -> dict[str, tuple[object, str]]:
    """file contents -> the layout the loader must report."""
    state = net.state_dict()
    whole = build_model("torchvision", 1000, MEAN, STD, arch="resnet18")
    whole.net.load_state_dict(state)
    return {
        "torchvision": (state, "state_dict"),
        "dataparallel": ({f"module.{k}": v for k, v in state.items()}, "dataparallel"),
        "rankrobust": (
            {"state_dict": {f"model.{k}": v for k, v in whole.state_dict().items()}, "epoch": 3},
            "rankrobust",
        ),  # fmt: skip
        "lightning_net": (
            {"state_dict": {f"net.{k}": v for k, v in state.items()}, "global_step": 10},
            "lightning",
        ),  # fmt: skip
        "robustbench": ({"model_state_dict": state}, "wrapped"),
        "madrylab": (_madrylab(state), "madrylab"),
    }


def test_every_checkpoint_layout_loads_with_the_reference_logits(net, images, tmp_path):
    with torch.no_grad():
        ref = net(Normalize(MEAN, STD)(images))
        ref_madry = net(Normalize(MADRY_MEAN, MADRY_STD)(images))
    for name, (content, layout) in _layouts(net).items():
        path = tmp_path / f"{name}.pt"
        torch.save(content, path)
        assert read_checkpoint(path).layout == layout, name
        model = build_model("torchvision", 1000, MEAN, STD, arch="resnet18", checkpoint=str(path))
        with torch.no_grad():
            out = model.eval()(images)
        expected = ref_madry if name == "madrylab" else ref
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5, msg=name)
        assert model.checkpoint_layout == layout
        if name == "madrylab":  # the file's normaliser, said; the dataset's ignored
            assert model.normalization["mean"] == pytest.approx(MADRY_MEAN)
            assert "MadryLab" in model.normalization["source"]
        else:
            assert model.normalization["mean"] == pytest.approx(MEAN)


def test_loader_names_keys_it_cannot_place_and_never_skips_a_different_copy(net, tmp_path):
    state = net.state_dict()
    stray = {"state_dict": {**{f"model.{k}": v for k, v in state.items()},
                            "criterion.weight": torch.ones(3)}}  # fmt: skip
    torch.save(stray, tmp_path / "stray.ckpt")
    with pytest.raises(ConfigError, match=r"criterion\.weight.*not dropped"):
        read_checkpoint(tmp_path / "stray.ckpt")
    madry = _madrylab(state)
    madry["model"]["module.attacker.model.fc.bias"] += 1.0  # not a duplicate any more
    torch.save(madry, tmp_path / "madry.pt")
    with pytest.raises(ConfigError, match=r"attacker\.model\.fc\.bias differs"):
        read_checkpoint(tmp_path / "madry.pt")
    torch.save(state, tmp_path / "r18.pt")  # a resnet18 file into a resnet50: named keys
    with pytest.raises(ConfigError, match=r"plain state dict.*does not fit.*layer"):
        build_model("resnet50", 1000, MEAN, STD, checkpoint=str(tmp_path / "r18.pt"))


def test_any_torchvision_architecture_and_a_clear_unknown_name():
    model = build_model("torchvision", 10, MEAN, STD, arch="mobilenet_v3_small")
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)  # a CIFAR-10 head
    with pytest.raises(ConfigError, match="resnet18"):
        build_model("torchvision", 10, MEAN, STD, arch="resnet_18")


def _wnid_tree(root):
    """root/val/<wnid>/*.JPEG of real photos (Imagenette style: 3 of the 1000 classes)."""
    from PIL import Image

    crops = dict(zip(photos.SAMPLE_PHOTOS, photos.center_crops(256), strict=True))
    for wnid, names in TREE.items():
        (root / "val" / wnid).mkdir(parents=True)
        for name in names:
            pixels = (crops[name].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(pixels).save(root / "val" / wnid / f"{name}.JPEG", quality=95)
    return root


EVAL = [
    "experiment=imagenet_eval", "logger=none", "trainer=cpu", "trainer.enable_progress_bar=false",
    "dataset.num_workers=0", "dataset.eval_batch_size=4", "eval.n_robust=0",
    "analysis.perturbation_spectrum=false",
]  # fmt: skip


def test_constant_class_resnet50_scores_the_share_of_tabby_images(tmp_path):
    """A ResNet-50 whose last layer is zero with a bias for class 281 (tabby) answers 281 for
    every image: accuracy on the wnid subset = the share of n02123045 images, exactly."""
    net = torchvision.models.resnet50(num_classes=1000)
    torch.nn.init.zeros_(net.fc.weight)
    with torch.no_grad():
        net.fc.bias.zero_()[281] = 10.0
    torch.save(net.state_dict(), tmp_path / "const.pth")
    root = _wnid_tree(tmp_path / "imagenet")
    cfg = make_cfg(*EVAL, f"dataset.root={root}", "model=imagenet_natural_r50",
                   "model.pretrained=null", f"model.checkpoint={tmp_path / 'const.pth'}",
                   "sweep.enabled=false")  # fmt: skip
    metrics = task.run(cfg, tmp_path / "run")
    n = sum(len(v) for v in TREE.values())
    assert metrics["status"] == "ok" and metrics["n_test"] == n
    assert metrics["clean_acc"] == len(TREE[TABBY]) / n
    assert metrics["n_classes_evaluated"] == len(TREE)
    assert metrics["kind"] == "natural" and metrics["config"]["kind"] == "natural"
    line = results.model_line(metrics)
    assert "loaded weights (natural)" in line and "dataset.mean" in line


def test_an_evaluation_only_natural_robust_pair_gets_c1_c2_verdicts(net, tmp_path, caplog):
    """Two loaded resnet18s (a torchvision state dict declared natural, a MadryLab file
    declared robust at Linf 4/255) on the wnid photos: the report pairs them (C2 decided; C1
    names the 4 common images as too few for its paired interval). A large tabby
    bias gives both a clean accuracy above 0 (the share kept at rank k needs one)."""
    root = _wnid_tree(tmp_path / "imagenet")
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["fc.bias"][281] += 50.0
    torch.save(state, tmp_path / "natural.pth")
    torch.save(_madrylab(state), tmp_path / "imagenet_linf_4.pt")
    common = [*EVAL, f"dataset.root={root}", "model=torchvision", "model.arch=resnet18",
              "sweep.ranks=[1,8,224]", "sweep.n_images=4"]  # fmt: skip
    natural = make_cfg(*common, f"model.checkpoint={tmp_path / 'natural.pth'}",
                       "model.kind=natural")  # fmt: skip
    robust = make_cfg(*common, f"model.checkpoint={tmp_path / 'imagenet_linf_4.pt'}",
                      "model.kind=robust", "model.threat={norm: linf, eps: 0.0156863}")  # fmt: skip
    runs = tmp_path / "runs"
    with caplog.at_level("INFO", logger="rankrobust"):
        task.run(natural, runs / "natural")
    said = caplog.text  # progress: test batches and the sweep with an estimate
    assert "[rankrobust] test: 100%" in said and "left)" in said
    assert "rank_sweep: 24 forward passes, about" in said and "rank_sweep: done in" in said
    task.run(robust, runs / "robust")
    written = json.loads((runs / "robust" / "metrics.json").read_text())
    assert written["kind"] == "robust" and written["threat"]["norm"] == "linf"
    assert written["config"]["threat"] == "Linf 4/255"
    assert written["normalization"]["mean"] == pytest.approx(MADRY_MEAN)
    assert "loaded weights (robust, Linf 4/255)" in results.model_line(written)
    assert written["clean_acc"] == pytest.approx(0.5)
    _, verdicts = report(collect(runs), tmp_path / "figures")
    by_claim = {c.claim: c for c in verdicts}
    assert not by_claim["C2"].verdict.startswith("not testable")
    assert by_claim["C2"].comparisons
    # C1 pairs the two runs image by image: 4 photographs are fewer than a paired interval
    # needs, and that (not "missing runs") is the reason given, naming both runs
    c1 = by_claim["C1"].verdict
    assert c1.startswith("not testable (too few images: 4 common test images"), c1
    assert str(runs / "natural") in c1 and str(runs / "robust") in c1


def test_undeclared_loaded_weights_are_unknown_and_the_report_asks_to_label_them(tmp_path):
    cfg = {"train": False, "model": {"name": "small_cnn", "checkpoint": "x.pt"},
           "attack": {"name": "none", "train": None}}  # fmt: skip
    assert identity.model_kind(cfg).kind == "unknown"
    rb = {"train": False, "model": {"name": "robustbench", "name_rb": "Wong2020Fast",
                                    "rb_dataset": "cifar10", "threat_model": "Linf"}}  # fmt: skip
    kind = identity.model_kind(rb)
    assert kind.kind == "robust" and kind.threat_label == "Linf 8/255"
    rb["model"]["name_rb"] = "Standard"
    assert identity.model_kind(rb).kind == "natural"
    trained = {"train": True, "attack": {"name": "pgd_l2", "train": {"name": "pgd_l2", "eps": 0.5}}}
    assert identity.model_kind(trained).description == "adversarial training (L2 0.5)"


def _robustbench():
    """robustbench (the optional extra) importable offline through the compatibility aliases."""
    from rankrobust.models.external import robustbench_compat

    robustbench_compat()
    return pytest.importorskip("robustbench.model_zoo", reason="pip install '.[robustbench]'")


def test_robustbench_extra_imports_offline_and_loads_a_local_file(tmp_path):
    zoo = _robustbench()
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    entry = zoo.model_dicts[BenchmarkDataset("cifar10")][ThreatModel("Linf")]["Wong2020Fast"]
    torch.manual_seed(0)
    ref = entry["model"]().eval()
    path = tmp_path / "Wong2020Fast.pt"  # RobustBench's layout: {'state_dict': module.*}
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path)
    model = build_model("robustbench", 10, MEAN, STD, name_rb="Wong2020Fast", checkpoint=str(path))
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref(x), rtol=0, atol=1e-6)
    assert "inside the model" in model.normalization["source"]


def test_robustbench_wrong_cached_file_error_names_keys_and_gives_no_download_advice(tmp_path):
    _robustbench()
    cached = tmp_path / "cifar10" / "Linf" / "Wong2020Fast.pt"
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), cached)
    with pytest.raises(ConfigError) as err:
        build_model("robustbench", 10, MEAN, STD, name_rb="Wong2020Fast", model_dir=str(tmp_path))
    text = str(err.value)
    assert str(cached) in text and "does not fit" in text
    assert re.search(r"missing keys \[.*\] \(\d+ in all\)", text)  # a few of each, counted
    assert "shape mismatch at conv1.weight: checkpoint (64, 3, 7, 7)" in text
    assert "fetch" not in text and "network" not in text
