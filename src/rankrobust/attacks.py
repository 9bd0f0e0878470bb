"""Adversarial attacks on pixel-space models: pure functions of (model, x, y, parameters).

``x`` is a batch of images in [0, 1], shape (N, C, H, W); ``y`` the integer labels, shape (N,).
Every attack returns a detached ``x_adv`` of the same shape and dtype, inside the eps ball around
``x`` (Linf or L2, eps on the [0, 1] pixel scale: 8/255 is typical for Linf) and inside [0, 1].
``pixels=False`` (PGD, FGSM-RS) takes images of any finite range and does not clamp (the residual
images H_k(x) of the high-rank sweep). Bad arguments (0-255 or normalised images, eps = 8 for an
Linf budget, an infinite eps, labels of another length, a model returning a tuple, a dtype clash)
raise TypeError / ValueError naming the argument (``rankrobust.inputs``), as do NaN / inf logits
and labels outside [0, classes) or fractional (seen at the first gradient); ``check=False`` (what
`make_attack`'s callables pass: a training step must not sync with the host) skips those checks.
During an attack the model is in eval mode; each module's previous mode is restored afterwards.
Gradients are taken w.r.t. the input only, so no ``.grad`` is left on model parameters.

Precision: every attack turns a caller's autocast off on the input's device and computes logits,
loss, gradients and projections in float32, so calling one inside Lightning's bf16-mixed
``test_step`` is safe (pyautoattack's Square crashes under bf16 autocast). PGD and FGSM-RS take
``autocast=True`` to run the model under the caller's autocast instead: an opt-in for training
attacks, where bf16 is about twice as fast on a GPU and the gradient's sign hardly changes (Wong
et al. 2020 ran FGSM-RS in mixed precision). AutoAttack always runs in float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust._autoattack import (
    AUTOATTACK_ATTACKS,
    _autoattack_sandbox,
    _check_autoattack,
    _Float32Logits,
    _set_n_iter,
)
from rankrobust.errors import ConfigError
from rankrobust.inputs import (
    check_eps,
    check_finite_logits,
    check_images,
    check_int,
    check_labels,
    check_number,
    logits,
)
from rankrobust.models import eval_mode

__all__ = [
    "ATTACK_NAMES",
    "AUTOATTACK_ATTACKS",
    "AttackSpec",
    "autoattack",
    "fgsm_rs",
    "make_attack",
    "pgd_l2",
    "pgd_linf",
]

ATTACK_NAMES: tuple[str, ...] = ("none", "pgd_linf", "pgd_l2", "fgsm_rs", "autoattack")

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def _precision(x: torch.Tensor, autocast: bool) -> Iterator[None]:
    """Autocast off on ``x``'s device (float32 maths), unless ``autocast`` keeps the caller's."""
    if autocast:
        yield
        return
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


def _check(
    eps: float,
    step_size: float | None = None,
    steps: int | None = None,
    norm: str | None = None,
    x: torch.Tensor | None = None,
) -> float:
    """The budget (finite, >= 0, within the norm's bound: inputs.check_eps), step and steps."""
    eps = check_eps(eps, norm or "any", "eps", x)
    if step_size is not None:
        check_number(step_size, "step_size", low=0)
    if steps is not None:
        check_int(steps, "steps", 1)
    return eps


def _check_call(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str,
    step_size=None,
    steps=None,
    pixels: bool = True,
) -> tuple[float, torch.Tensor]:
    """The public attacks' arguments: images (in [0, 1] when ``pixels``), labels (N,) (as int64;
    their range is checked at the first gradient, `_input_grad`), the budget for ``norm``."""
    check_images(x, "x", unit_range=pixels)
    y = check_labels(y, x.shape[0], "y")
    return _check(eps, step_size, steps, norm, x), y


def _input_grad(
    model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, check: bool = False
) -> torch.Tensor:
    """Gradient of the summed cross-entropy w.r.t. the input only (float32 loss). ``check``:
    the logits are finite and every label a class of theirs (inputs: one host sync)."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        out = logits(model, x_adv).float()
        if check:
            check_finite_logits(out)
            y = check_labels(y, out.shape[0], "y", out.shape[1])
        loss = F.cross_entropy(out, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
    return grad.detach()


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each example, shaped (N, 1, 1, ...) to broadcast against ``t``."""
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.dim() - 1)))


