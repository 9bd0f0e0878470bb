"""The one check of image tensors handed to the library (bottom module: imports only torch).

The library's images are floating-point pixels in [0, 1] (normalisation lives inside the
model), shaped (N, C, H, W) for batches or (..., H, W) for per-matrix maths such as the SVD.
:func:`check_images` rejects everything else with a message naming the argument and what is
expected, instead of letting uint8 or normalised pixels, a missing batch dimension or NaNs
turn into plausible-looking numbers further down.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
from torch import Tensor

from rankrobust.errors import ConfigError

__all__ = [
    "UNIT_RANGE_TOL",
    "check_baseline",
    "check_eps",
    "check_finite_logits",
    "check_images",
    "check_int",
    "check_labels",
    "check_logits",
    "check_model",
    "check_number",
    "check_target",
    "logits",
]

# Pixels may leave [0, 1] by this much (float rounding of resizing, low-precision dtypes)
# before check_images calls them out of range.
UNIT_RANGE_TOL = 1e-3


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_images(
    x: object,
    name: str = "images",
    batched: bool = True,
    unit_range: bool = True,
    values: bool = True,
) -> Tensor:
    """Return ``x`` if it is a finite floating-point image tensor, else raise naming ``name``.

    Args:
        x: the value to check.
        name: the caller's argument name, used in every message.
        batched: require shape (N, C, H, W) with N >= 1; else any (..., H, W) with ndim >= 2.
        unit_range: require pixels in [0, 1] (up to :data:`UNIT_RANGE_TOL`).
        values: look at the values (finite, range): one pass over ``x``; False checks the
            type, dtype and shape only (per-batch augmentations on a GPU, no sync).

    Raises:
        TypeError: ``x`` is not a tensor, not floating point (uint8 pixels: divide by 255), or
            a meta tensor (no values).
        ConfigError: (a ValueError) wrong number of dims, an empty batch or image, NaN or
            infinite values, or pixels outside [0, 1] when ``unit_range``.
    """
    shape = "(N, C, H, W)" if batched else "(..., H, W)"
    what = "a floating point tensor" + (" in [0, 1]" if unit_range else "") + f" of shape {shape}"
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected {what}, got {type(x).__name__}")
    if not x.is_floating_point():
        pixels = x.dtype == torch.uint8 or (unit_range and not x.is_complex())
        hint = ": divide by 255" if pixels else ""
        raise TypeError(f"{name}: expected {what}, got {_dtype_name(x.dtype)}{hint}")
    if x.is_meta:
        raise TypeError(
            f"{name}: expected {what} holding values, got a tensor on the meta device (it has "
            "a shape but no data): create it on the CPU or a GPU"
        )
    got = tuple(x.shape)
    if batched and x.ndim != 4:
        hint = f": add the batch dimension with {name}.unsqueeze(0)" if x.ndim == 3 else ""
        raise ConfigError(f"{name}: expected shape (N, C, H, W), got shape {got}{hint}")
    if x.ndim < 2:
        raise ConfigError(f"{name}: expected shape (..., H, W) with at least 2 dims, got {got}")
    if batched and x.shape[0] == 0:
        raise ConfigError(f"{name}: expected at least one image, got an empty batch {got}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ConfigError(f"{name}: expected images with H, W >= 1, got shape {got}")
    if x.numel() == 0 or not values:  # e.g. (0, H, W) for the per-matrix maths
        return x
    # one pass: min and max propagate NaN and show +-inf
    lo, hi = (float(v) for v in torch.stack(torch.aminmax(x)).float().cpu())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(
            f"{name} contains NaN or infinite values: expected finite pixels "
            "(check the data loading / normalisation)"
        )
    if unit_range and (lo < -UNIT_RANGE_TOL or hi > 1.0 + UNIT_RANGE_TOL):
        raise ConfigError(
            f"{name}: expected pixels in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
            "(0-255 pixels: divide by 255; normalised pixels: the normalisation belongs "
            "inside the model)"
        )
    return x


def _number(value: object, name: str) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ConfigError(f"{name}={value!r}: expected a finite number")
    return float(value)


def check_eps(eps: object, norm: str = "Linf", name: str = "eps", x: Tensor | None = None) -> float:
    """An attack budget on the [0, 1] pixel scale: finite, >= 0 and at most the ball that can
    hold [0, 1]^d, i.e. 1 for Linf, sqrt(C H W) for L2 and C H W for L1 (the diameters of the
    unit cube; per-image size from ``x`` when given, else only the Linf bound is checked).

    Raises:
        TypeError: not a number.
        ConfigError: (a ValueError) NaN, infinite, negative or larger than the bound (an Linf
            eps of 8 is on the 0-255 scale: 8/255).
    """
    value = _number(eps, name)
    if value < 0:
        raise ConfigError(f"{name}={value:g}: expected a budget >= 0")
    d = None if x is None or x.ndim < 2 else int(x[0].numel())
    bound = {"Linf": 1.0, "L2": math.sqrt(d) if d else None, "L1": float(d) if d else None}
    high = bound.get(norm)
    if high is not None and value > high:
        hint = f" (0-255 scale? use {value:g}/255 = {value / 255:.4g})" if norm == "Linf" else ""
        raise ConfigError(
            f"{name}={value:g}: an {norm} budget on pixels in [0, 1] is at most {high:.4g}{hint}"
        )
    return value


def _where(bad: Tensor, n: int) -> str:
    """'at 3 of 64 images (first: image 5)' for a boolean mask over n images."""
    idx = bad.nonzero().flatten()
    return f"at {idx.numel()} of {n} images (first: image {int(idx[0])})"


def check_labels(y: object, n: int, name: str = "y", num_classes: int | None = None) -> Tensor:
    """Class indices for n images: shape (n,), whole numbers, in [0, num_classes) when given.

    Returns ``y`` as int64 (float labels holding whole numbers, 1.0, are converted: they are
    indices all the same). Checking the range reads the values (one host sync).

    Raises:
        TypeError: not a tensor, or bool / complex values.
        ConfigError: (a ValueError) another shape (one-hot (n, classes) labels, a trailing
            dim), NaN / inf or fractional values (1.5), or a label outside [0, num_classes)
            (negative, or == num_classes): the message names ``name``, the value and how many
            images have it.
    """
    if not isinstance(y, Tensor):
        raise TypeError(
            f"{name}: expected an integer tensor of shape ({n},), got {type(y).__name__}"
        )
    if y.is_complex() or y.dtype == torch.bool:
        raise TypeError(
            f"{name}: expected integer class indices, got {_dtype_name(y.dtype)} "
            f"(use {name}.long())"
        )
    if tuple(y.shape) != (n,):
        got = tuple(y.shape)
        hint = ""
        if y.ndim == 2 and got[0] == n and got[1] == 1:
            hint = f": use {name}.squeeze(1)"
        elif y.ndim == 2 and got[0] == n:
            hint = f" (one-hot or scores? class indices are {name}.argmax(1))"
        raise ConfigError(f"{name}: expected shape ({n},) (one label per image), got {got}{hint}")
    if n == 0:
        return y.long()
    if y.is_floating_point():
        bad = ~torch.isfinite(y)
        if bool(bad.any()):
            raise ConfigError(
                f"{name}: labels must be class indices, got {float(y[bad][0])} {_where(bad, n)}"
            )
        bad = y != torch.round(y)
        if bool(bad.any()):
            raise ConfigError(
                f"{name}: labels must be whole class indices, got {float(y[bad][0]):g} "
                f"{_where(bad, n)} (fractional values are not classes)"
            )
    y = y.long()
    if num_classes is not None:
        bad = (y < 0) | (y >= num_classes)
        if bool(bad.any()):
            raise ConfigError(
                f"{name}: labels must be class indices in [0, {num_classes}) for a model with "
                f"{num_classes} classes, got {int(y[bad][0])} {_where(bad, n)}"
            )
    return y


def check_finite_logits(out: Tensor, name: str = "model") -> Tensor:
    """``out`` (N, classes) if every logit is finite, else a ConfigError (a ValueError) naming
    ``name``, what was found (NaN, inf, -inf) and at how many images: argmax of a NaN row is a
    prediction of nothing that still scores as class 0. Reads the values (one host sync)."""
    if out.numel() == 0:
        return out
    bad = ~torch.isfinite(out.detach())
    if out.ndim >= 2:
        bad = bad.flatten(1).any(1)
    if not bool(bad.any()):
        return out
    rows = out.detach()[bad] if out.ndim >= 2 else out.detach()[bad].unsqueeze(1)
    found = [
        label
        for label, hit in (
            ("NaN", torch.isnan(rows).any()),
            ("inf", torch.isposinf(rows).any()),
            ("-inf", torch.isneginf(rows).any()),
        )
        if bool(hit)
    ]
    raise ConfigError(
        f"{name}: logits contain {' / '.join(found)} {_where(bad, out.shape[0])}: a model "
        "whose output is not finite cannot be scored (check its weights or checkpoint, its "
        "input normalisation and the images)"
    )


def check_logits(out: object, n: int, name: str = "model") -> Tensor:
    """A model's output for n images: a floating tensor of shape (n, classes), classes >= 2.

    Raises TypeError (not a tensor: a tuple or dict of outputs, or integer output) or
    ConfigError (another shape, e.g. 1-D scores), naming ``name`` and the fix.
    """
    if not isinstance(out, Tensor):
        raise TypeError(
            f"{name}: expected the model to return logits, a tensor of shape ({n}, classes), "
            f"got {type(out).__name__} (a model returning several outputs: wrap it to return "
            "the logits, e.g. nn.Sequential(model, PickFirst()) or lambda x: model(x)[0])"
        )
    if not out.is_floating_point():
        raise TypeError(f"{name}: expected floating-point logits, got {_dtype_name(out.dtype)}")
    if out.ndim != 2 or out.shape[0] != n or out.shape[1] < 2:
        raise ConfigError(
            f"{name}: expected logits of shape ({n}, classes) with classes >= 2 for {n} "
            f"images, got shape {tuple(out.shape)}"
        )
    return out


def logits(model: object, x: Tensor, name: str = "model", x_name: str = "x") -> Tensor:
    """``model(x)`` checked by :func:`check_logits`; a dtype clash between ``x`` and the
    model's weights (float64 or float16 images into a float32 model) is a TypeError naming
    both, not torch's internal message."""
    if not callable(model):
        raise TypeError(
            f"{name}: expected a callable model (an nn.Module), got {type(model).__name__}"
        )
    weights = next((t for t in getattr(model, "parameters", lambda: iter(()))()), None)
    if (
        weights is not None
        and weights.is_floating_point()
        and weights.dtype != x.dtype
        and not torch.is_autocast_enabled(x.device.type)
    ):
        raise TypeError(
            f"{x_name}: {_dtype_name(x.dtype)} images, but the {name}'s weights are "
            f"{_dtype_name(weights.dtype)}: convert one to the other ({x_name}.to("
            f"torch.{_dtype_name(weights.dtype)}) or model.to(torch.{_dtype_name(x.dtype)}))"
        )
    return check_logits(model(x), x.shape[0], name)


