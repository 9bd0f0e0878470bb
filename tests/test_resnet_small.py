"""resnet_small (the demo's CPU-efficient net) and its patch-whitening first layer: the
whitening makes the patch covariance the identity, is fitted on the
first training batch and kept by a checkpoint, and channels_last gives the same logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rankrobust.models import PatchWhitening, build_model
from rankrobust.models.checkpoints import load_weights

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
pytestmark = pytest.mark.usefixtures("one_thread")


def _smooth_images(n: int = 32, seed: int = 0) -> torch.Tensor:
    """Correlated pixels (neighbours and channels alike), as in photographs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 34, 34, generator=g)
    x = F.avg_pool2d(x, 3, stride=1)  # spatially correlated
    colour = torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    return (x * colour + 0.05 * torch.rand(n, 3, 32, 32, generator=g)).clamp(0, 1)


def test_whitening_makes_the_patch_covariance_the_identity():
    """Independent reference: numpy's covariance of the layer's outputs on the fitted data; the
    positive half of the filters gives covariance l / (l + eps) ~ I on the patch space."""
    x = _smooth_images()
    layer = PatchWhitening(3, patch=2, eps=1e-8)
    layer.fit(x)
    with torch.no_grad():
        out = F.conv2d(x.double(), layer.weight[:12].double())
    z = out.permute(0, 2, 3, 1).reshape(-1, 12).numpy()
    np.testing.assert_allclose(z.T @ z / len(z), np.eye(12), atol=1e-4)
    # the largest-variance direction (overall brightness) gets the smallest gain
    gains = layer.weight[:12].flatten(1).norm(dim=1)
    assert gains[0] == gains.min() and gains[0] < gains[-1] / 10


def test_the_first_training_batch_fits_it_and_a_checkpoint_keeps_it(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet_small", 10, MEAN, STD, width=8, whiten=True)
    stem = model.net.stem[0]
    x = _smooth_images(16)
    model.eval()
    model(x)
    assert not bool(stem.fitted) and stem.weight.abs().sum() == 0  # eval never fits
    model.train()
    model(x)
    fitted = stem.weight.clone()
    assert bool(stem.fitted) and fitted.abs().sum() > 0
    model(_smooth_images(16, seed=1))
    torch.testing.assert_close(stem.weight, fitted)  # fitted once, then fixed
    torch.save(model.state_dict(), tmp_path / "w.pt")
    other = build_model("resnet_small", 10, MEAN, STD, width=8, whiten=True)
    load_weights(other, tmp_path / "w.pt")
    model.eval(), other.eval()
    with torch.no_grad():
        torch.testing.assert_close(other(x), model(x))
    assert bool(other.net.stem[0].fitted)


@pytest.mark.parametrize("whiten", [False, True])
def test_resnet_small_gives_the_same_logits_in_channels_last(whiten):
    torch.manual_seed(0)
    model = build_model("resnet_small", 10, MEAN, STD, width=8, whiten=whiten)
    x = _smooth_images(8)
    model.train()(x)  # fit the whitening (and move the BN statistics)
    model.eval()
    with torch.no_grad():
        ref = model(x)
        model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (8, 10)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
