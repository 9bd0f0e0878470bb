"""Training throughput: the Lightning module against a plain PyTorch loop, side by side.

Same model, data (in memory, on the device), batch, optimiser, precision and augmentation;
the first `--warmup` steps of each are excluded. Prints JSON and writes it to --out.
The goal is Lightning >= 0.9x the plain loop. On CUDA: bf16 autocast and channels_last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from rankrobust.attacks import AttackSpec, make_attack
from rankrobust.data import ImageDataModule, random_crop_flip
from rankrobust.models import build_model
from rankrobust.module import RobustClassifier

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def make_data(args) -> ImageDataModule:
    if args.data and Path(args.data).exists():
        dm = ImageDataModule("image_folder", root=args.data, batch_size=args.batch)
    else:
        dm = ImageDataModule("synthetic", batch_size=args.batch)
    dm.n_train = args.n_train
    dm.n_test = 10
    return dm


def attack_for(name: str):
    if name == "none":
        return None
    return make_attack(AttackSpec(name="fgsm_rs", eps=8 / 255, step_size=10 / 255))


class StepTimer(pl.Callback):
    """Wall time from the start of step `warmup` to the end of training."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.steps = warmup, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            sync()
            self.start = time.perf_counter()
        if self.start is not None:
            self.steps += 1

    def on_train_end(self, trainer, pl_module):
        sync()
        self.elapsed = time.perf_counter() - self.start


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def lightning_throughput(args, dm, device) -> float:
    torch.manual_seed(0)
    model = build_model(args.model, 10, MEAN, STD)
    gpu = device.type == "cuda"
    module = RobustClassifier(
        model, 10, train_attack=attack_for(args.attack), channels_last=gpu, schedule="none"
    )
    timer = StepTimer(args.warmup)
    trainer = pl.Trainer(
        accelerator="gpu" if gpu else "cpu",
        devices=1,
        precision="bf16-mixed" if gpu else "32-true",
        max_steps=args.warmup + args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=dm)
    return timer.steps * args.batch / timer.elapsed


def plain_throughput(args, dm, device) -> float:
    torch.manual_seed(0)
    model = build_model(args.model, 10, MEAN, STD).to(device)
    gpu = device.type == "cuda"
    if gpu:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    attack = attack_for(args.attack)
    x_all, y_all = dm.train_set.images.to(device), dm.train_set.labels.to(device)
    total, done, start = args.warmup + args.steps, 0, None
    model.train()
    while done < total:
        perm = torch.randperm(len(y_all), device=device)
        for idx in perm.split(args.batch):
            if done == args.warmup:
                sync()
                start = time.perf_counter()
            x, y = random_crop_flip(x_all[idx]), y_all[idx]
            if attack is not None:
                x = attack(model, x, y)
            if gpu:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == total:
                break
    sync()
    return args.steps * args.batch / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="../shared/data/cifar10-jpeg.tar.gz")
    p.add_argument(
        "--model", default=None, help="default: preact_resnet18 on GPU, small_cnn on CPU"
    )
    p.add_argument("--attack", default="none", choices=["none", "fgsm_rs"])
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--out", default="outputs/bench/train.json")
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.model = args.model or ("preact_resnet18" if device.type == "cuda" else "small_cnn")
    dm = make_data(args)
    dm.setup("fit")
    if device.type == "cuda":  # the Lightning run keeps data on the device too
        dm.train_set.images, dm.train_set.labels = (
            dm.train_set.images.to(device),
            dm.train_set.labels.to(device),
        )
    plain = plain_throughput(args, dm, device)
    lightning = lightning_throughput(args, dm, device)
    result = {
        "benchmark": "train_throughput",
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": args.model,
        "attack": args.attack,
        "batch": args.batch,
        "precision": "bf16-mixed" if device.type == "cuda" else "32-true",
        "data": dm.name,
        "steps_timed": args.steps,
        "plain_images_per_s": round(plain, 1),
        "lightning_images_per_s": round(lightning, 1),
        "ratio_lightning_over_plain": round(lightning / plain, 3),
        "goal_ratio": 0.9,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