def _range(low: float | None, high: float | None, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in [{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" >= {low:g}"
    return f" <= {high:g}" if high is not None else ""


def check_int(value: object, name: str, low: int | None = 1, high: int | None = None) -> int:
    """An integer (Python, numpy, or a one-element integer tensor) in [low, high] as an int.

    Raises:
        TypeError: a bool, float (even 2.0), string or anything else, naming ``name``.
        ConfigError: (a ValueError) outside [low, high].
    """
    what = "an integer" + _range(low, high)
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} must be {what}, got {value}")
    return value


def check_number(
    value: object,
    name: str,
    low: float | None = None,
    high: float | None = None,
    high_open: bool = False,
) -> float:
    """A finite real number (not a bool or string) in [low, high] (or [low, high)) as a float.

    Raises TypeError (not a number) or ConfigError (NaN, infinite, out of range) naming it.
    """
    value = _number(value, name)
    above = high is not None and (value >= high if high_open else value > high)
    if (low is not None and value < low) or above:
        raise ConfigError(f"{name}={value:g}: expected a number{_range(low, high, high_open)}")
    return value


def check_model(model: object, name: str = "model") -> Callable:
    """A callable model (an nn.Module or a function of images), else TypeError naming it."""
    if not callable(model):
        raise TypeError(
            f"{name}: expected a callable model (an nn.Module or a function of images), got "
            f"{type(model).__name__}"
        )
    return model


def check_target(
    target: object, n: int, name: str = "target", device: torch.device | None = None
) -> Tensor | None:
    """The class attributed per image: None (the caller picks the top class), an int for every
    image, or n integers (a sequence or a tensor of shape (n,)); returned as a LongTensor (n,).

    Whether the indices exist in the model's output is the caller's check (it knows the
    number of classes).

    Raises:
        TypeError: a bool, Python float, string or bool / complex tensor, naming ``name``.
        ConfigError: (a ValueError) more than one dimension, not n entries, or values that are
            not whole numbers (check_labels).
    """
    if target is None:
        return None
    if isinstance(target, bool | str | bytes | float) or isinstance(target, dict | set):
        raise TypeError(
            f"{name}={target!r}: expected None, a class index or {n} class indices, got "
            f"{type(target).__name__}"
        )
    try:
        t = torch.as_tensor(target, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name}: expected None, a class index or {n} class indices, got "
            f"{type(target).__name__} ({err})"
        ) from None
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name}: expected integer class indices, got {_dtype_name(t.dtype)}")
    if t.ndim > 1:
        raise ConfigError(
            f"{name}: expected one class index or {n} (one per image), got shape {tuple(t.shape)}"
        )
    if t.ndim == 1 and t.shape[0] != n:
        raise ConfigError(f"{name} has {t.shape[0]} entries but the batch has {n} images")
    t = t.expand(n) if t.ndim == 0 else t
    return check_labels(t, n, name)  # whole numbers (1.0 is class 1; 1.5 is no class)


