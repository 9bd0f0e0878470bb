"""Weights are what the run says: a RobustBench file that does not fit its entry, a bare
LightningModule state dict, and which runs say "loaded weights".

RobustBench files are written here in its real cache layout
(<model_dir>/<dataset>/<threat_model>/<name>.pt, random weights, no network): RobustBench's own
load falls back to strict=False for every ImageNet entry and some CIFAR ones, so a wrong file
ran as a random network; every such file must now be refused, naming the keys.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from helpers import FAST, make_cfg, run_cli

from rankrobust import identity, results
from rankrobust.errors import ConfigError
from rankrobust.models import build_model
from rankrobust.models.checkpoints import LAYOUTS, load_weights, read_checkpoint
from rankrobust.pipeline import task
from rankrobust.pipeline.lightning_module import RobustClassifier

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

pytestmark = pytest.mark.usefixtures("one_thread")


def _zoo():
    """robustbench's model zoo (the optional extra), importable offline."""
    from rankrobust.models.external import robustbench_compat

    robustbench_compat()
    return pytest.importorskip("robustbench.model_zoo", reason="pip install '.[robustbench]'")


def _entry_net(name: str, dataset: str = "cifar10", threat: str = "Linf") -> torch.nn.Module:
    zoo = _zoo()
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    torch.manual_seed(0)
    net = zoo.model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat)][name]["model"]()
    for m in net.modules():  # non-default statistics: a buffer left at its default would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _cache_file(root, name: str, dataset: str = "cifar10", threat: str = "Linf"):
    path = root / dataset / threat / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _rb(name: str, root, dataset: str = "cifar10", **kwargs):
    classes = {"cifar10": 10, "imagenet": 1000}[dataset]
    return build_model("robustbench", classes, MEAN, STD, name_rb=name, rb_dataset=dataset,
                       model_dir=str(root), **kwargs).eval()  # fmt: skip


# --------------------------------------------------------------------------- CIFAR entries


@pytest.fixture(scope="module")
def wong():
    """Wong2020Fast (CIFAR-10 Linf): one RobustBench loads with strict=False ("mu", "sigma")."""
    return _entry_net("Wong2020Fast")


def _weights_without_constants(net) -> dict:
    return {k: v for k, v in net.state_dict().items() if k not in ("mu", "sigma")}


@pytest.mark.parametrize(
    "wrap",
    ["plain", "module", "state_dict+module", "state_dict+model", "with_constants"],
)
def test_robustbench_layouts_of_a_right_file_load_its_weights(wong, tmp_path, wrap):
    state = _weights_without_constants(wong)
    content = {
        "plain": state,
        "module": {f"module.{k}": v for k, v in state.items()},
        "state_dict+module": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
        "state_dict+model": {"state_dict": {f"model.{k}": v for k, v in state.items()}},
        "with_constants": wong.state_dict(),
    }[wrap]
    torch.save(content, _cache_file(tmp_path, "Wong2020Fast"))
    model = _rb("Wong2020Fast", tmp_path)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), wong(x), rtol=0, atol=1e-6)


def _misfit(wong, case: str) -> dict:
    state = _weights_without_constants(wong)
    if case == "missing":
        return {k: v for k, v in state.items() if not k.startswith("linear.")}
    if case == "extra":
        return {**state, "head.weight": torch.ones(4, 4), "head.bias": torch.ones(4)}
    if case == "shapes":
        return {**state, "linear.weight": torch.zeros(100, 512), "linear.bias": torch.zeros(100)}
    if case == "madrylab":  # another network's file under this name, in MadryLab's layout
        inner = {f"module.model.{k}": v for k, v in state.items()}
        return {"model": inner | {"module.normalizer.new_mean": torch.zeros(3, 1, 1),
                                  "module.normalizer.new_std": torch.ones(3, 1, 1)}}  # fmt: skip
    if case == "wrapped_model":  # {"model": state}: RobustBench would read no weight at all
        return {"model": state, "epoch": 3}
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("missing", [r"missing keys \['linear.weight', 'linear.bias'\] \(2 in all\)"]),
        ("extra", [r"unexpected keys \['head.weight', 'head.bias'\] \(2 in all\)"]),
        (
            "shapes",
            [
                r"shape mismatch at linear.weight: checkpoint \(100, 512\) vs model "
                r"\(10, 512\)",
                r"\(2 in all\)",
            ],
        ),  # fmt: skip
        (
            "madrylab",
            [
                r"missing keys \['conv1.weight'",
                r"unexpected keys",
                "MadryLab robustness checkpoint",
            ],
        ),  # fmt: skip
        ("wrapped_model", [r"missing keys \['conv1.weight'", r"unexpected keys \['model'"]),
    ],
)
def test_a_cifar_file_that_does_not_fit_its_entry_is_refused(wong, tmp_path, case, named):
    path = _cache_file(tmp_path, "Wong2020Fast")
    torch.save(_misfit(wong, case), path)
    with pytest.raises(ConfigError) as info:
        _rb("Wong2020Fast", tmp_path)
    text = str(info.value)
    assert str(path) in text and "does not fit RobustBench entry 'Wong2020Fast'" in text
    for pattern in named:
        assert re.search(pattern, text), (pattern, text)
    # the same file as model.checkpoint: the same rule, the file named as the key's value
    with pytest.raises(ConfigError, match=r"model\.checkpoint .*does not fit RobustBench"):
        _rb("Wong2020Fast", tmp_path / "empty", checkpoint=str(path))


