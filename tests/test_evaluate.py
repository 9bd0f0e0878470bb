"""Tests of rankrobust.evaluate with tiny models, synthetic data and real CIFAR-10 images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rankrobust.evaluate as evaluate_mod
from rankrobust.errors import ConfigError
from rankrobust.evaluate import accuracy, rank_sweep, robust_accuracy
from rankrobust.svd import factorize


def tiny_model(seed: int = 0, size: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(4 * size * size, 10),
    )


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(37, 3, 8, 8, generator=g), torch.randint(0, 10, (37,), generator=g)


class Oracle(nn.Module):
    """Predicts class 1 when the mean pixel is above 0.5 else class 0 (deterministic)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1) + 0 * self.dummy


def test_accuracy_matches_manual_and_restores_mode(data) -> None:
    x, y = data
    model = tiny_model()
    model.train()
    model[4].eval()  # mixed modes must come back exactly
    acc = accuracy(model, x, y, batch_size=10)
    assert model.training and model[1].training and not model[4].training
    model.eval()
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(expected)
    assert accuracy(model, x, y, batch_size=500) == pytest.approx(expected)
    assert accuracy(model, x, y.tolist(), batch_size=1) == pytest.approx(expected)


def test_accuracy_oracle() -> None:
    x = torch.cat([torch.full((3, 3, 4, 4), 0.9), torch.full((2, 3, 4, 4), 0.1)])
    y = torch.tensor([1, 1, 0, 0, 1])
    assert accuracy(Oracle(), x, y, batch_size=2) == pytest.approx(3 / 5)  # preds 1,1,1,0,0


def test_accuracy_validation(data) -> None:
    x, y = data
    with pytest.raises(ConfigError, match="labels"):
        accuracy(tiny_model(), x, y[:-1])
    with pytest.raises(ConfigError, match="batch_size"):
        accuracy(tiny_model(), x, y, batch_size=0)
    with pytest.raises(ConfigError, match="empty"):
        accuracy(tiny_model(), x[:0], y[:0])


