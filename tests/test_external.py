"""External models (torchvision weights, RobustBench), AutoAttack evaluation and ImageNet configs.

Nothing here touches the network: the torch hub cache lives in a temporary $TORCH_HOME, the
download function and the robustbench package are replaced with stand-ins.
"""

from __future__ import annotations

import json
import sys
import types
import urllib.error

import numpy as np
import pytest
import torch
from helpers import FAST, make_cfg
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.models import build_model
from rankrobust.models.checkpoints import load_weights
from rankrobust.models.external import torchvision_cache_file
from rankrobust.pipeline import build, checks, task
from rankrobust.svd import low_rank

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and a download function that fails as it does offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


# --------------------------------------------------------------------------- torchvision


def test_missing_torchvision_weights_name_the_file_and_where_to_put_it(offline_hub):
    with pytest.raises(ConfigError) as info:
        build_model("resnet50", 1000, IMAGENET_MEAN, IMAGENET_STD, pretrained="imagenet")
    message = str(info.value)
    assert "resnet50-0676ba61.pth" in message  # IMAGENET1K_V1's file
    assert str(offline_hub / "resnet50-0676ba61.pth") in message
    assert "URLError" in message and "model.checkpoint" in message


def test_torchvision_weights_load_from_the_cache_and_as_a_checkpoint(offline_hub):
    reference = build_model("resnet50", 1000, IMAGENET_MEAN, IMAGENET_STD).net
    path = torchvision_cache_file("resnet50", "imagenet")
    assert path.parent == offline_hub
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)  # a torchvision-format state dict

    model = build_model("resnet50", 1000, IMAGENET_MEAN, IMAGENET_STD, pretrained="imagenet")
    assert isinstance(model.normalize, nn.Module) and model.normalize.mean.shape[1] == 3
    torch.testing.assert_close(model.net.fc.weight, reference.fc.weight)
    # the same file as model.checkpoint: a bare network's state dict, no Normalize keys
    other = load_weights(build_model("resnet50", 1000, IMAGENET_MEAN, IMAGENET_STD), path)
    torch.testing.assert_close(other.net.conv1.weight, reference.conv1.weight)


def test_pretrained_imagenet_weights_need_1000_classes():
    with pytest.raises(ConfigError, match="1000 ImageNet classes"):
        build_model("resnet50", 10, IMAGENET_MEAN, IMAGENET_STD, pretrained="imagenet")
    with pytest.raises(ConfigError, match="not a torchvision weight set"):
        build_model("resnet50", 1000, IMAGENET_MEAN, IMAGENET_STD, pretrained="imagenet22k")


# --------------------------------------------------------------------------- RobustBench


def _fake_robustbench(monkeypatch, load_model):
    package = types.ModuleType("robustbench")
    utils = types.ModuleType("robustbench.utils")
    utils.load_model = load_model
    package.utils = utils
    monkeypatch.setitem(sys.modules, "robustbench", package)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)


def test_robustbench_missing_extra_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "robustbench", None)  # import robustbench -> ImportError
    monkeypatch.setitem(sys.modules, "robustbench.utils", None)
    with pytest.raises(ConfigError, match=r"pip install '\.\[robustbench\]'"):
        build_model("robustbench", 10, (0.5,) * 3, (0.25,) * 3, name_rb="Carmon2019Unlabeled")


def test_robustbench_fetch_failure_says_where_the_cache_is(monkeypatch, tmp_path):
    def offline(**kwargs):
        raise ConnectionError("Failed to resolve 'drive.google.com'")

    _fake_robustbench(monkeypatch, offline)
    with pytest.raises(ConfigError) as info:
        build_model(
            "robustbench", 10, (0.5,) * 3, (0.25,) * 3,
            name_rb="Carmon2019Unlabeled", model_dir=str(tmp_path / "rb"),
        )  # fmt: skip
    message = str(info.value)
    assert str(tmp_path / "rb" / "cifar10" / "Linf" / "Carmon2019Unlabeled.pt") in message
    assert "ConnectionError" in message


def test_robustbench_unknown_name_and_class_count(monkeypatch):
    def unknown(**kwargs):
        raise KeyError(kwargs["model_name"])

    _fake_robustbench(monkeypatch, unknown)
    with pytest.raises(ConfigError, match="RobustBench has no model 'Nope2099'"):
        build_model("robustbench", 10, (0.5,) * 3, (0.25,) * 3, name_rb="Nope2099")
    with pytest.raises(ConfigError, match="imagenet models have 1000 classes"):
        build_model("robustbench", 10, (0.5,) * 3, (0.25,) * 3, rb_dataset="imagenet")


def test_robustbench_models_are_not_wrapped_in_normalize(monkeypatch):
    net = build_model("small_cnn", 10, (0.5,) * 3, (0.25,) * 3).net.eval()
    calls = []

    def load_model(**kwargs):
        calls.append(kwargs)
        return net

    _fake_robustbench(monkeypatch, load_model)
    model = build_model("robustbench", 10, (0.5,) * 3, (0.25,) * 3, name_rb="Standard").eval()
    assert isinstance(model.normalize, nn.Identity) and model.net is net
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))  # [0, 1] pixels straight into the model
    assert calls[0]["model_name"] == "Standard" and calls[0]["dataset"] == "cifar10"


