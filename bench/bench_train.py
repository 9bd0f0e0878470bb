"""Training throughput: the Lightning module against a plain PyTorch loop, side by side.

Both sides do the same work per step: the same model, data (in memory, on the device), batch,
SGD optimiser, precision, seeded on-device augmentation, and the training attack called inside
the autocast region (as Lightning's training_step is), then forward, float32 loss, accuracy,
backward and step. Each side runs `--warmup` untimed steps, then `--steps` timed ones; the
sides alternate (plain, Lightning, Lightning, plain, ...) for `--repeats` rounds, and the JSON
reports each side's median, min and max images/s and the ratio of the medians. Prints the JSON
and writes it to --out. The goal is Lightning >= 0.9x the plain loop. On CUDA the default is
bf16 autocast and channels_last; `--quick` is a small CPU-sized run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from rankrobust.attacks import AttackSpec, make_attack
from rankrobust.data import random_crop_flip
from rankrobust.models import build_model
from rankrobust.pipeline.datamodule import ImageDataModule
from rankrobust.pipeline.lightning_module import RobustClassifier

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
SEED = 0


def make_data(args) -> ImageDataModule:
    if args.data and Path(args.data).exists():
        dm = ImageDataModule("image_folder", root=args.data, batch_size=args.batch, seed=SEED)
    else:
        dm = ImageDataModule("synthetic", batch_size=args.batch, seed=SEED)
    dm.n_train = args.n_train
    dm.n_test = 10
    return dm


def attack_for(args):
    if args.attack == "none":
        return None
    spec = AttackSpec(
        name="fgsm_rs", eps=8 / 255, step_size=10 / 255, autocast=args.attack_autocast
    )
    return make_attack(spec)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepTimer(pl.Callback):
    """Wall time from the start of step `warmup` to the end of training."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.steps, self.elapsed = warmup, None, 0, float("nan")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            sync()
            self.start = time.perf_counter()
        if self.start is not None:
            self.steps += 1

    def on_train_end(self, trainer, pl_module):
        sync()
        self.elapsed = time.perf_counter() - self.start


def lightning_throughput(args, dm, device) -> float:
    torch.manual_seed(SEED)
    model = build_model(args.model, 10, MEAN, STD)
    module = RobustClassifier(
        model, 10, train_attack=attack_for(args), channels_last=args.channels_last, schedule="none"
    )
    timer = StepTimer(args.warmup)
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
        max_steps=args.warmup + args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=dm)
    assert timer.steps == args.steps, (timer.steps, args.steps)
    return timer.steps * args.batch / timer.elapsed


def plain_throughput(args, dm, device) -> float:
    """The loop Lightning runs, written out: same data order, augmentation, attack and maths."""
    torch.manual_seed(SEED)
    model = build_model(args.model, 10, MEAN, STD).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    attack = attack_for(args)
    amp = args.precision == "bf16-mixed"
    x_all, y_all = dm.train_set.images.to(device), dm.train_set.labels.to(device)
    total, done, start, epoch = args.warmup + args.steps, 0, None, 0
    model.train()
    while done < total:
        g = torch.Generator().manual_seed(SEED + epoch)  # ShardedBatches' order, on the CPU
        order = torch.randperm(len(y_all), generator=g).to(device)
        for idx in order.split(args.batch):
            if done == args.warmup:
                sync()
                start = time.perf_counter()
            aug = torch.Generator(device=device).manual_seed(SEED * 1_000_003 + done * 7919)
            x, y = random_crop_flip(x_all[idx], generator=aug), y_all[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                if attack is not None:
                    x = attack(model, x, y)
                if args.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
                acc = (logits.argmax(1) == y).float().mean()  # noqa: F841 - Lightning logs it
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == total:
                break
        epoch += 1
    sync()
    return args.steps * args.batch / (time.perf_counter() - start)


def summary(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "spread_pct": round(100 * (max(values) - min(values)) / statistics.median(values), 1),
        "runs": [round(v, 1) for v in values],
    }


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="../shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--model", default=None, help="default: preact_resnet18 on GPU, else small_cnn")
    p.add_argument("--attack", default="none", choices=["none", "fgsm_rs"])
    p.add_argument(
        "--attack-autocast",
        action="store_true",
        help="run the FGSM-RS attack under the bf16 autocast (AttackSpec.autocast) on both sides",
    )
    p.add_argument("--precision", default=None, help="default: bf16-mixed on GPU, else 32-true")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--quick", action="store_true", help="a CPU-sized run: batch 64, 1024 images, 10 steps"
    )
    p.add_argument("--out", default="outputs/bench/train.json")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.n_train, args.warmup, args.steps = 64, 1024, 2, 10
    if args.repeats < 1 or args.steps < 1 or args.warmup < 1:
        p.error("--repeats, --steps and --warmup must be >= 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    args.model = args.model or ("preact_resnet18" if gpu else "small_cnn")
    args.precision = args.precision or ("bf16-mixed" if gpu else "32-true")
    args.channels_last = gpu
    dm = make_data(args)
    dm.setup("fit")
    # Both sides read the training images from the device.
    dm.train_set.images = dm.train_set.images.to(device)
    dm.train_set.labels = dm.train_set.labels.to(device)
    plain, lightning = [], []
    for r in range(args.repeats):  # interleaved, the order alternating: no side always first
        sides = [("plain", plain_throughput, plain), ("lightning", lightning_throughput, lightning)]
        for _, fn, values in sides if r % 2 == 0 else sides[::-1]:
            values.append(fn(args, dm, device))
    result = {
        "benchmark": "train_throughput",
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "threads": torch.get_num_threads(),
        "model": args.model,
        "attack": args.attack,
        "attack_autocast": args.attack_autocast,
        "batch": args.batch,
        "precision": args.precision,
        "channels_last": args.channels_last,
        "data": dm.name,
        "warmup_steps": args.warmup,
        "steps_timed": args.steps,
        "repeats": args.repeats,
        "plain_images_per_s": summary(plain),
        "lightning_images_per_s": summary(lightning),
        "ratio_lightning_over_plain": round(
            statistics.median(lightning) / statistics.median(plain), 3
        ),
        "ratio_per_repeat": [round(a / b, 3) for a, b in zip(lightning, plain, strict=True)],
        "goal_ratio": 0.9,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
