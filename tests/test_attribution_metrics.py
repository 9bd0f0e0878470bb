"""Attribution metrics: DiffID on maps whose answer is known, Gini / entropy / MPRT against Quantus
itself (quantus==0.6.0, the `attribution` extra, also in `dev`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rankrobust.attribution import (
    complexity,
    diffid,
    insertion_deletion,
    randomisation_test,
    sparseness,
    vanilla_gradient,
)
from rankrobust.attribution.metrics import spearman
from rankrobust.models import small_cnn

quantus = pytest.importorskip("quantus")

SHAPE = (3, 8, 8)
D = int(np.prod(SHAPE))


class _Region(nn.Module):
    """Class 1 exactly when the mean of the first 10% of an image's elements exceeds 0.5."""

    def __init__(self):
        super().__init__()
        self.k = int(D * 0.1) + 1  # 20 of 192 elements: int(192 * 0.1) = 19 < 20 <= 19 + 1

    def forward(self, x):
        region = x.reshape(len(x), -1)[:, : self.k].mean(1)
        return torch.stack([torch.full_like(region, 0.5), region], dim=1)


def _region_image(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.zeros(n, D)
    x[:, : _Region().k] = 1.0
    return x.reshape(n, *SHAPE), torch.ones(n, dtype=torch.long)


def test_diffid_is_plus_one_for_the_true_map_and_minus_one_for_its_reverse():
    model, (x, y) = _Region(), _region_image()
    truth = torch.zeros(3, D)
    truth[:, : model.k] = 1.0
    truth = truth + 1e-3 * torch.rand(3, D)  # no ties: the order within each half is arbitrary
    truth = truth.reshape_as(x)
    assert torch.equal(diffid(model, x, truth, y), torch.ones(3))
    curves = insertion_deletion(model, x, truth, y)
    assert curves.ratios == pytest.approx([0.1 * i for i in range(1, 10)])
    assert torch.equal(curves.insertion, torch.ones(3, 9))  # the region is never replaced
    assert torch.equal(curves.deletion, torch.zeros(3, 9))  # removed from q = 0.1 on
    reverse = 1.0 / truth  # the region last
    assert torch.equal(diffid(model, x, reverse, y), -torch.ones(3))
    # signs do not matter (|attribution| is ranked); for the other label the roles swap
    assert torch.equal(diffid(model, x, -truth, y), torch.ones(3))
    assert torch.equal(diffid(model, x, truth, 0 * y), -torch.ones(3))


def test_insertion_deletion_match_a_per_image_loop(cifar_images, one_thread):
    images, _ = cifar_images
    x = images[:2]
    torch.manual_seed(0)
    model = small_cnn(10, width=8).eval()
    attr = vanilla_gradient(model, x)
    label = model(x).argmax(1)
    got = insertion_deletion(model, x, attr, label, ratios=(0.25, 0.5, 0.75))
    for n in range(2):
        flat, score = x[n].reshape(-1), attr[n].abs().reshape(-1)
        for qi, q in enumerate((0.25, 0.5, 0.75)):
            k = int(flat.numel() * q)
            for order, table in ((score.argsort(descending=True), got.deletion),
                                 (score.argsort(), got.insertion)):  # fmt: skip
                img = flat.clone()
                keep = torch.ones_like(img, dtype=torch.bool)
                keep[order[:k]] = False
                img[~keep] = flat[keep].mean()
                pred = model(img.reshape(1, *x.shape[1:])).argmax(1).item()
                assert table[n, qi].item() == float(pred == label[n].item())


def _maps(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(5, 3, 16, 16, generator=g)
    # spread from diffuse to concentrated, so the scores differ between images
    return base * torch.linspace(0.0, 6.0, 5).view(5, 1, 1, 1).exp().pow(
        torch.rand(5, 1, 16, 16, generator=g)
    )


def _quantus(metric, maps: torch.Tensor) -> np.ndarray:
    a = maps.abs().sum(1, keepdim=True).numpy()  # quantus's convention: one map per image
    x = np.zeros((len(a), 3, *a.shape[-2:]), dtype=np.float32)
    y = np.zeros(len(a), dtype=int)
    return np.asarray(metric(model=None, x_batch=x, y_batch=y, a_batch=a))


def test_sparseness_and_complexity_equal_quantus():
    maps = _maps(0)
    gini = sparseness(maps).numpy()
    entropy = complexity(maps).numpy()
    q_gini = _quantus(quantus.Sparseness(disable_warnings=True), maps)
    q_entropy = _quantus(quantus.Complexity(disable_warnings=True), maps)
    # a batch of one: equal to float32 rounding (quantus works in float32); a batch: quantus
    # normalises by the batch's one max, we per image
    for i in range(len(maps)):
        one = maps[i : i + 1]
        assert sparseness(one).item() == pytest.approx(
            _quantus(quantus.Sparseness(disable_warnings=True), one)[0], rel=1e-6, abs=1e-7
        )
        assert complexity(one).item() == pytest.approx(
            _quantus(quantus.Complexity(disable_warnings=True), one)[0], rel=1e-6, abs=1e-7
        )
    np.testing.assert_allclose(gini, q_gini, atol=2e-5)
    np.testing.assert_allclose(entropy, q_entropy, atol=1e-6)
    assert np.ptp(gini) > 0.1 and np.ptp(entropy) > 0.1  # the maps really differ
    # a one-hot map is as sparse and as simple as a map can be
    hot = torch.zeros(1, 3, 16, 16)
    hot[0, 1, 3, 4] = 2.0
    assert sparseness(hot).item() > 0.99 and complexity(hot).item() < 1e-6


def test_spearman_with_ties_equals_scipy():
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 5, (4, 50), generator=g).double()  # many ties
    b = a + torch.randint(0, 3, (4, 50), generator=g)
    ours = spearman(a, b).numpy()
    ref = [spearmanr(a[i], b[i]).statistic for i in range(4)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def _gradient_maps(model, inputs, targets, **kwargs):
    x = torch.as_tensor(inputs)
    return (
        vanilla_gradient(model, x, target=torch.as_tensor(targets))
        .abs()
        .sum(1, keepdim=True)
        .numpy()
    )


def test_randomisation_test_equals_quantus_mprt(cifar_images, one_thread):
    images, _ = cifar_images
    x = images[:4]
    torch.manual_seed(0)
    model = small_cnn(10, width=8).eval()
    y = model(x).argmax(1)
    ours = randomisation_test(
        model, x, lambda m, inp, t: vanilla_gradient(m, inp, target=t), y, seed=42
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref = quantus.MPRT(layer_order="top_down", seed=42, disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None,
        explain_func=_gradient_maps, device="cpu",
    )  # fmt: skip
    layers = [k for k in ref if k != "original"]
    assert ours.layers == layers
    np.testing.assert_allclose(
        ours.correlation.numpy(), np.array([ref[k] for k in layers]), atol=1e-6
    )
    # the model itself is untouched, and randomising every layer destroys the map's ranking
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert float(ours.last.abs().mean()) < float(ours.correlation[0].mean())
