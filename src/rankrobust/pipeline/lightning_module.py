"""The LightningModule: natural or adversarial training of any classifier, clean and robust test."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import SumMetric
from torchmetrics.classification import MulticlassAccuracy

from rankrobust.attacks import Attack
from rankrobust.inputs import check_finite_logits, check_labels
from rankrobust.runs import Outcomes


def warmup(steps: int, pct: float = 0.25) -> float:
    """OneCycle's warm-up fraction, raised for short runs so each phase has >= 1 step (torch's
    OneCycleLR divides by zero for a zero-length phase, e.g. 4 steps at 0.25)."""
    return max(pct, 2 / steps) if steps > 2 else pct


def compile_backend(compile: bool | str) -> str | None:
    """The torch.compile backend for `module.compile`: false -> None, true -> "inductor", a
    string -> that backend (torch._dynamo.list_backends(), e.g. "aot_eager" for a quick check).
    Raises ValueError for anything else."""
    if compile is False or compile is None:
        return None
    if compile is True:
        return "inductor"
    if isinstance(compile, str) and compile in _backends():
        return compile
    raise ValueError(
        f"compile={compile!r}: use false (the default), true (torch.compile, inductor) or a "
        f"torch.compile backend: {', '.join(_backends())}"
    )


def _backends() -> list[str]:
    import torch._dynamo

    return sorted({*torch._dynamo.list_backends(), "eager", "aot_eager", "inductor"})


class RobustClassifier(pl.LightningModule):
    """Minimises E[CE(f(x'), y)] with x' = x (natural) or x' = attack(f, x, y) (adversarial).

    The training attack runs with the model in eval mode (the attack functions switch it), the
    standard practice. Testing reports clean accuracy on every test image and robust accuracy
    under `eval_attack` on the first `n_robust` test images (all when None), with the clean
    accuracy of those same images (`test/clean_acc_attacked`, what robust accuracy can never
    honestly exceed), in float32
    whatever the training precision (`eval_precision`), so the test accuracies, the rank sweep
    and RIG all see the same numbers. `channels_last="auto"` is on for a GPU. `compile`
    (off by default) runs the model through torch.compile (`compile_backend`).

    Nothing in a training step moves a number to the host (no .item(), no progress-bar metric):
    a GPU is fed without waiting for the CPU (tests/test_gpu_readiness.py counts the calls).
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        train_attack: Attack | None = None,
        eval_attack: Attack | None = None,
        n_robust: int | None = None,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = True,
        schedule: str = "onecycle",
        label_smoothing: float = 0.0,
        channels_last: bool | str = False,
        eval_precision: str = "32-true",
        compile: bool | str = False,
    ):
        super().__init__()
        self.model = model
        self.train_attack, self.eval_attack = train_attack, eval_attack
        self.n_robust = n_robust
        self.optim = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        self.schedule, self.label_smoothing = schedule, label_smoothing
        self.channels_last = channels_last
        self.eval_precision = eval_precision
        self.compile = compile_backend(compile)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # how many images each accuracy is over (summed over DDP processes): the n behind
        # the confidence intervals, right under limit_test_batches / fast_dev_run too
        self.n_clean, self.n_attacked = SumMetric(), SumMetric()
        self.test_robust_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_clean_attacked = MulticlassAccuracy(num_classes, average="micro")
        self._robust_seen = 0
        self._per_image: dict[str, list[torch.Tensor]] = {"label": [], "clean": [], "robust": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def setup(self, stage: str) -> None:
        if self.channels_last == "auto":
            self.channels_last = self.trainer.strategy.root_device.type == "cuda"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.compile and self.model._compiled_call_impl is None:
            # nn.Module.compile compiles the module's call in place: the parameters, the
            # state_dict keys and so the checkpoints stay those of the plain model, and the
            # attacks, which call self.model directly, run the compiled model too.
            self.model.compile(backend=self.compile)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.train_attack is not None:
            x = self.train_attack(self.model, x, y)
        logits = self(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        self._watch_loss(loss, batch_idx)
        acc = (logits.argmax(1) == y).float().mean()
        # No prog_bar on a per-step value: Lightning turns progress-bar metrics into Python
        # numbers after every batch (.item(), a host sync that stalls a GPU each step). The
        # logger reads the tensor only every log_every_n_steps; LineProgress prints the loss.
        self.log("train/loss", loss)
        self.log("train/acc", acc, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    # A diverged run must fail, not finish `ok` with NaN weights. The first non-finite loss is
    # noted on the device (no host sync per step) and looked at every CHECK_EVERY steps and at
    # the end of each epoch, naming the step it happened at.
    CHECK_EVERY = 50

    def _watch_loss(self, loss: torch.Tensor, batch_idx: int) -> None:
        here = torch.tensor([self.global_step, self.current_epoch, batch_idx], device=loss.device)
        bad = getattr(self, "_first_bad", None)
        if bad is None or bad.device != loss.device:
            bad = self._first_bad = torch.full((3,), -1, device=loss.device, dtype=here.dtype)
        first = (bad[0] < 0) & ~torch.isfinite(loss.detach())
        self._first_bad = torch.where(first, here, bad)
        self._bad_loss = torch.where(
            first, loss.detach(), getattr(self, "_bad_loss", loss.detach())
        )

    def _check_loss(self) -> None:
        bad = getattr(self, "_first_bad", None)
        if bad is None:
            return
        step, epoch, batch = (int(v) for v in bad.tolist())  # one host sync
        if step >= 0:
            raise FloatingPointError(
                f"the training loss became {float(self._bad_loss)} at step {step} (epoch "
                f"{epoch}, batch {batch}): lower optim.lr or the attack's eps, or check the data "
                "for NaN/inf"
            )

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if (batch_idx + 1) % self.CHECK_EVERY == 0:
            self._check_loss()

    def on_train_epoch_end(self) -> None:
        self._check_loss()

    def on_test_epoch_start(self) -> None:
        self._robust_seen = 0
        self._per_image: dict[str, list[torch.Tensor]] = {"label": [], "clean": [], "robust": []}

    def test_outcomes(self) -> dict[str, Outcomes] | None:
        """The last test's per-image outcomes {"clean", "robust"} (index = position in the test
        set, in the test loader's order), or None when the test ran on several processes (each
        saw an interleaved share) or has not run."""
        seen = self._per_image
        if not seen["label"] or self.trainer.world_size > 1:
            return None
        label = torch.cat(seen["label"]).long() if seen["label"] else torch.empty(0).long()
        clean = torch.cat(seen["clean"]).long() if seen["clean"] else label
        out = {"clean": Outcomes(np.arange(len(label)), label.numpy(), clean.numpy())}
        if seen["robust"]:
            robust = torch.cat(seen["robust"]).long()
            m = len(robust)  # the first n_robust test images were attacked
            out["robust"] = Outcomes(np.arange(m), label[:m].numpy(), robust.numpy())
        return out

    @contextlib.contextmanager
    def evaluation_precision(self, x: torch.Tensor) -> Iterator[None]:
        """Autocast off inside (float32 evaluation) unless eval_precision="trainer"."""
        if self.eval_precision == "trainer":
            yield
            return
        with torch.autocast(device_type=x.device.type, enabled=False):
            yield

    def test_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        with self.evaluation_precision(x):
            self._test_step(x.float(), y)

    def _test_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # NaN / inf logits and labels outside the classes are errors (inputs.py), not scores:
        # one host sync per test batch, none in training
        with torch.no_grad():
            out = check_finite_logits(self(x))
        y = check_labels(y, len(y), "test labels", out.shape[1])
        pred = out.argmax(1)
        self.test_acc.update(pred, y)
        self._per_image["label"].append(y.detach().cpu())
        self._per_image["clean"].append(pred.detach().cpu())
        self.n_clean.update(len(y))
        self.log("test/clean_acc", self.test_acc, on_epoch=True)
        self.log("test/n_clean", self.n_clean, on_epoch=True)
        budget = self._robust_budget()
        if self.eval_attack is None or budget <= 0:
            return
        x, y = x[:budget], y[:budget]
        # clean accuracy of the very images attacked: robust above it is no robustness
        self.test_clean_attacked.update(pred[:budget], y)
        x_adv = self.eval_attack(self.model, x, y)
        with torch.no_grad():
            adv = check_finite_logits(self(x_adv), "model (on the attacked images)")
            self.test_robust_acc.update(adv.argmax(1), y)
            self._per_image["robust"].append(adv.argmax(1).detach().cpu())
        self._robust_seen += len(y)
        self.n_attacked.update(len(y))
        self.log("test/robust_acc", self.test_robust_acc, on_epoch=True)
        self.log("test/clean_acc_attacked", self.test_clean_attacked, on_epoch=True)
        self.log("test/n_robust", self.n_attacked, on_epoch=True)

    def _robust_budget(self) -> int:
        """How many more test images this process attacks (n_robust split over processes)."""
        if self.n_robust is None:
            return 2**62
        per_process = math.ceil(self.n_robust / max(self.trainer.world_size, 1))
        return per_process - self._robust_seen

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), **self.optim)
        if self.schedule == "none":
            return opt
        steps = int(self.trainer.estimated_stepping_batches)
        if self.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=self.optim["lr"], total_steps=max(steps, 1), pct_start=warmup(steps)
            )
        elif self.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
        else:
            raise ValueError(f"Unknown schedule '{self.schedule}': use onecycle, cosine or none.")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
