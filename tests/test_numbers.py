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
    "rig": lambda m, t: rank_integrated_gradients(m, X, target=t, n_steps_per_rank=1),
    "ig": lambda m, t: integrated_gradients(m, X, target=t, n_steps=2),
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


# ---------------------------------------------------------------------------------------------
# Image-folder trees: val/ is its own split


def _tree(root, sizes: dict[str, int], classes=("cat", "dog")):
    """A tree whose images say their split: every pixel of a split's images is its own value."""
    import numpy as np
    from PIL import Image

    value = {"train": 10, "test": 120, "val": 240}
    for split, n in sizes.items():
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.full((8, 8, 3), value[split], dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture()
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKROBUST_CACHE", str(tmp_path / "cache"))


@pytest.mark.usefixtures("private_cache")
def test_train_val_test_tree_tests_on_test_and_val_only_when_asked(tmp_path):
    import tarfile

    from rankrobust.data import image_folder_sets, read_images
    from rankrobust.data.streaming import stream_sets

    tree = _tree(tmp_path / "tree", {"train": 2, "val": 3, "test": 1})
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tree, arcname="tree")
    for source in (tree, archive):
        _, test = image_folder_sets(source)
        assert len(test.labels) == 2  # test/ only: 1 per class, not 1 + 3
        assert torch.allclose(test.images, torch.full_like(test.images, 120 / 255))
        _, val = image_folder_sets(source, test_split="val")
        assert len(val.labels) == 6 and torch.allclose(val.images.mean(), torch.tensor(240 / 255))
        assert len(read_images(source, 100).labels) == 2
    assert len(stream_sets(tree, 8)["test"]) == 2
    assert len(stream_sets(tree, 8, "val")["test"]) == 6


@pytest.mark.usefixtures("private_cache")
def test_imagenet_style_train_val_tree_tests_on_val(tmp_path):
    from rankrobust.data import image_folder_sets, read_images
    from rankrobust.data.streaming import stream_sets
    from rankrobust.errors import ConfigError

    tree = _tree(tmp_path / "tree", {"train": 2, "val": 3})
    _, test = image_folder_sets(tree)
    assert len(test.labels) == 6
    assert len(stream_sets(tree, 8)["test"]) == 6
    assert len(read_images(tree, 100).labels) == 6
    for call in (lambda: image_folder_sets(tree, test_split="test"),
                 lambda: stream_sets(tree, 8, "test")):  # fmt: skip
        with pytest.raises(ConfigError, match="no test/ images .*dataset.test_split"):
            call()
    with pytest.raises(ConfigError, match="dataset.test_split='valid'"):
        image_folder_sets(tree, test_split="valid")


# ---------------------------------------------------------------------------------------------
# Robust accuracy above clean accuracy on the same images: flagged