def check_baseline(
    baseline: object, x: Tensor, name: str = "baseline", named: tuple[str, ...] = ()
) -> str | Tensor:
    """A path's start for images x (N, C, H, W): one of the ``named`` baselines (returned as
    is), a finite number or a finite tensor broadcastable to x (returned as a tensor shaped
    like x, on x's device and dtype).

    Raises:
        TypeError: another type (a list, an array), naming ``name``.
        ConfigError: (a ValueError) an unknown name, a shape that does not broadcast to x,
            NaN or infinite values.
    """
    choices = ", ".join(repr(v) for v in named)
    what = (f"one of {choices}, " if named else "") + "a number or a tensor"
    if isinstance(baseline, str):
        if baseline in named:
            return baseline
        raise ConfigError(f"{name}={baseline!r}: unknown baseline; expected {what}")
    if isinstance(baseline, int | float) and not isinstance(baseline, bool):
        return torch.full_like(x, check_number(baseline, name))
    if not isinstance(baseline, Tensor):
        raise TypeError(f"{name}: expected {what}, got {type(baseline).__name__}")
    try:
        b = torch.broadcast_to(baseline.to(device=x.device, dtype=x.dtype), x.shape)
    except RuntimeError:
        raise ConfigError(
            f"{name}: shape {tuple(baseline.shape)} does not broadcast to the images' shape "
            f"{tuple(x.shape)}"
        ) from None
    if not bool(torch.isfinite(b).all()):
        raise ConfigError(f"{name} contains NaN or infinite values")
    return b.detach().clone()