def test_a_strictly_loaded_cifar_entry_is_refused_the_same_way(tmp_path):
    net = _entry_net("Carmon2019Unlabeled")  # RobustBench loads it strictly (not a known failure)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    torch.save({"state_dict": state}, _cache_file(tmp_path, "Carmon2019Unlabeled"))
    with pytest.raises(ConfigError, match=r"missing keys \['fc.weight', 'fc.bias'\] \(2 in all\)"):
        _rb("Carmon2019Unlabeled", tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_a_damaged_robustbench_file_is_named(wong, tmp_path, damage):
    path = _cache_file(tmp_path, "Wong2020Fast")
    torch.save(_weights_without_constants(wong), path)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    else:
        path.write_text("<html>Google Drive: quota exceeded</html>")
    with pytest.raises(ConfigError) as info:
        _rb("Wong2020Fast", tmp_path)
    text = str(info.value)
    assert str(path) in text and "damaged, truncated" in text
    assert "weights_only" not in text and "network" not in text


def test_model_checkpoint_must_name_a_file_robustbench_reads(tmp_path):
    _zoo()
    with pytest.raises(ConfigError, match="does not exist"):
        _rb("Wong2020Fast", tmp_path, checkpoint=str(tmp_path / "absent.pt"))
    torch.save({"w": torch.ones(1)}, tmp_path / "f.pt")
    with pytest.raises(ConfigError, match=r"ensemble of 3 networks"):
        _rb("Chen2020Adversarial", tmp_path, checkpoint=str(tmp_path / "f.pt"))
    with pytest.raises(ConfigError, match="reads torchvision's weights, never a file"):
        _rb("Standard_R50", tmp_path, dataset="imagenet", checkpoint=str(tmp_path / "f.pt"))


# --------------------------------------------------------------------------- ImageNet entries


@pytest.fixture(scope="module")
def salman():
    """Salman2020Do_R50: RobustBench's normalize_model(resnet50) (normalize.*, model.*)."""
    return _entry_net("Salman2020Do_R50", "imagenet")


def test_imagenet_entry_loads_robustbench_files_and_a_saved_whole_model(salman, tmp_path):
    inner = salman.model.state_dict()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = salman(x)
    files = {
        "published": {"state_dict": {f"module.{k}": v for k, v in inner.items()}},
        "whole_model": salman.state_dict(),  # torch.save(load_model(...).state_dict())
    }
    for name, content in files.items():
        torch.save(content, tmp_path / f"{name}.pt")
        model = _rb("Salman2020Do_R50", tmp_path / "cache", "imagenet",
                    checkpoint=str(tmp_path / f"{name}.pt"))  # fmt: skip
        with torch.no_grad():
            torch.testing.assert_close(model(x), ref, rtol=0, atol=1e-5, msg=name)


def test_imagenet_madrylab_file_under_a_robustbench_name_is_refused(salman, tmp_path):
    """The example of the issue: it ran as a random ResNet-50, 'ok', 'robust, Linf 4/255'."""
    inner = salman.model.state_dict()
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.ones(3, 1, 1)
    madry = {f"module.model.{k}": v for k, v in inner.items()}
    madry |= {f"module.attacker.model.{k}": v for k, v in inner.items()}
    madry |= {"module.normalizer.new_mean": mean, "module.normalizer.new_std": std}
    path = _cache_file(tmp_path, "Salman2020Do_R50", "imagenet")
    torch.save({"model": madry, "epoch": 90}, path)
    with pytest.raises(ConfigError) as info:
        _rb("Salman2020Do_R50", tmp_path, "imagenet")
    text = str(info.value)
    n_weights = len([k for k in inner if not k.endswith("num_batches_tracked")])
    assert str(path) in text and f"({n_weights} in all)" in text
    assert "missing keys ['model.conv1.weight'" in text and "unexpected keys" in text
    assert "model=imagenet_madrylab_r50" in text
    # a normaliser that differs from the entry's is not a copy to skip
    whole = salman.state_dict()
    whole["normalize.mean"] = whole["normalize.mean"] + 0.1
    torch.save(whole, path)
    with pytest.raises(ConfigError, match=r"unexpected keys \['model.normalize.mean'\]"):
        _rb("Salman2020Do_R50", tmp_path, "imagenet")


# --------------------------------------------------------------------------- through the CLI


RB_RUN = [*FAST, "model=robustbench", "model.name_rb=Wong2020Fast", "train=false",
          "dataset.image_size=32", "dataset.n_test=32", "eval.n_robust=8",
          "attack.eval.steps=1", "sweep.enabled=false"]  # fmt: skip


def test_cli_refuses_a_misfitting_robustbench_file_with_exit_2(wong, tmp_path):
    cache = tmp_path / "rb"
    torch.save(_misfit(wong, "extra"), _cache_file(cache, "Wong2020Fast"))
    result = run_cli(*RB_RUN, f"model.model_dir={cache}", "hydra.run.dir=bad", cwd=tmp_path,
                     timeout=300)  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "does not fit RobustBench entry 'Wong2020Fast'" in out
    assert "unexpected keys ['head.weight', 'head.bias'] (2 in all)" in out
    metrics = json.loads((tmp_path / "bad" / "metrics.json").read_text())
    assert metrics["status"] == "failed"


def test_library_run_of_a_fitting_robustbench_file_is_ok(wong, tmp_path):
    cache = tmp_path / "rb"
    torch.save({"state_dict": _weights_without_constants(wong)}, _cache_file(cache, "Wong2020Fast"))
    metrics = task.run(make_cfg(*RB_RUN, f"model.model_dir={cache}"), tmp_path / "run")
    assert metrics["status"] == "ok"


# --------------------------------------------------------------------------- LightningModule


def test_a_lightning_module_state_dict_loads_as_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, MEAN, STD).eval()
    module = RobustClassifier(model, num_classes=10)
    path = tmp_path / "module.pt"
    torch.save(module.state_dict(), path)
    ckpt = read_checkpoint(path)
    assert ckpt.layout == "module_state" and "module_state" in LAYOUTS
    loaded = load_weights(build_model("small_cnn", 10, MEAN, STD), path).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded.checkpoint_layout == "module_state"
    # a stray key beside the module's model.* is named, not dropped
    torch.save({**module.state_dict(), "model.head.weight": torch.ones(2)}, path)
    with pytest.raises(ConfigError, match=r"unexpected keys \['head.weight'\]"):
        load_weights(build_model("small_cnn", 10, MEAN, STD), path)


