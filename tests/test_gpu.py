"""On a CUDA GPU: bf16 channels_last training and testing, AutoAttack under bf16 autocast,
on-device augmentation and the per-GPU lock. Skipped without CUDA (bench/gpu_check.sh runs it).

RANKROBUST_TEST_DEVICE=cpu runs the same code on the CPU (bf16-mixed there too): the dry run of
bench/gpu_check.sh, which checks the tests themselves where no GPU is.
"""

from __future__ import annotations

import os

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from rankrobust.attacks import AttackSpec, autoattack, make_attack
from rankrobust.data import random_crop_flip
from rankrobust.launch.gpus import acquire_gpu, gpu_slots
from rankrobust.models import build_model
from rankrobust.pipeline.datamodule import ImageDataModule
from rankrobust.pipeline.lightning_module import RobustClassifier

DEVICE = os.environ.get("RANKROBUST_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU"
)

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
EPS = 8 / 255


def _data(n_train: int = 256, n_test: int = 64, batch: int = 64) -> ImageDataModule:
    dm = ImageDataModule("synthetic", batch_size=batch, eval_batch_size=n_test)
    dm.n_train, dm.n_test = n_train, n_test
    return dm


def _trainer(**kw) -> pl.Trainer:
    return pl.Trainer(
        accelerator="gpu" if DEVICE == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        inference_mode=False,  # as the pipeline: the test attack needs gradients
        **kw,
    )


def test_bf16_channels_last_train_and_test_step_preact_resnet18():
    # The GPU preset (trainer=gpu): bf16-mixed, channels_last, FGSM-RS training, PGD testing.
    torch.manual_seed(0)
    model = build_model("preact_resnet18", 10, MEAN, STD)
    before = [p.detach().clone() for p in model.parameters()]
    module = RobustClassifier(
        model,
        10,
        train_attack=make_attack(AttackSpec(name="fgsm_rs", eps=EPS, autocast=True)),
        eval_attack=make_attack(AttackSpec(name="pgd_linf", eps=EPS, steps=3)),
        n_robust=32,
        channels_last=True,
        schedule="none",
    )
    dm = _data()
    seen = {}

    class WhereAtTheEnd(pl.Callback):
        # Lightning's teardown moves the model back to the CPU when fit returns: look inside
        def on_train_end(self, trainer, pl_module):
            conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
            seen["device"], seen["dtype"] = conv.weight.device.type, conv.weight.dtype
            seen["channels_last"] = conv.weight.is_contiguous(memory_format=torch.channels_last)
            seen["data"] = dm.train_set.images.device.type
            seen["benchmark"] = torch.backends.cudnn.benchmark

    trainer = _trainer(max_steps=4, callbacks=[WhereAtTheEnd()], benchmark=DEVICE == "cuda")
    trainer.fit(module, datamodule=dm)
    assert seen["device"] == DEVICE and seen["dtype"] == torch.float32  # bf16 is autocast only
    assert seen["channels_last"]
    assert seen["data"] == DEVICE  # on_device data
    assert seen["benchmark"] == (DEVICE == "cuda")  # cudnn autotuning for the fixed shapes
    changed = [
        not torch.equal(b, p.detach().cpu())
        for b, p in zip(before, model.parameters(), strict=True)
    ]
    assert any(changed)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    (metrics,) = trainer.test(module, datamodule=dm, verbose=False)
    assert 0.0 <= metrics["test/clean_acc"] <= 1.0
    assert 0.0 <= metrics["test/robust_acc"] <= metrics["test/clean_acc"] + 1e-6


def test_autoattack_inside_bf16_autocast():
    # Lightning's test_step runs under bf16 autocast; Square's index_put must not mix BFloat16
    # and Float there (the attacks compute in float32).
    torch.manual_seed(0)
    model = build_model("preact_resnet18", 10, MEAN, STD).to(DEVICE).eval()
    model.to(memory_format=torch.channels_last)
    x = torch.rand(16, 3, 32, 32, device=DEVICE)
    y = torch.randint(0, 10, (16,), device=DEVICE)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        x_adv = autoattack(model, x, y, eps=0.001, version="standard", n_iter=3, n_restarts=1)
    assert x_adv.device.type == DEVICE and x_adv.dtype == torch.float32 and x_adv.shape == x.shape
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= 0.001 + 1e-6