def test_robustbench_model_evaluates_through_the_pipeline(monkeypatch, tmp_path):
    net = build_model("small_cnn", 10, (0.5,) * 3, (0.25,) * 3).net
    _fake_robustbench(monkeypatch, lambda **kwargs: net)
    cfg = make_cfg(
        *FAST, "model=robustbench", "train=false", "dataset.image_size=16",
        "dataset.n_test=64", "eval.n_robust=8", "attack.eval.steps=2", "sweep.ranks=[1,16]",
    )  # fmt: skip
    metrics = task.run(cfg, tmp_path)
    assert metrics["status"] == "ok"
    assert metrics["config"]["weights"] == "robustbench:cifar10/Linf/Standard"
    assert {str(k) for k in metrics["rank_sweep"]["low"]} == {"1", "16"}


# --------------------------------------------------------------------------- AutoAttack


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory, one_thread):
    """A small CNN trained for a few seconds on the synthetic data (its last.ckpt)."""
    run_dir = tmp_path_factory.mktemp("aa_train")
    cfg = make_cfg(
        *FAST, "dataset.image_size=16", "dataset.n_train=800", "dataset.batch_size=50",
        "trainer.max_epochs=3", "eval.n_robust=0", "sweep.enabled=false",
    )  # fmt: skip
    task.run(cfg, run_dir)
    return run_dir / "checkpoints" / "last.ckpt"


FAST_AA = [
    "attack=autoattack",
    "attack.eval.version=custom",
    "attack.eval.attacks_to_run=[apgd-ce]",
    "attack.eval.n_iter=5",
    "attack.eval.n_restarts=1",
    "train=false",
    "dataset.image_size=16",
    "sweep.enabled=false",
]


def test_autoattack_through_the_pipeline_never_beats_clean_accuracy(small_checkpoint, tmp_path):
    cfg = make_cfg(
        *FAST, *FAST_AA, f"model.checkpoint={small_checkpoint}",
        "dataset.n_test=48", "dataset.eval_batch_size=16", "eval.n_robust=48",
    )  # fmt: skip
    metrics = task.run(cfg, tmp_path)
    assert metrics["status"] == "ok" and metrics["clean_acc"] > 0.2
    assert metrics["robust_acc"] is not None
    assert metrics["robust_acc"] <= metrics["clean_acc"] + 1e-6  # every test image attacked
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["eval_attack"]["name"] == "autoattack"
    assert written["eval_attack"]["norm"] == "Linf"
    assert written["eval_attack"]["attacks_to_run"] == ["apgd-ce"]


def test_autoattack_n_examples_caps_the_attacked_images_across_batches(small_checkpoint, tmp_path):
    cfg = make_cfg(
        *FAST, *FAST_AA, f"model.checkpoint={small_checkpoint}", "attack.eval.norm=L2",
        "attack.eval.eps=0.5", "attack.eval.n_examples=20", "dataset.n_test=48",
        "dataset.eval_batch_size=16", "eval.n_robust=1000",
    )  # fmt: skip
    assert checks.check_config(cfg).eval_budget == 20
    metrics = task.run(cfg, tmp_path)
    assert metrics["n_robust"] == 20 and metrics["eval_attack"]["norm"] == "L2"
    correct = metrics["robust_acc"] * 20  # 16 + 4 images attacked over two test batches
    assert abs(correct - round(correct)) < 1e-4


def test_autoattack_is_not_a_training_attack():
    with pytest.raises(ConfigError, match="evaluation only"):
        checks.check_config(make_cfg(*FAST, "attack=pgd_linf", "attack.train.name=autoattack"))


# --------------------------------------------------------------------------- ImageNet