def test_lightning_module_state_dict_through_the_cli(tmp_path):
    torch.manual_seed(0)
    module = RobustClassifier(build_model("small_cnn", 10, MEAN, STD), num_classes=10)
    torch.save(module.state_dict(), tmp_path / "module.pt")
    cfg = make_cfg(*FAST, "train=false", f"model.checkpoint={tmp_path / 'module.pt'}",
                   "dataset.n_test=32", "eval.n_robust=8", "attack.eval.steps=1",
                   "sweep.enabled=false")  # fmt: skip
    assert task.run(cfg, tmp_path / "run")["status"] == "ok"


# --------------------------------------------------------------------------- closing lines


def _model_line(output: str) -> str:
    return next(ln for ln in output.splitlines() if ln.strip().startswith("model: "))


def test_closing_line_says_loaded_weights_only_for_weights_from_a_file(tmp_path):
    quick = [*FAST, "trainer.max_epochs=1", "dataset.n_train=200", "dataset.n_test=64",
             "eval.n_robust=8", "attack.eval.steps=1", "sweep.enabled=false"]  # fmt: skip
    trained = run_cli(*quick, "hydra.run.dir=trained", cwd=tmp_path, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    line = _model_line(trained.stdout + trained.stderr)
    assert "loaded weights" not in line and "natural training" in line, line

    ckpt = tmp_path / "trained" / "checkpoints" / "last.ckpt"
    evaluated = run_cli(*quick, "train=false", f"model.checkpoint={ckpt}", "model.kind=natural",
                        "hydra.run.dir=eval", cwd=tmp_path, timeout=300)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "loaded weights (natural)" in _model_line(evaluated.stdout + evaluated.stderr)


@pytest.mark.parametrize(
    ("cfg", "said"),
    [
        ({"train": True, "attack": {"name": "pgd_linf", "train": {"name": "pgd_linf",
          "eps": 8 / 255}}, "model": {"name": "small_cnn"}},
         "adversarial training (Linf 8/255)"),
        ({"train": True, "attack": {"name": "none", "train": None},
          "model": {"name": "resnet50", "pretrained": "imagenet"}},
         "natural training, from loaded weights"),
        ({"train": False, "model": {"name": "small_cnn", "checkpoint": "random"}},
         "random weights (model.checkpoint=random)"),
        ({"train": False, "model": {"name": "small_cnn", "checkpoint": "x.pt", "kind": "robust",
          "threat": {"norm": "l2", "eps": 3.0}}}, "loaded weights (robust, L2 3)"),
    ],
)  # fmt: skip
def test_the_model_line_says_where_the_weights_came_from(cfg, said):
    metrics = results.base_record(cfg, "run", None, "run.py")
    assert results.model_line(metrics).split(", ", 1)[1] == said
    assert identity.model_kind(cfg).description == said
    older = {**metrics, "config": {k: v for k, v in metrics["config"].items()
                                   if k not in ("train", "weights")}}  # fmt: skip
    assert results.model_line(older).split(", ", 1)[1] == said  # from resolved_config