def _box(t: torch.Tensor, pixels: bool) -> torch.Tensor:
    """Clamp to the pixel range [0, 1] (pixels), or leave as is (residual images H_k)."""
    return t.clamp_(0.0, 1.0) if pixels else t


def _project_linf(
    x_adv: torch.Tensor, x: torch.Tensor, eps: float, pixels: bool = True
) -> torch.Tensor:
    return _box(torch.minimum(torch.maximum(x_adv, x - eps), x + eps), pixels)


def _project_l2(
    x_adv: torch.Tensor, x: torch.Tensor, eps: float, pixels: bool = True
) -> torch.Tensor:
    delta = x_adv - x
    factor = torch.clamp(eps / (_per_example_norm(delta) + 1e-12), max=1.0)
    # Clamping to [0, 1] afterwards only shrinks each |delta_i| (x is in [0, 1]): stays in the ball.
    return _box(x + delta * factor, pixels)


# --------------------------------------------------------------------------- attacks


def _pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    x_adv: torch.Tensor,
    steps: int,
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    autocast: bool,
    check: bool = False,
) -> torch.Tensor:
    """x_adv <- step(x_adv, grad_x CE(f(x_adv), y)) `steps` times, the model in eval mode
    (``check``: the first step checks the logits and labels, `_input_grad`)."""
    with eval_mode(model), _precision(x, autocast):
        for i in range(steps):
            x_adv = step(x_adv, _input_grad(model, x_adv, y, check and i == 0))
    return x_adv.detach()


def pgd_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    autocast: bool = False,
    pixels: bool = True,
    check: bool = True,
) -> torch.Tensor:
    """Linf PGD on cross-entropy (Madry et al. 2018), the last iterate; autocast: see above.

    Raises TypeError / ValueError naming the argument (x, y, eps, step_size, steps)."""
    eps, y = _check_call(x, y, eps, "Linf", step_size, steps, pixels) if check else (eps, y)
    eps = float(eps)
    dtype, x = x.dtype, x.detach().float()
    x_adv = x.clone()
    if random_start:
        x_adv = _project_linf(x + torch.empty_like(x).uniform_(-eps, eps), x, eps, pixels)
    return _pgd(
        model,
        x,
        y,
        x_adv,
        steps,
        lambda x_adv, grad: _project_linf(x_adv + step_size * grad.sign(), x, eps, pixels),
        autocast,
        check,
    ).to(dtype)


def pgd_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    autocast: bool = False,
    pixels: bool = True,
    check: bool = True,
) -> torch.Tensor:
    """L2 PGD on cross-entropy: normalised-gradient steps, projection onto the L2 ball.

    Raises TypeError / ValueError naming the argument (x, y, eps, step_size, steps)."""
    eps, y = _check_call(x, y, eps, "L2", step_size, steps, pixels) if check else (eps, y)
    eps = float(eps)
    dtype, x = x.dtype, x.detach().float()
    x_adv = x.clone()
    if random_start:
        # A uniformly random direction with a radius uniform in [0, eps].
        direction = torch.randn_like(x)
        direction = direction / (_per_example_norm(direction) + 1e-12)
        radius = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype)
        x_adv = _project_l2(x + direction * radius * eps, x, eps, pixels)

    def step(x_adv: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        unit = grad / (_per_example_norm(grad) + 1e-12)
        return _project_l2(x_adv + step_size * unit, x, eps, pixels)

    return _pgd(model, x, y, x_adv, steps, step, autocast, check).to(dtype)


def fgsm_rs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    step_size: float,
    autocast: bool = False,
    pixels: bool = True,
    check: bool = True,
) -> torch.Tensor:
    """FGSM from a uniform random start in the Linf eps ball (Wong et al. 2020; step 1.25 eps).

    ``autocast``: see the module docstring. Raises TypeError / ValueError naming the argument."""
    eps, y = _check_call(x, y, eps, "Linf", step_size, pixels=pixels) if check else (eps, y)
    eps = float(eps)
    dtype, x = x.dtype, x.detach().float()
    x_adv = _project_linf(x + torch.empty_like(x).uniform_(-eps, eps), x, eps, pixels)
    with eval_mode(model), _precision(x, autocast):
        grad = _input_grad(model, x_adv, y, check)
    return _project_linf(x_adv + step_size * grad.sign(), x, eps, pixels).detach().to(dtype)


