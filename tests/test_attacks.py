"""Tests for rankrobust.attacks on a tiny model trained on a synthetic separable problem."""

import pytest
import torch
import torch.nn.functional as F

from rankrobust.attacks import (
    ATTACK_NAMES,
    AttackSpec,
    autoattack,
    fgsm_rs,
    make_attack,
    pgd_l2,
    pgd_linf,
)
from rankrobust.errors import ConfigError
from rankrobust.models import build_model

N_CLASSES = 4
EPS = 8 / 255


def _synthetic(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c: a gray image with a brighter quadrant c, plus noise; pixels in [0, 1]."""
    y = torch.arange(n) % N_CLASSES
    x = 0.4 + 0.05 * torch.randn(n, 3, 8, 8, generator=generator)
    for c in range(N_CLASSES):
        r, s = divmod(c, 2)
        x[y == c, :, 4 * r : 4 * r + 4, 4 * s : 4 * s + 4] += 0.15
    return x.clamp(0, 1), y


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained():
    """A small_cnn trained for a few steps; returns (model, x_test, y_test)."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model("small_cnn", N_CLASSES, (0.5,) * 3, (0.25,) * 3, width=8)
    x, y = _synthetic(256, g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    x_test, y_test = _synthetic(32, g)
    with torch.no_grad():
        assert (model(x_test).argmax(1) == y_test).float().mean() >= 0.9
    return model, x_test, y_test


def _accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def _loss(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


def _linf(a, b):
    return (a - b).flatten(1).abs().max(1).values


def _l2(a, b):
    return (a - b).flatten(1).norm(dim=1)


ATTACKS = {
    "pgd_linf": lambda m, x, y: pgd_linf(m, x, y, eps=EPS, step_size=EPS / 4, steps=10),
    "pgd_l2": lambda m, x, y: pgd_l2(m, x, y, eps=0.5, step_size=0.1, steps=10),
    "fgsm_rs": lambda m, x, y: fgsm_rs(m, x, y, eps=EPS, step_size=1.25 * EPS),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_stay_in_ball_and_box(trained, name):
    model, x, y = trained
    x_adv = ATTACKS[name](model, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert not x_adv.requires_grad and x_adv.grad_fn is None
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    if name == "pgd_l2":
        assert (_l2(x_adv, x) <= 0.5 + 1e-5).all()
        assert _l2(x_adv, x).max() > 0.25  # it does move
    else:
        assert (_linf(x_adv, x) <= EPS + 1e-6).all()
        assert _linf(x_adv, x).max() > EPS / 2


def test_box_projection_near_the_edges(trained):
    model, x, y = trained
    x = (x > 0.45).float()  # pixels exactly 0 or 1
    for fn in ATTACKS.values():
        x_adv = fn(model, x, y)
        assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_increase_loss_and_lower_accuracy(trained, name):
    model, x, y = trained
    torch.manual_seed(1)
    strong = {
        "pgd_linf": lambda m, x, y: pgd_linf(m, x, y, eps=0.1, step_size=0.025, steps=10),
        "pgd_l2": lambda m, x, y: pgd_l2(m, x, y, eps=2.0, step_size=0.5, steps=10),
        "fgsm_rs": lambda m, x, y: fgsm_rs(m, x, y, eps=0.1, step_size=0.125),
    }[name]
    x_adv = strong(model, x, y)
    assert _loss(model, x_adv, y) > _loss(model, x, y) + 0.5
    assert _accuracy(model, x_adv, y) < _accuracy(model, x, y) - 0.3


def test_pgd_beats_random_noise(trained):
    model, x, y = trained
    torch.manual_seed(2)
    noise = (x + torch.empty_like(x).uniform_(-0.1, 0.1)).clamp(0, 1)
    x_adv = pgd_linf(model, x, y, eps=0.1, step_size=0.025, steps=10)
    assert _loss(model, x_adv, y) > _loss(model, noise, y)


def test_no_random_start_is_deterministic(trained):
    model, x, y = trained
    a = pgd_linf(model, x, y, EPS, EPS / 4, 3, random_start=False)
    b = pgd_linf(model, x, y, EPS, EPS / 4, 3, random_start=False)
    torch.testing.assert_close(a, b)


def test_no_param_grad_and_mode_restored(trained):
    model, x, y = trained
    assert all(p.grad is None for p in model.parameters())
    model.train()
    model.net.features[1].eval()  # a mixed-mode model: a frozen BN inside a training net
    bn = model.net.features[1]
    running_mean = bn.running_mean.clone()
    try:
        for fn in ATTACKS.values():
            fn(model, x, y)
            assert model.training and model.net.training and not bn.training
            assert model.net.features[5].training
        assert all(p.grad is None for p in model.parameters())
        # Eval mode during the attack: BN statistics untouched.
        torch.testing.assert_close(bn.running_mean, running_mean)
    finally:
        model.eval()


def test_attacks_under_no_grad_and_autocast(trained):
    model, x, y = trained
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = pgd_linf(model, x, y, EPS, EPS / 4, 2)
    assert x_adv.dtype == torch.float32
    assert (_linf(x_adv, x) <= EPS + 1e-6).all()
    assert all(p.grad is None for p in model.parameters())


class _AutocastSpy(torch.nn.Module):
    """Records, per forward, whether CPU autocast was on and the logits' dtype."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        out = self.model(x)
        self.seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_inside_bf16_autocast_compute_in_float32(trained, name):
    # Lightning's test_step runs under bf16 autocast: every attack must leave it and compute
    # its gradients in float32, whatever autocast the caller holds.
    model, x, y = trained
    spy = _AutocastSpy(model)
    torch.manual_seed(5)
    expected = ATTACKS[name](spy, x, y)
    spy.seen.clear()
    torch.manual_seed(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = ATTACKS[name](spy, x, y)
    assert spy.seen and all(seen == (False, torch.float32) for seen in spy.seen)
    assert x_adv.dtype == torch.float32
    torch.testing.assert_close(x_adv, expected)  # the same float32 maths as outside autocast


@pytest.mark.parametrize(
    "attack",
    [
        lambda m, x, y: fgsm_rs(m, x, y, EPS, 1.25 * EPS, autocast=True),
        lambda m, x, y: pgd_linf(m, x, y, EPS, EPS / 4, 2, autocast=True),
        lambda m, x, y: pgd_l2(m, x, y, 0.5, 0.1, 2, autocast=True),
        lambda m, x, y: make_attack(AttackSpec(name="fgsm_rs", eps=EPS, autocast=True))(m, x, y),
    ],
    ids=["fgsm_rs", "pgd_linf", "pgd_l2", "spec"],
)
def test_training_attacks_opt_in_to_the_callers_autocast(trained, attack):
    model, x, y = trained
    spy = _AutocastSpy(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = attack(spy, x, y)
    assert spy.seen and all(seen == (True, torch.bfloat16) for seen in spy.seen)
    # Projections are still float32 maths: the box holds exactly.
    assert x_adv.dtype == torch.float32 and x_adv.min() >= 0 and x_adv.max() <= 1


def test_bf16_images_come_back_bf16(trained):
    model, x, y = trained
    x16 = x.to(torch.bfloat16)
    x_adv = pgd_linf(model, x16, y, EPS, EPS / 4, 2)
    assert x_adv.dtype == torch.bfloat16
    # bf16 spacing in [0.25, 1) is at most 2**-8: the float32 iterate was in the ball.
    assert (_linf(x_adv.float(), x16.float()) <= EPS + 2**-8).all()


def test_autoattack_inside_bf16_autocast(trained):
    # Under bf16 autocast, AutoAttack's Square must not mix BFloat16 and Float in index_put.
    model, x, y = trained
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = autoattack(
            model, x, y, eps=0.001, version="standard", n_examples=16, n_iter=3, n_restarts=1
        )
    assert x_adv.dtype == torch.float32 and x_adv.shape == (16, *x.shape[1:])
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (_linf(x_adv, x[:16]) <= 0.001 + 1e-6).all()


def test_autoattack_square_alone_inside_bf16_autocast(trained):
    model, x, y = trained
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = autoattack(
            model, x, y, 0.3, version="custom", attacks_to_run=["square"], n_examples=16, n_iter=20
        )
    assert x_adv.dtype == torch.float32 and (_linf(x_adv, x[:16]) <= 0.3 + 1e-6).all()
    assert _accuracy(model, x_adv, y[:16]) < _accuracy(model, x[:16], y[:16])  # it does attack


def test_zero_eps_returns_input(trained):
    model, x, y = trained
    torch.testing.assert_close(pgd_linf(model, x, y, 0.0, 0.01, 2), x)
    torch.testing.assert_close(pgd_l2(model, x, y, 0.0, 0.01, 2), x)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x, y: pgd_linf(m, x, y, eps=-0.1, step_size=0.01, steps=1),
        lambda m, x, y: pgd_linf(m, x, y, eps=0.1, step_size=0.01, steps=0),
        lambda m, x, y: pgd_l2(m, x, y, eps=0.1, step_size=-0.01, steps=1),
        lambda m, x, y: fgsm_rs(m, x, y, eps=-1.0, step_size=0.01),
        lambda m, x, y: autoattack(m, x, y, eps=-0.1),
        lambda m, x, y: autoattack(m, x, y, eps=0.1, version="custom"),
        lambda m, x, y: autoattack(m, x, y, eps=0.1, attacks_to_run=["apgd-ce"]),
        lambda m, x, y: autoattack(m, x, y, eps=0.1, version="custom", attacks_to_run=["pgd"]),
        lambda m, x, y: autoattack(m, x, y, eps=0.1, norm="L3"),
    ],
)
def test_function_argument_errors(trained, call):
    model, x, y = trained
    with pytest.raises(ConfigError):
        call(model, x[:2], y[:2])


# --------------------------------------------------------------------------- AttackSpec


@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec(name="pgd_linf", eps=-0.1, steps=10),
        AttackSpec(name="pgd_linf", eps=0.1, steps=0),
        AttackSpec(name="pgd_l2", eps=0.1, step_size=-1.0, steps=5),
        AttackSpec(name="pgd_l2", eps=0.5, steps=5, norm="Linf"),
        AttackSpec(name="autoattack", eps=0.1, version="custom"),
        AttackSpec(name="autoattack", eps=0.1, version="custom", attacks_to_run=["nope"]),
        AttackSpec(name="autoattack", eps=0.1, attacks_to_run=["apgd-ce"]),
        AttackSpec(name="pgd_linf", eps="8/255", steps=5),
        AttackSpec(
            name="autoattack", eps=0.1, version="custom", attacks_to_run=["apgd-ce"], n_iter=0
        ),
        AttackSpec(name="autoattack", eps=0.1, autocast=True),
        AttackSpec(name="fgsm_rs", eps=0.1, autocast="yes"),
    ],
)
def test_spec_validation_errors(spec):
    with pytest.raises(ConfigError):
        spec.validate()
    with pytest.raises(ConfigError):
        make_attack(spec)


def test_unknown_attack_lists_known_names():
    with pytest.raises(ConfigError) as info:
        AttackSpec(name="cw").validate()
    for name in ("none", "pgd_linf", "pgd_l2", "fgsm_rs", "autoattack"):
        assert name in str(info.value)


# per name, the settings that make a cheap attack of it (eps: Linf, or L2 for pgd_l2)
_CHEAP = {
    "pgd_linf": {"eps": EPS, "steps": 2},
    "pgd_l2": {"eps": 0.5, "steps": 2, "norm": "L2"},
    "fgsm_rs": {"eps": EPS},
    "autoattack": {"eps": EPS, "version": "custom", "attacks_to_run": ["apgd-ce"], "n_iter": 2},
}


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_every_attack_name_builds_an_attack_inside_its_ball(trained, name):
    """Every advertised name is accepted and gives an attack that stays in [0, 1] and the ball."""
    model, x, y = trained
    attack = make_attack(AttackSpec(name=name, **_CHEAP.get(name, {})))
    if name == "none":
        assert attack is None
        return
    x_adv = attack(model, x[:8], y[:8])
    assert x_adv.shape == x[:8].shape
    dist = _l2(x_adv, x[:8]) if name == "pgd_l2" else _linf(x_adv, x[:8])
    assert (dist <= _CHEAP[name]["eps"] + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    if name != "autoattack":  # AutoAttack returns only its successful perturbations
        assert dist.max() > 0


def test_make_attack(trained):
    model, x, y = trained
    assert make_attack(AttackSpec()) is None
    assert AttackSpec().validate() == AttackSpec()
    spec = AttackSpec(name="pgd_linf", eps=EPS, steps=4)
    assert spec.effective_step_size() == pytest.approx(2.5 * EPS / 4)
    assert AttackSpec(name="fgsm_rs", eps=EPS).effective_step_size() == pytest.approx(1.25 * EPS)
    assert AttackSpec(name="pgd_l2", eps=1, step_size=0.3, steps=4).effective_step_size() == 0.3
    for spec in [
        AttackSpec(name="pgd_linf", eps=EPS, steps=4),
        AttackSpec(name="fgsm_rs", eps=EPS),
        AttackSpec(name="pgd_l2", eps=0.5, steps=4, norm="L2"),
    ]:
        attack = make_attack(spec)
        x_adv = attack(model, x, y)
        dist = _l2(x_adv, x) if spec.name == "pgd_l2" else _linf(x_adv, x)
        assert (dist <= spec.eps + 1e-5).all() and dist.max() > 0
        assert x_adv.min() >= 0 and x_adv.max() <= 1


# --------------------------------------------------------------------------- AutoAttack


def test_autoattack_apgd_ce(trained):
    model, x, y = trained
    model.train()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    try:
        x_adv = autoattack(
            model, x, y, eps=0.1, version="custom", attacks_to_run=["apgd-ce"], n_examples=16
        )
        assert model.training  # mode restored
    finally:
        model.eval()
    # pyautoattack reseeds the global RNG; the wrapper must not leak that to the caller.
    torch.testing.assert_close(torch.rand(3), expected_next)
    assert x_adv.shape == (16, *x.shape[1:])
    assert (_linf(x_adv, x[:16]) <= 0.1 + 1e-6).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    clean, robust = _accuracy(model, x[:16], y[:16]), _accuracy(model, x_adv, y[:16])
    assert robust <= clean
    assert robust < clean  # eps 0.1 breaks this tiny natural model
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_autoattack_l2_targeted_with_few_classes(trained):
    # apgd-t defaults to 9 target classes; with 4 classes the wrapper lowers it to 3.
    model, x, y = trained
    x_adv = autoattack(
        model,
        x,
        y,
        eps=0.5,
        norm="L2",
        version="custom",
        attacks_to_run=["apgd-t"],
        n_examples=8,
        n_iter=20,
    )
    assert (_l2(x_adv, x[:8]) <= 0.5 + 1e-4).all()
    assert _accuracy(model, x_adv, y[:8]) <= _accuracy(model, x[:8], y[:8])


def test_autoattack_via_spec(trained):
    model, x, y = trained
    spec = AttackSpec(
        name="autoattack",
        eps=EPS,
        version="custom",
        attacks_to_run=["apgd-ce"],
        n_examples=8,
        n_iter=10,
        n_restarts=1,
    )
    x_adv = make_attack(spec)(model, x, y)
    assert x_adv.shape[0] == 8
    assert (_linf(x_adv, x[:8]) <= EPS + 1e-6).all()


def test_autoattack_shields_side_effects(trained):
    # Raw pyautoattack: FAB calls .backward() (filling parameter .grad) and the dynamic-defence
    # check calls sys.settrace(None), dropping a debugger's or coverage's tracer.
    import sys

    model, x, y = trained

    def tracer(*args):
        return None

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        x_adv = autoattack(
            model,
            x,
            y,
            eps=EPS,
            version="custom",
            attacks_to_run=["fab"],
            n_examples=4,
            n_iter=5,
            n_restarts=1,
        )
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(old)
    assert (_linf(x_adv, x[:4]) <= EPS + 1e-6).all()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