def _imagenet_tree(root, classes=("n001", "n002", "n003"), per_class=4, seed=0):
    """root/val/<class>/*.JPEG: random JPEGs of assorted sizes (resized and cropped on load)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in classes:
        (root / "val" / c).mkdir(parents=True)
        for i in range(per_class):
            h, w = rng.integers(36, 60, size=2)
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "val" / c / f"img{i}.JPEG", quality=90)
    return root


IMAGENET_TINY = [
    "experiment=imagenet_eval",
    "logger=none",
    "trainer=cpu",
    "trainer.enable_progress_bar=false",
    "model=small_cnn",
    "dataset.image_size=32",
    "dataset.num_classes=3",
    "dataset.num_workers=0",
    "dataset.eval_batch_size=5",
    "sweep.ranks=[1,2,4,32]",
    "model.checkpoint=random",
]


def test_imagenet_config_composes():
    cfg = make_cfg("experiment=imagenet_eval", "dataset.root=/data/imagenet")
    assert cfg.train is False and cfg.dataset.in_memory is False
    assert cfg.dataset.num_classes == 1000 and cfg.dataset.image_size == 224
    assert list(cfg.dataset.mean) == list(IMAGENET_MEAN)
    assert cfg.model.name == "resnet50" and cfg.model.pretrained == "imagenet"
    assert max(cfg.sweep.ranks) == 224 and cfg.sweep.n_images
    robust = make_cfg("experiment=imagenet_eval", "model=imagenet_robust_r50")
    assert robust.model.name == "robustbench" and robust.model.rb_dataset == "imagenet"
    assert robust.name == "imagenet-Salman2020Do_R50-none-eval"
    cifar = make_cfg("experiment=cifar10_pretrained_eval")
    assert cifar.train is False and list(cifar.sweep.ranks) == list(range(1, 33))
    assert cifar.model.name == "robustbench"


def test_imagenet_without_root_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("IMAGENET_ROOT", raising=False)
    with pytest.raises(ConfigError, match="needs dataset.root"):
        task.run(make_cfg(*IMAGENET_TINY), tmp_path)


def test_imagenet_eval_runs_on_a_tiny_val_tree(tmp_path):
    """A model that always predicts class n003, on 4 + 3 + 2 images: every accuracy is 2/9.

    Its last layer is zero with a bias for class 2, so its logits do not depend on the input:
    no attack and no rank transform can change a prediction.
    """
    root = _imagenet_tree(tmp_path / "imagenet")
    for path in [*sorted((root / "val" / "n002").iterdir())[:1],
                 *sorted((root / "val" / "n003").iterdir())[:2]]:  # fmt: skip
        path.unlink()
    model = build_model("small_cnn", 3, IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        model.net.fc.weight.zero_()
        model.net.fc.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))
    torch.save(model.net.state_dict(), tmp_path / "class2.pt")
    cfg = make_cfg(
        *IMAGENET_TINY, f"dataset.root={root}", "eval.n_robust=9", "attack.eval.steps=2",
        "sweep.ranks=[1,4,32]", "sweep.n_images=9", f"model.checkpoint={tmp_path / 'class2.pt'}",
    )  # fmt: skip
    metrics = task.run(cfg, tmp_path / "run")
    assert metrics["status"] == "ok" and "fit" not in metrics["timings"]
    assert metrics["clean_acc"] == pytest.approx(2 / 9)
    assert metrics["robust_acc"] == pytest.approx(2 / 9)
    sweep = metrics["rank_sweep"]
    assert {str(k) for k in sweep["low"]} == {"1", "4", "32"}
    assert all(v == pytest.approx(2 / 9) for mode in ("low", "high") for v in sweep[mode].values())


def test_imagenet_stream_applies_the_rank_transform_to_test_batches(tmp_path):
    root = _imagenet_tree(tmp_path / "imagenet")
    cfg = make_cfg(*IMAGENET_TINY, f"dataset.root={root}", "rank=2", "dataset.n_test=9")
    dm = build.datamodule(checks.check_config(cfg))
    dm.setup("test")
    assert dm.full_rank == 32 and len(dm.test_set.classes) == 3
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (5, 3, 32, 32) and len(dm.test_dataloader().dataset) == 9
    out, _ = dm.on_after_batch_transfer((x, y), 0)  # no trainer: the test split
    torch.testing.assert_close(out, low_rank(x, 2, clamp=True))
    raw, labels = dm.test_tensors(raw=True, n=6)
    ranked, labels2 = dm.test_tensors(raw=False, n=6)
    assert raw.shape == (6, 3, 32, 32) and torch.equal(labels, labels2)
    torch.testing.assert_close(ranked, low_rank(raw, 2, clamp=True))
    assert len(set(labels.tolist())) > 1  # a random subset, not the first class's images


def test_imagenet_non_wnid_folders_with_a_1000_class_model_are_clear(tmp_path):
    root = _imagenet_tree(tmp_path / "imagenet")  # folders n001, n002, n003: not WordNet ids
    cfg = make_cfg(*IMAGENET_TINY, f"dataset.root={root}", "dataset.num_classes=1000")
    dm = build.datamodule(checks.check_config(cfg))
    with pytest.raises(ConfigError, match=r"'n001' is not a WordNet id.*num_classes=1000"):
        dm.setup("test")
    cfg = make_cfg(*IMAGENET_TINY, f"dataset.root={root}", "dataset.num_classes=5")
    with pytest.raises(ConfigError, match=r"has 3 classes \(n001, n002, n003\).*num_classes=5"):
        build.datamodule(checks.check_config(cfg)).setup("test")


def test_imagenet_natural_model_without_cached_weights_fails_clearly(offline_hub, tmp_path):
    root = _imagenet_tree(tmp_path / "imagenet")
    cfg = make_cfg(
        "experiment=imagenet_eval", "logger=none", "trainer=cpu", f"dataset.root={root}",
        "dataset.num_classes=3",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="1000 ImageNet classes"):
        task.run(cfg, tmp_path / "a")
    cfg = make_cfg("experiment=imagenet_eval", "logger=none", "trainer=cpu", f"dataset.root={root}")
    with pytest.raises(ConfigError, match="resnet50-0676ba61.pth"):
        task.run(cfg, tmp_path / "b")