# --------------------------------------------------------------------------- AutoAttack


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str = "Linf",
    version: str = "standard",
    attacks_to_run: Sequence[str] | None = None,
    n_examples: int | None = None,
    seed: int = 0,
    batch_size: int = 250,
    verbose: bool = False,
    n_iter: int | None = None,
    n_restarts: int | None = None,
) -> torch.Tensor:
    """AutoAttack (Croce & Hein 2020) via pyautoattack; returns x_adv for ``x[:n_examples]``.

    ``version="custom", attacks_to_run=["apgd-ce"]`` is a fast version. Points the attacks do not
    break come back unchanged. With fewer than 10 classes the targeted attacks use n_classes - 1
    target classes (pyautoattack's default of 9 would fail). ``n_iter`` / ``n_restarts``, when
    given, override the iterations / restarts of APGD, APGD-T and FAB and the queries / restarts
    of Square (pyautoattack's defaults: 100 iterations, 5000 queries; in "custom" 5 restarts for
    apgd-ce/dlr and fab) for quick, weaker checks. Runs in float32 even inside autocast.
    """
    from pyautoattack import AutoAttack

    _check_autoattack(eps, norm, version, attacks_to_run, n_iter, n_restarts)
    _, y = _check_call(x, y, eps, norm)
    if n_examples is not None:
        if n_examples < 1:
            raise ConfigError(f"AutoAttack n_examples must be >= 1 or None; got {n_examples}.")
        x, y = x[:n_examples], y[:n_examples]
    dtype, x, y = x.dtype, x.detach().float(), y.detach()
    with _autoattack_sandbox(model, x.device, verbose), _precision(x, autocast=False):
        adversary = AutoAttack(
            _Float32Logits(model),
            attacks=list(attacks_to_run) if version == "custom" else None,
            device=x.device,
            eps=float(eps),
            norm=norm,
            seed=seed,
            version=version,
        )
        adversary.verbose = verbose
        with torch.no_grad():  # its clean predictions: finite logits, labels among them
            n_classes = max(
                check_finite_logits(logits(model, x[i : i + batch_size])).shape[-1]
                for i in range(0, len(x), batch_size)
            )
        y = check_labels(y, len(x), "y", n_classes)
        targets = max(1, n_classes - 1)
        adversary.apgd_targeted.n_target_classes = min(
            adversary.apgd_targeted.n_target_classes, targets
        )
        adversary.fab.n_target_classes = min(adversary.fab.n_target_classes, targets)
        for attack in (adversary.apgd, adversary.apgd_targeted, adversary.fab, adversary.square):
            if n_iter is not None:
                _set_n_iter(attack, n_iter)
            if n_restarts is not None:
                attack.n_restarts = n_restarts
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
    return x_adv.detach().to(dtype)


# --------------------------------------------------------------------------- specs


