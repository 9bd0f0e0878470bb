"""Numbers that are wrong with exit 0: NaN / inf logits and bad labels are errors naming them
wherever logits become accuracy or labels become indices; attacks with a zero budget are no
attacks; robust accuracy above clean accuracy on the same images is flagged; an image-folder
tree's val/ split is not merged into test/."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rankrobust import attacks, evaluate
from rankrobust.attribution import (
    explain,
    insertion_deletion,
    integrated_gradients,
    rank_integrated_gradients,
    spectral_integrated_gradients,
    vanilla_gradient,
)
from rankrobust.inputs import check_finite_logits, check_labels

pytestmark = pytest.mark.usefixtures("one_thread")

N, CLASSES = 4, 3


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, CLASSES)
    ).eval()


class Poisoned(nn.Module):
    """A small classifier whose logits are `value` for the images in `rows` (all when None)."""

    def __init__(self, value: float, rows: list[int] | None = None):
        super().__init__()
        self.net, self.value, self.rows = _net(), value, rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        mask = torch.zeros(out.shape[0], 1, dtype=torch.bool)
        mask[slice(None) if self.rows is None else [r for r in self.rows if r < len(x)]] = True
        return torch.where(mask, torch.full_like(out, self.value), out)


X = torch.rand(N, 3, 8, 8, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1, 2, 0])
PGD = {"step_size": 2 / 255, "steps": 2}


# ---------------------------------------------------------------------------------------------
# NaN / inf logits: an error naming what was found and at how many images


def test_nan_logits_with_labels_zero_are_not_100_percent():
    with pytest.raises(ValueError, match=r"logits contain NaN at 4 of 4 images"):
        evaluate.accuracy(Poisoned(float("nan")), X, torch.zeros(N, dtype=torch.long))


@pytest.mark.parametrize(
    ("value", "found"), [(float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "-inf")]
)
def test_non_finite_logits_in_one_image_name_it(value, found):
    with pytest.raises(ValueError) as info:
        evaluate.accuracy(Poisoned(value, rows=[3]), X, Y, batch_size=N)
    message = str(info.value)
    assert message.startswith("model: logits contain " + found), message
    assert "at 1 of 4 images (first: image 3)" in message


SWEEPS = {
    "robust_accuracy": lambda m, y: evaluate.robust_accuracy(m, X, y, lambda m, x, y: x),
    "rank_sweep": lambda m, y: evaluate.rank_sweep(m, X, y, [2], modes=("low", "high")),
    "basis_sweep": lambda m, y: evaluate.basis_sweep(m, X, y, "fourier", [1]),
    "fourier_heat_map": lambda m, y: evaluate.fourier_heat_map(m, X, y, eps=0.5, size=1),
    "rank_heat_map": lambda m, y: evaluate.rank_heat_map(m, X, y, eps=0.5, ranks=[1]),
}


@pytest.mark.parametrize("name", SWEEPS)
def test_every_evaluation_refuses_nan_logits(name):
    with pytest.raises(ValueError, match="logits contain NaN"):
        SWEEPS[name](Poisoned(float("nan"), rows=[1]), Y)


@pytest.mark.parametrize("name", SWEEPS)
def test_every_evaluation_refuses_a_label_outside_the_classes(name):
    with pytest.raises(ValueError, match=r"^labels: .*\[0, 3\).* got 3 at 1 of 4"):
        SWEEPS[name](_net(), torch.tensor([0, 1, 3, 0]))


# ---------------------------------------------------------------------------------------------
# Labels: (labels, exception, text the message holds), for accuracy (which takes sequences)

BAD_LABELS = [
    ("label == num_classes", torch.tensor([0, 1, 3, 0]), ValueError, "got 3 at 1 of 4"),
    ("negative label", torch.tensor([0, -1, 2, 0]), ValueError, "got -1 at 1 of 4"),
    ("far out", [10, 10, 10, 10], ValueError, "got 10 at 4 of 4 images (first: image 0)"),
    ("fractional float", torch.tensor([0.0, 1.5, 2.0, 0.0]), ValueError, "1.5 at 1 of 4"),
    ("NaN label", torch.tensor([0.0, float("nan"), 2.0, 0.0]), ValueError, "nan at 1 of 4"),
    ("(N, 1)", Y[:, None], ValueError, "squeeze(1)"),
    ("one-hot", nn.functional.one_hot(Y, CLASSES), ValueError, "argmax(1)"),
    ("too few", Y[:3], ValueError, "expected shape (4,)"),
    ("bool", Y.bool(), TypeError, "bool"),
]


@pytest.mark.parametrize(
    ("labels", "exc", "text"), [b[1:] for b in BAD_LABELS], ids=[b[0] for b in BAD_LABELS]
)
def test_bad_labels_are_errors_naming_them(labels, exc, text):
    with pytest.raises(exc) as info:
        evaluate.accuracy(_net(), X, labels)
    assert str(info.value).startswith("labels"), str(info.value)
    assert text in str(info.value), str(info.value)


def test_whole_float_labels_count_as_their_class():
    model = _net()
    assert evaluate.accuracy(model, X, Y.float()) == evaluate.accuracy(model, X, Y)
    assert evaluate.accuracy(model, X, [0.0, 1.0, 2.0, 0.0]) == evaluate.accuracy(model, X, Y)
    assert check_labels(Y.int(), N, "y", CLASSES).dtype == torch.int64


def test_check_finite_logits_passes_finite_and_counts_rows():
    assert check_finite_logits(torch.zeros(2, 3)).shape == (2, 3)
    bad = torch.zeros(5, 3)
    bad[1, 0], bad[4, 2] = float("nan"), float("inf")
    with pytest.raises(ValueError, match=r"NaN / inf at 2 of 5 images \(first: image 1\)"):
        check_finite_logits(bad, "model")


# ---------------------------------------------------------------------------------------------
# Attacks: labels as indices and NaN logits, named (not torch's IndexError)

ATTACKS = {
    "pgd_linf": lambda m, y: attacks.pgd_linf(m, X, y, 8 / 255, **PGD),
    "pgd_l2": lambda m, y: attacks.pgd_l2(m, X, y, 0.5, **PGD),
    "fgsm_rs": lambda m, y: attacks.fgsm_rs(m, X, y, 8 / 255, 10 / 255),
    "autoattack": lambda m, y: attacks.autoattack(
        m, X, y, 8 / 255, version="custom", attacks_to_run=["apgd-ce"], n_iter=2
    ),
}


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize(
    ("labels", "text"),
    [
        (torch.tensor([0, 1, 10, 0]), "got 10 at 1 of 4"),
        (torch.tensor([0, 1, 3, 0]), "got 3 at 1 of 4"),
        (torch.tensor([-1, 1, 2, 0]), "got -1 at 1 of 4"),
        (torch.tensor([0.0, 0.5, 1.0, 2.0]), "0.5 at 1 of 4"),
    ],
    ids=["label 10", "label == classes", "negative", "fractional"],
)
def test_attacks_name_bad_labels(name, labels, text):
    if name == "autoattack":
        pytest.importorskip("pyautoattack")
    with pytest.raises(ValueError) as info:
        ATTACKS[name](_net(), labels)
    assert str(info.value).startswith("y: "), str(info.value)
    assert text in str(info.value)


@pytest.mark.parametrize("name", ATTACKS)
def test_attacks_name_nan_logits(name):
    if name == "autoattack":
        pytest.importorskip("pyautoattack")
    with pytest.raises(ValueError, match="^model: logits contain NaN at 1 of 4"):
        ATTACKS[name](Poisoned(float("nan"), rows=[2]), Y)


def test_attacks_take_whole_float_labels():
    torch.manual_seed(0)
    a = attacks.pgd_linf(_net(), X, Y.float(), 8 / 255, **PGD)
    torch.manual_seed(0)
    b = attacks.pgd_linf(_net(), X, Y, 8 / 255, **PGD)
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------
# Attribution targets


TARGETED = {
    "rig": lambda m, t: rank_integrated_gradients(m, X, target=t, steps_per_rank=1),
    "ig": lambda m, t: integrated_gradients(m, X, target=t, steps=2),
    "gradient": lambda m, t: vanilla_gradient(m, X, target=t),
    "sig": lambda m, t: spectral_integrated_gradients(m, X, target=t, n_steps=4),
    "explain gradient": lambda m, t: explain(m, X, "gradient", target=t),
    "insertion_deletion": lambda m, t: insertion_deletion(m, X, torch.rand_like(X), t),
}


@pytest.mark.parametrize("name", TARGETED)
@pytest.mark.parametrize(
    ("target", "text"),
    [(3, "got 3 at 4 of 4"), ([0, 1, 2, 5], "got 5 at 1 of 4"), ([0, -2, 1, 1], "got -2"),
     ([0.0, 1.5, 2.0, 0.0], "1.5 at 1 of 4")],
    ids=["int == classes", "one outside", "negative", "fractional"],
)  # fmt: skip
def test_attribution_targets_outside_the_classes_are_named(name, target, text):
    with pytest.raises(ValueError) as info:
        TARGETED[name](_net(), target)
    assert str(info.value).startswith("target"), str(info.value)
    assert text in str(info.value), str(info.value)


@pytest.mark.parametrize("name", ["rig", "ig", "gradient", "sig", "explain gradient"])
def test_attribution_of_the_top_label_refuses_nan_logits(name):
    with pytest.raises(ValueError, match="logits contain NaN"):
        TARGETED[name](Poisoned(float("nan"), rows=[0]), None)
