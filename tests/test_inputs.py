"""Bad images handed to the public API raise TypeError / ValueError naming the argument."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from rankrobust import attribution as attr
from rankrobust import evaluate, svd
from rankrobust.inputs import UNIT_RANGE_TOL, check_images
from rankrobust.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()  # fmt: skip


def _images(n: int = 4, hw: int = 8) -> torch.Tensor:
    return torch.rand(n, 3, hw, hw, generator=torch.Generator().manual_seed(0))


def _with(value: float) -> torch.Tensor:
    x = _images()
    x[1, 2, 3, 4] = value
    return x


UINT8 = (_images() * 255).to(torch.uint8)
LABELS = torch.tensor([0, 1, 2, 0])
SMALL_CNN = build_model("small_cnn", 3, (0.5,) * 3, (0.25,) * 3, width=4).eval()

# (id, call, exception type, the argument the message must start with)
CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    ("svd.low_rank uint8", lambda: svd.low_rank(UINT8, 2), TypeError, "x"),
    ("svd.factorize numpy", lambda: svd.factorize(np.zeros((4, 4))), TypeError, "x"),
    ("svd.factorize bool", lambda: svd.factorize(torch.ones(4, 4).bool()), TypeError, "x"),
    ("svd.factorize 1-D", lambda: svd.factorize(torch.rand(5)), ValueError, "x"),
    ("svd.high_rank NaN", lambda: svd.high_rank(_with(float("nan")), 2), ValueError, "x"),
    ("rank_sweep uint8", lambda: evaluate.rank_sweep(_model(), UINT8, LABELS, [1]), TypeError,
     "images"),
    ("rank_sweep 3-D", lambda: evaluate.rank_sweep(_model(), _images()[0], LABELS[:3], [1]),
     ValueError, "images"),
    ("rank_sweep 0-255 floats", lambda: evaluate.rank_sweep(_model(), _images() * 255, LABELS,
     [1]), ValueError, "images"),
    ("accuracy NaN", lambda: evaluate.accuracy(_model(), _with(float("nan")), LABELS), ValueError,
     "images"),
    ("accuracy list", lambda: evaluate.accuracy(_model(), _images().tolist(), LABELS), TypeError,
     "images"),
    ("accuracy empty", lambda: evaluate.accuracy(_model(), _images()[:0], LABELS[:0]), ValueError,
     "images"),
    ("accuracy 1x1 into small_cnn", lambda: evaluate.accuracy(SMALL_CNN, _images(hw=1), LABELS),
     ValueError, "images"),
    ("robust_accuracy normalised", lambda: evaluate.robust_accuracy(_model(), _images() - 0.5,
     LABELS, lambda m, x, y: x), ValueError, "images"),
    ("rig uint8", lambda: attr.rank_integrated_gradients(_model(), UINT8), TypeError, "x"),
    ("ig inf", lambda: attr.integrated_gradients(_model(), _with(float("inf"))), ValueError, "x"),
    ("vanilla 3-D", lambda: attr.vanilla_gradient(_model(), _images()[0]), ValueError, "x"),
    ("path_integral NaN baseline", lambda: attr.path_integral(_model(), [_with(float("nan")),
     _images()]), ValueError, "path point 0"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "exc", "name"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_api_input_raises_naming_the_argument(
    call: Callable[[], object], exc: type[Exception], name: str
) -> None:
    with pytest.raises(exc) as info:
        call()
    assert str(info.value).startswith(name), str(info.value)


def test_uint8_message_says_what_to_do() -> None:
    with pytest.raises(TypeError, match=r"in \[0, 1\].*got uint8: divide by 255"):
        check_images(UINT8)


def test_good_images_pass_unchanged() -> None:
    x = _images()
    assert check_images(x) is x
    edge = x.clone()
    edge[0, 0, 0, 0] = 1 + UNIT_RANGE_TOL / 2  # float rounding of a resize is tolerated
    assert check_images(edge) is edge
    wide = x * 10 - 5  # residuals and perturbations: any finite range where allowed
    assert check_images(wide, unit_range=False) is wide
    assert check_images(torch.rand(7, 5), batched=False) is not None
    with pytest.raises(ValueError, match=r"got values in \[-4\.9"):
        check_images(wide)