def test_robust_accuracy_with_lambda_attacks() -> None:
    x = torch.cat([torch.full((3, 3, 4, 4), 0.9), torch.full((3, 3, 4, 4), 0.1)])
    y = torch.tensor([1, 1, 1, 0, 0, 0])
    model = Oracle()
    assert robust_accuracy(model, x, y, lambda m, xb, yb: xb, batch_size=4) == 1.0
    flip = lambda m, xb, yb: 1.0 - xb  # noqa: E731
    assert robust_accuracy(model, x, y, flip, batch_size=4) == 0.0
    seen: list[bool] = []

    def spy(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        seen.append(m.training)
        m.train()  # a careless attack; predictions must still be in eval mode
        return xb

    model.train()
    assert robust_accuracy(model, x, y, spy, batch_size=4) == 1.0
    assert seen == [False, False] and model.training


def test_robust_accuracy_attack_can_use_gradients() -> None:
    """FGSM against the oracle: a step of 0.5 moves every mean pixel across 0.5, 0.1 none."""
    x = torch.cat([torch.full((3, 3, 4, 4), 0.9), torch.full((3, 3, 4, 4), 0.1)])
    y = torch.tensor([1, 1, 1, 0, 0, 0])

    def fgsm(step: float):
        def attack(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            xb = xb.clone().requires_grad_(True)
            loss = nn.functional.cross_entropy(m(xb), yb)
            (grad,) = torch.autograd.grad(loss, xb)
            return (xb + step * grad.sign()).clamp(0, 1).detach()

        return attack

    assert accuracy(Oracle(), x, y) == 1.0
    assert robust_accuracy(Oracle(), x, y, fgsm(0.5), batch_size=4) == 0.0
    assert robust_accuracy(Oracle(), x, y, fgsm(0.1), batch_size=4) == 1.0


class Constant(nn.Module):
    """Always predicts class ``c`` (logits independent of the input)."""

    def __init__(self, c: int, num_classes: int = 10) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.nn.functional.one_hot(torch.tensor(c), num_classes) * 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1) + 0 * x.sum(dim=(1, 2, 3))[:, None]


def test_rank_sweep_of_a_constant_model_is_the_label_share(data) -> None:
    """A model predicting class c scores (# labels == c) / N at every rank, attacked or not."""
    x, y = data
    for c in (0, int(y[0])):
        share = (y == c).float().mean().item()
        out = rank_sweep(Constant(c), x, y, [1, 3, 8], batch_size=10, attack=lambda m, a, b: 1 - a)
        assert set(out) == {"low", "high", "low_robust", "high_robust"}
        assert all(v == pytest.approx(share) for d in out.values() for v in d.values())
        assert accuracy(Constant(c), x, y) == pytest.approx(share)


def test_rank_sweep_low_full_equals_clean_and_modes(data) -> None:
    x, y = data
    model = tiny_model()
    clean = accuracy(model, x, y)
    out = rank_sweep(model, x, y, ranks=[1, 2, 4, 8], batch_size=16)
    assert set(out) == {"low", "high"}
    assert list(out["low"]) == [1, 2, 4, 8] and list(out["high"]) == [1, 2, 4, 8]
    assert all(type(k) is int for k in out["low"])
    assert out["low"][8] == clean


def test_rank_sweep_matches_direct_transform(data) -> None:
    x, y = data
    model = tiny_model(seed=3)
    fac = factorize(x)
    out = rank_sweep(model, x, y, ranks=[2, 5], batch_size=10, clamp=False)
    model.eval()
    with torch.no_grad():  # by hand: accuracy() takes pixels in [0, 1] only, not residuals
        for k in (2, 5):
            low = (model(fac.low_rank(k)).argmax(1) == y).float().mean().item()
            high = (model(fac.high_rank(k)).argmax(1) == y).float().mean().item()
            assert out["low"][k] == pytest.approx(low)
            assert out["high"][k] == pytest.approx(high)
    only_high = rank_sweep(model, x, y, ranks=[2], modes=("high",), factorization=fac)
    assert set(only_high) == {"high"} and only_high["high"][2] == out["high"][2]


def test_rank_sweep_factorizes_once(data, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = data
    calls: list[tuple[int, ...]] = []
    real = evaluate_mod.factorize

    def counting(t: torch.Tensor, *args, **kwargs):
        calls.append(tuple(t.shape))
        return real(t, *args, **kwargs)

    monkeypatch.setattr(evaluate_mod, "factorize", counting)
    rank_sweep(tiny_model(), x, y, ranks=[1, 2, 3, 4, 5, 6, 7, 8], batch_size=16)
    assert len(calls) == 3  # ceil(37 / 16) chunks, independent of the number of ranks
    assert sum(s[0] for s in calls) == 37
    calls.clear()
    rank_sweep(tiny_model(), x, y, ranks=[1], batch_size=100)
    assert len(calls) == 1
    calls.clear()
    rank_sweep(tiny_model(), x, y, ranks=[1, 2], factorization=real(x))
    assert calls == []


def test_rank_sweep_with_attack(data) -> None:
    x, y = data
    model = tiny_model()
    out = rank_sweep(model, x, y, ranks=[1, 8], attack=lambda m, xb, yb: xb, batch_size=20)
    assert set(out) == {"low", "high", "low_robust", "high_robust"}
    assert out["low_robust"] == out["low"] and out["high_robust"] == out["high"]
    flip = rank_sweep(
        Oracle(),
        torch.full((4, 3, 8, 8), 0.9),
        torch.ones(4, dtype=torch.long),
        ranks=[8],
        modes=("low",),
        attack=lambda m, xb, yb: 1.0 - xb,
    )
    assert flip == {"low": {8: 1.0}, "low_robust": {8: 0.0}}


def test_rank_sweep_restores_mode(data) -> None:
    x, y = data
    model = tiny_model()
    model.train()
    rank_sweep(model, x, y, ranks=[3])
    assert model.training


@pytest.mark.parametrize("bad", [[0], [9], [2.5], [True], []])
def test_rank_sweep_bad_ranks(data, bad) -> None:
    x, y = data
    with pytest.raises(ConfigError, match=r"rank"):
        rank_sweep(tiny_model(), x, y, ranks=bad)


def test_rank_sweep_bad_modes_and_factorization(data) -> None:
    x, y = data
    with pytest.raises(ConfigError, match="modes"):
        rank_sweep(tiny_model(), x, y, ranks=[1], modes=("band",))
    with pytest.raises(ConfigError, match="factorization"):
        rank_sweep(tiny_model(), x, y, ranks=[1], factorization=factorize(x[:5]))


def test_rank_sweep_on_cifar(cifar_images) -> None:
    x, y = cifar_images
    model = tiny_model(seed=1, size=32)
    clean = accuracy(model, x, y, batch_size=16)
    out = rank_sweep(model, x, y, ranks=[1, 4, 32], batch_size=16)
    assert out["low"][32] == clean
    fac = factorize(x)
    assert out["low"][4] == pytest.approx(accuracy(model, fac.low_rank(4, clamp=True), y))