def test_random_crop_flip_on_device_tensors():
    x = torch.rand(64, 3, 32, 32, device=DEVICE)
    out = random_crop_flip(x, generator=torch.Generator(device=DEVICE).manual_seed(0))
    assert out.device.type == DEVICE and out.shape == x.shape and out.dtype == x.dtype
    # Same seed, same augmentation (what makes a resumed run exact).
    again = random_crop_flip(x, generator=torch.Generator(device=DEVICE).manual_seed(0))
    torch.testing.assert_close(out, again)
    # Reflect-padding and cropping only move pixels: each output image is made of its pixels.
    for i in range(4):
        assert set(out[i, 0].flatten().tolist()) <= set(x[i, 0].flatten().tolist())
    assert not torch.equal(out, x)
    # Without padding only the flip is left: each image is itself or its mirror, both occur.
    flips = random_crop_flip(x, padding=0, generator=torch.Generator(DEVICE).manual_seed(1))
    same = (flips == x).flatten(1).all(1)
    mirrored = (flips == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_on_device_datamodule_batches_and_augmentation_stay_on_the_gpu():
    dm = _data(n_train=128, n_test=32, batch=32)
    module = RobustClassifier(build_model("small_cnn", 10, MEAN, STD), 10, schedule="none")
    seen = []

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((batch[0].device.type, batch[0].shape))

    _trainer(max_steps=2, callbacks=[Spy()]).fit(module, datamodule=dm)
    assert seen and all(kind == DEVICE and shape[0] == 32 for kind, shape in seen)


def test_acquire_gpu_lock_is_released(tmp_path):
    slots = gpu_slots("auto" if DEVICE == "cuda" else 1)
    assert slots and slots[0].index == 0
    with acquire_gpu(slots[:1], lock_dir=tmp_path) as slot:
        assert slot == slots[0]
        # Held: a second acquire of the same single GPU times out.
        with pytest.raises(TimeoutError), acquire_gpu(slots[:1], tmp_path, 0.05, 0.2):
            pass
        x = torch.ones(4, device=f"{DEVICE}:{slot.index}")
        assert x.sum().item() == 4
    # Released at the end of the block: taken again at once.
    with acquire_gpu(slots[:1], lock_dir=tmp_path, poll_s=0.05, timeout_s=1.0) as again:
        assert again == slots[0]


def test_truncated_svd_at_224px_matches_float64(photos_224):
    """factorize(max_rank=32) on real 224x224 photos on the device (on CUDA: CholeskyQR2 and the
    block-Jacobi Ritz solve; the only place that route runs, CIFAR-10 never takes it) against a
    float64 LAPACK SVD on the CPU, every k <= 32 (on the CPU dry run: the same CUDA branches,
    forced)."""
    from rankrobust import _svd_maths
    from rankrobust.svd import factorize

    x = photos_224[:4]
    u, s, vh = torch.linalg.svd(x.double(), full_matrices=False)
    if DEVICE == "cuda":
        fac = factorize(x.to(DEVICE), max_rank=32)
        assert fac.U.shape[-1] == 32 and fac.U.device.type == "cuda"  # the truncated route
        U, S, Vh = fac.U.double().cpu(), fac.S.double().cpu(), fac.Vh.double().cpu()
    else:
        U, S, Vh = _svd_maths.truncated_svd(x, 32, cholesky=True, jacobi=True)
    worst = 0.0
    for k in range(1, 33):
        ref = (u[..., :k] * s[..., None, :k]) @ vh[..., :k, :]
        got = (U[..., :k] * S[..., None, :k]) @ Vh[..., :k, :]
        worst = max(worst, float((got - ref).abs().max()))
    assert worst <= 1e-3, worst  # pixels in [0, 1]


@pytest.fixture(scope="module")
def photos_224() -> torch.Tensor:
    pytest.importorskip("skimage")
    from rankrobust.data.photos import center_crops

    return center_crops(224)


def test_bf16_training_step_loss_is_float32_and_finite():
    torch.manual_seed(0)
    model = build_model("preact_resnet18", 10, MEAN, STD).to(DEVICE)
    model.to(memory_format=torch.channels_last)
    x = torch.rand(32, 3, 32, 32, device=DEVICE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,), device=DEVICE)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