@dataclass
class AttackSpec:
    """A configured attack. ``step_size=0`` means the usual default for the attack:
    2.5 * eps / steps for PGD (Madry et al.), 1.25 * eps for FGSM-RS (Wong et al.).

    ``norm`` is only read by ``autoattack`` (``None`` means "Linf"); for the other attacks it may
    be left ``None`` or must match the attack (``pgd_l2`` is L2, the others Linf).
    ``version``, ``attacks_to_run``, ``n_examples``, ``seed``, ``batch_size``, ``n_iter`` and
    ``n_restarts`` are for ``autoattack`` (see :func:`autoattack`); ``random_start`` for PGD.
    ``autocast=True`` lets PGD / FGSM-RS run under the caller's autocast (bf16 on a GPU) instead
    of float32: an opt-in for training attacks; AutoAttack always runs in float32.
    """

    name: str = "none"
    eps: float = 0.0
    step_size: float = 0.0
    steps: int = 1
    random_start: bool = True
    norm: str | None = None
    version: str = "standard"
    attacks_to_run: list[str] | None = None
    n_examples: int | None = None
    seed: int = 0
    batch_size: int = 250
    n_iter: int | None = None
    n_restarts: int | None = None
    autocast: bool = False

    def validate(self) -> AttackSpec:
        if self.name not in ATTACK_NAMES:
            raise ConfigError(
                f"Unknown attack {self.name!r}; known attacks: {', '.join(ATTACK_NAMES)}."
            )
        for field in ("eps", "step_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"Attack {field} must be a number; got {value!r}.")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise ConfigError(f"Attack steps must be an integer; got {self.steps!r}.")
        _check(self.eps, self.step_size, self.steps)
        if self.name != "none" and self.eps == 0:
            raise ConfigError(
                f"eps=0: the {self.name} attack with a zero budget changes no image, so it is no "
                "attack (robust accuracy would be clean accuracy, adversarial training natural "
                "training); give eps > 0, or name='none' for no attack."
            )
        if not isinstance(self.autocast, bool):
            raise ConfigError(f"Attack autocast must be true or false; got {self.autocast!r}.")
        if self.autocast and self.name == "autoattack":
            raise ConfigError(
                "Attack autocast=true is for PGD / FGSM-RS training attacks; AutoAttack always "
                "runs in float32 (pyautoattack's Square fails under bf16). Drop autocast."
            )
        implied = {"pgd_linf": "Linf", "fgsm_rs": "Linf", "pgd_l2": "L2"}.get(self.name)
        if implied is not None and self.norm is not None and self.norm != implied:
            raise ConfigError(
                f"Attack {self.name!r} is an {implied} attack but norm={self.norm!r}; "
                f"set norm to {implied!r} or leave it unset."
            )
        if self.name == "autoattack":
            attacks = None if self.attacks_to_run is None else list(self.attacks_to_run)
            _check_autoattack(
                self.eps, self.norm or "Linf", self.version, attacks, self.n_iter, self.n_restarts
            )
            if self.n_examples is not None and self.n_examples < 1:
                raise ConfigError(
                    f"AutoAttack n_examples must be >= 1 or None; got {self.n_examples}."
                )
        if self.batch_size < 1:
            raise ConfigError(f"Attack batch_size must be >= 1; got {self.batch_size}.")
        return self

    def effective_step_size(self) -> float:
        if self.step_size > 0:
            return float(self.step_size)
        if self.name == "fgsm_rs":
            return 1.25 * self.eps
        return 2.5 * self.eps / self.steps

    def replace(self, **changes) -> AttackSpec:
        return dataclasses.replace(self, **changes)


def make_attack(spec: AttackSpec) -> Attack | None:
    """A callable ``(model, x, y) -> x_adv`` for ``spec`` (validated), or None for "none".

    Its calls skip the per-call argument checks (``check=False``): the spec is validated here
    once, and checking the images on every training step would cost a host sync per step.
    """
    spec.validate()
    eps, step = float(spec.eps), spec.effective_step_size()
    steps, rs, amp = int(spec.steps), bool(spec.random_start), spec.autocast
    if spec.name == "none":
        return None
    if spec.name == "pgd_linf":
        return lambda model, x, y, pixels=True: pgd_linf(
            model, x, y, eps, step, steps, rs, autocast=amp, pixels=pixels, check=False
        )
    if spec.name == "pgd_l2":
        return lambda model, x, y, pixels=True: pgd_l2(
            model, x, y, eps, step, steps, rs, autocast=amp, pixels=pixels, check=False
        )
    if spec.name == "fgsm_rs":
        return lambda model, x, y, pixels=True: fgsm_rs(
            model, x, y, eps, step, autocast=amp, pixels=pixels, check=False
        )
    attacks = None if spec.attacks_to_run is None else list(spec.attacks_to_run)
    options = dict(
        norm=spec.norm or "Linf",
        version=spec.version,
        attacks_to_run=attacks,
        n_examples=spec.n_examples,
        seed=spec.seed,
        batch_size=spec.batch_size,
        n_iter=spec.n_iter,
        n_restarts=spec.n_restarts,
    )
    return lambda model, x, y: autoattack(model, x, y, eps, **options)
