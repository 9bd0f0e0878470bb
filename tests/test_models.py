"""Tests for rankrobust.models: registry, normalisation inside the model, shapes, sizes."""

import pytest
import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.models import MODEL_NAMES, NORMALIZES_INSIDE, Normalize, build_model

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2471, 0.2435, 0.2616)

# Small variants so the forward passes take milliseconds on a CPU.
SMALL_KWARGS = {
    "small_cnn": {},
    "preact_resnet18": {},
    "wide_resnet": {"depth": 10, "widen_factor": 1},
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n not in NORMALIZES_INSIDE])
def test_every_registered_model_normalises_inside_and_gives_logits(name):
    """Each registered name builds a model whose first step is Normalize(mean, std) and that
    maps a batch of pixels to (N, num_classes) logits (8x8 inputs keep the big ones fast)."""
    torch.manual_seed(0)
    mean, std = (0.2, 0.4, 0.6), (0.5, 0.25, 0.125)
    model = build_model(name, 7, mean, std).eval()
    assert isinstance(model.normalize, Normalize)
    x = torch.rand(3, 3, 8, 8)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (3, 7) and torch.isfinite(out).all()
        torch.testing.assert_close(out, model.net((x - m) / s))


@pytest.mark.parametrize("name", sorted(SMALL_KWARGS))
def test_cifar_models_give_logits(name):
    torch.manual_seed(0)
    model = build_model(name, 10, CIFAR_MEAN, CIFAR_STD, **SMALL_KWARGS[name]).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        out_cl = model(x.to(memory_format=torch.channels_last))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out_cl, out, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(SMALL_KWARGS))
def test_cifar_models_other_input_sizes_and_train_step(name):
    model = build_model(name, 5, CIFAR_MEAN, CIFAR_STD, **SMALL_KWARGS[name])
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.rand(2, 3, 24, 20).to(memory_format=torch.channels_last)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 4]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_resnet50_small_imagenet_input():
    torch.manual_seed(0)
    model = build_model("resnet50", 7, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 7)


def test_parameter_counts_match_standard_architectures():
    # Built on the meta device: no memory, no init time.
    counts = {}
    with torch.device("meta"):
        for name, kwargs, n_cls in [
            ("small_cnn", {}, 10),
            ("preact_resnet18", {}, 10),
            ("wide_resnet", {"depth": 28, "widen_factor": 10}, 10),
            ("wide_resnet", {"depth": 34, "widen_factor": 10}, 10),
            ("wrn28_10", {}, 10),
            ("resnet50", {}, 1000),
        ]:
            model = build_model(name, n_cls, CIFAR_MEAN, CIFAR_STD, **kwargs)
            counts[(name, kwargs.get("depth"))] = sum(p.numel() for p in model.parameters())
    assert 50_000 < counts[("small_cnn", None)] < 150_000
    # PreActResNet-18 with the final BN (Wong et al. 2020 / Rice et al. 2020 version).
    assert counts[("preact_resnet18", None)] == 11_172_170
    assert counts[("wide_resnet", 28)] == 36_479_194  # WRN-28-10, as in RobustBench
    assert counts[("wide_resnet", 34)] == 46_160_474  # WRN-34-10 (TRADES, Madry-style)
    assert counts[("wrn28_10", None)] == counts[("wide_resnet", 28)]
    assert counts[("resnet50", None)] == 25_557_032  # torchvision ResNet-50


def test_normalisation_is_inside_the_model():
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, CIFAR_MEAN, CIFAR_STD).eval()
    assert isinstance(model.normalize, Normalize)
    x = torch.rand(4, 3, 32, 32)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net((x - mean) / std))
        torch.testing.assert_close(model.normalize(x), (x - mean) / std)
    # Buffers: saved with the model and moved with it, not trained.
    state = model.state_dict()
    assert "normalize.mean" in state and "normalize.std" in state
    assert all(not n.startswith("normalize.") for n, _ in model.named_parameters())


def test_channels_from_mean_length():
    model = build_model("small_cnn", 3, (0.5,), (0.5,)).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_unknown_model_name_lists_known_names():
    with pytest.raises(ConfigError) as info:
        build_model("vgg_nope", 10, CIFAR_MEAN, CIFAR_STD)
    for name in MODEL_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mean": (0.5, 0.5), "std": (0.5, 0.5, 0.5)},
        {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.0, 0.5)},
        {"num_classes": 0},
        {"bogus_option": 3},
    ],
)
def test_bad_model_config_raises_config_error(kwargs):
    args = {"name": "small_cnn", "num_classes": 10, "mean": CIFAR_MEAN, "std": CIFAR_STD}
    args.update(kwargs)
    with pytest.raises(ConfigError):
        build_model(**args)


def test_bad_wide_resnet_depth():
    with pytest.raises(ConfigError, match="depth"):
        build_model("wide_resnet", 10, CIFAR_MEAN, CIFAR_STD, depth=27)
