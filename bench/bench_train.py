"""Training throughput: run.py's own training loop against a plain PyTorch loop, side by side.

The Lightning side is what `python run.py` builds from conf/ for these overrides, through the
same functions as the task (rankrobust.pipeline.build: datamodule, model, module with the
config's training attack and its precision, the config's callbacks: last.ckpt cadence, step
seeds, progress lines, time estimate; the CSV logger, as logger=csv; the Trainer with
log_every_n_steps=auto and cudnn benchmark=auto). The plain side does the same work per step
with none of that: the same model, data (in memory, on the device), batch, SGD optimiser,
precision, seeded on-device augmentation, and the same training attack (FGSM-RS under the bf16
autocast when the config says autocast: true, as the pipeline runs it), then forward, float32
loss, accuracy, backward and step. Each side runs `--warmup` untimed steps, then `--steps`
timed ones (from the start of step `warmup` to the end of the last step, synchronised); the
sides alternate (plain, Lightning, Lightning, plain, ...) for `--repeats` rounds, and the JSON
reports each side's median, min and max images/s and the ratio of the medians. Prints the JSON
and writes it to --out. The goal is run.py >= 0.9x the plain loop. On CUDA the defaults are
PreActResNet-18, bf16 autocast and channels_last; `--quick` is a small CPU-sized run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from rankrobust.attacks import make_attack
from rankrobust.data import random_crop_flip
from rankrobust.models import build_model
from rankrobust.pipeline import build, checks, loggers

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
SEED = 0


def config(args, device: torch.device):
    """The run.py config for this benchmark (conf/ + overrides, as on the command line)."""
    data = (
        ["dataset=image_folder", f"dataset.root={Path(args.data).resolve()}"]
        if args.data and Path(args.data).exists()
        else ["dataset=synthetic"]
    )
    overrides = [
        *data,
        f"dataset.n_train={args.n_train}",
        "dataset.n_test=10",
        f"dataset.batch_size={args.batch}",
        f"model={args.model}",
        f"attack={args.attack}",
        "trainer=gpu" if device.type == "cuda" else "trainer=cpu",
        f"trainer.precision={args.precision}",
        f"module.channels_last={str(args.channels_last).lower()}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "optim.schedule=none",
        f"++trainer.max_steps={args.warmup + args.steps}",
        f"seed={SEED}",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepTimer(pl.Callback):
    """Wall time from the start of step `warmup` to the end of step `warmup + steps`."""

    def __init__(self, warmup: int, steps: int):
        self.warmup, self.total, self.start, self.steps = warmup, warmup + steps, None, 0
        self.elapsed = float("nan")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            sync()
            self.start = time.perf_counter()
        if self.start is not None:
            self.steps += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.total:
            sync()
            self.elapsed = time.perf_counter() - self.start


def lightning_throughput(args, cfg, dm, device) -> float:
    """run.py's training loop: the config's module, callbacks, logger and Trainer."""
    pl.seed_everything(SEED, verbose=False)
    module = build.module(spec := checks.check_config(cfg), build.model(spec))
    timer = StepTimer(args.warmup, args.steps)
    with tempfile.TemporaryDirectory() as run_dir:
        logs = loggers.build(cfg, Path(run_dir), None)
        callbacks = [*build.callbacks(spec), timer]
        trainer = build.trainer(spec, Path(run_dir), logs, callbacks)
        trainer.fit(module, datamodule=dm)
    assert timer.steps == args.steps, (timer.steps, args.steps)
    return timer.steps * args.batch / timer.elapsed


def plain_throughput(args, cfg, dm, device) -> float:
    """The loop Lightning runs, written out: same data order, augmentation, attack and maths."""
    torch.manual_seed(SEED)
    model = build_model(args.model, 10, MEAN, STD).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    spec = checks.check_config(cfg).train_attack
    attack = make_attack(spec) if spec is not None else None
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
    cfg = config(args, device)
    dm = build.datamodule(checks.check_config(cfg))
    dm.setup("fit")
    # Both sides read the training images from the device.
    dm.train_set.images = dm.train_set.images.to(device)
    dm.train_set.labels = dm.train_set.labels.to(device)
    plain, lightning = [], []
    for r in range(args.repeats):  # interleaved, the order alternating: no side always first
        sides = [("plain", plain_throughput, plain), ("lightning", lightning_throughput, lightning)]
        for _, fn, values in sides if r % 2 == 0 else sides[::-1]:
            values.append(fn(args, cfg, dm, device))
    result = {
        "benchmark": "train_throughput",
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "threads": torch.get_num_threads(),
        "model": args.model,
        "attack": args.attack,
        "attack_autocast": bool(cfg.attack.train and cfg.attack.train.get("autocast")),
        "lightning_side": "run.py's loop: conf/ callbacks "
        f"({', '.join(cfg.callbacks)}), logger=csv, Trainer from conf/trainer",
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