class Masked(nn.Module):
    """Gradient masking in its purest form: wrong on every clean image (found in `images`),
    right on anything else (the attack's images); its logits have no gradient."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: int):
        super().__init__()
        self.register_buffer("images", images.flatten(1).clone())
        self.register_buffer("labels", labels.clone())
        self.classes = classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(
            x.flatten(1).float(), self.images.float(), compute_mode="donot_use_mm_for_euclid_dist"
        )
        nearest = d.argmin(1)
        clean = d.min(1).values < 1e-6
        label = self.labels[nearest] + clean.long()  # off by one class on clean images
        return nn.functional.one_hot(label % self.classes, self.classes).float() * self.scale + (
            0 * x.flatten(1).sum(1, keepdim=True)
        )


def test_number_warnings_rule():
    from rankrobust.results import number_warnings

    base = {"clean_acc": 0.5, "n_test": 100, "n_robust": 10}
    assert number_warnings({**base, "robust_acc": 0.4, "clean_acc_attacked": 0.6}) == []
    (line,) = number_warnings({**base, "robust_acc": 0.9, "clean_acc_attacked": 0.0})
    assert "robust accuracy 90.0% is above the clean accuracy 0.0%" in line
    assert "same 10 test images" in line and "fra31/auto-attack" in line and "AutoAttack" in line
    # another subset: the clean accuracy of all images is not compared
    assert number_warnings({**base, "robust_acc": 0.9}) == []
    # every image attacked (older files have no clean_acc_attacked): clean_acc is comparable
    assert number_warnings({**base, "n_robust": 100, "robust_acc": 0.6})
    sweep = {"rank_sweep": {"low": {1: 0.2, 2: 0.5}, "low_robust": {1: 0.1, 2: 0.7}},
             "rank_sweep_clean_attacked": {"low": {1: 0.3, 2: 0.4}}}  # fmt: skip
    (line,) = number_warnings(sweep)
    assert line.startswith("rank sweep low:") and "k=2: 70.0% > 40.0%" in line
    assert "k=1" not in line


def test_robust_above_clean_is_flagged_in_metrics_and_closing_lines(tmp_path, monkeypatch):
    import json

    from helpers import FAST, make_cfg

    from rankrobust.pipeline import build, checks, task
    from rankrobust.results import read_metrics

    overrides = [*FAST, "train=false", "model.checkpoint=random", "dataset.n_test=32",
                 "eval.n_robust=8", "sweep.enabled=false", "analysis.perturbation_spectrum=false",
                 "attack.eval.steps=2"]  # fmt: skip
    cfg = make_cfg(*overrides)
    dm = build.datamodule(checks.check_config(cfg))
    dm.setup("test")
    images, labels = dm.test_tensors()
    monkeypatch.setattr(build, "model", lambda cfg: Masked(images, labels, 10))
    lines = []
    monkeypatch.setattr(task.log, "info", lambda msg, *a: lines.append(str(msg) % a if a else msg))
    metrics = task.run(make_cfg(*overrides), tmp_path / "run")
    assert metrics["clean_acc"] == 0.0 and metrics["robust_acc"] == 1.0
    assert metrics["clean_acc_attacked"] == 0.0
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(written["warnings"]) == 1 and "gradient masking" in written["warnings"][0]
    assert read_metrics(tmp_path / "run")["warnings"] == written["warnings"]
    closing = "\n".join(lines)
    assert "WARNING: robust accuracy 100.0% is above the clean accuracy 0.0%" in closing


def test_report_names_runs_with_robust_above_clean(tmp_path):
    from rankrobust.reporting.report import render_report

    row = {
        "run_dir": "runs/masked",
        "status": "ok",
        "kind": "robust",
        "clean_acc": 0.0,
        "robust_acc": 0.9,
        "clean_acc_attacked": 0.0,
        "n_test": 100,
        "n_robust": 100,
    }
    row["seed"] = 0
    fine = {**row, "run_dir": "runs/fine", "robust_acc": 0.0, "seed": 1}  # two seeds, not copies
    text = render_report([row, fine], [], tmp_path)
    assert "Numbers to check" in text and "runs/masked" in text and "runs/fine" not in text
    assert "fra31/auto-attack" in text and "AutoAttack" in text


# ---------------------------------------------------------------------------------------------
# A zero-budget attack is no attack


def test_eps_0_training_is_refused_on_the_cli(tmp_path):
    from helpers import FAST, run_cli

    result = run_cli(*FAST, "attack=pgd_linf", "attack.train.eps=0", cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "attack.train.eps=0" in result.stderr and "attack=none" in result.stderr
    assert "Traceback" not in result.stderr


def test_eps_0_training_is_natural_not_robust():
    from rankrobust.identity import model_kind, row_kind

    cfg = {"train": True, "attack": {"name": "pgd_linf", "train": {"name": "pgd_linf", "eps": 0}}}
    assert model_kind(cfg).kind == "natural"
    assert model_kind({**cfg, "attack": {"name": "pgd_linf", "train": {"name": "pgd_linf",
                                         "eps": 8 / 255}}}).kind == "robust"  # fmt: skip
    old = {"kind": "robust", "threat": {"norm": "linf", "eps": 0.0}}  # written before the check
    assert row_kind(old).kind == "natural"
    assert row_kind({"kind": "robust", "threat": {"norm": "linf", "eps": 0.03}}).kind == "robust"


def test_a_run_whose_model_gives_nan_fails_naming_it_and_records_no_number(tmp_path, monkeypatch):
    import json

    from helpers import FAST, make_cfg

    from rankrobust.errors import ConfigError
    from rankrobust.pipeline import build, task

    class NaNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.full((x.shape[0], 10), float("nan")) + self.w

    monkeypatch.setattr(build, "model", lambda cfg: NaNModel())
    cfg = make_cfg(*FAST, "train=false", "model.checkpoint=random", "dataset.n_test=16",
                   "eval.n_robust=0", "sweep.enabled=false")  # fmt: skip
    with pytest.raises(ConfigError, match="logits contain NaN at 16 of 16 images"):
        task.run(cfg, tmp_path / "run")
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "failed" and "logits contain NaN" in written["error"]
    assert written["clean_acc"] is None and written["robust_acc"] is None
