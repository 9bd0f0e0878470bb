"""Per-image records: the sweeps' predictions behind their accuracies, the test-set indices that
pair two runs, per_image.npz's reader, and a CLI run writing it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import FAST, run_cli
from PIL import Image
from test_evaluate import tiny_model

from rankrobust import runs
from rankrobust.evaluate import basis_sweep, rank_sweep
from rankrobust.pipeline.datamodule import ImageDataModule
from rankrobust.results import write_metrics
from rankrobust.runs import Outcomes

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n: int = 23) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_sweeps_per_image_predictions_give_the_same_accuracies():
    model = tiny_model().eval()
    x, y = _data()
    plain = rank_sweep(model, x, y, [1, 4, 8], batch_size=5)
    found = rank_sweep(model, x, y, [1, 4, 8], batch_size=5, per_image=True)
    assert found.accuracies() == plain  # exactly: count / n
    low = found.outcomes["low"]
    assert low.pred.shape == (3, 23) and low.ks.tolist() == [1, 4, 8]
    assert low.index.tolist() == list(range(23)) and np.array_equal(low.label, y.numpy())
    full = model(x).argmax(1).numpy()  # k = full rank: the images themselves
    assert np.array_equal(low.at(8).pred, full)
    plain_b = basis_sweep(model, x, y, "fourier", [0, 2], batch_size=7)
    found_b = basis_sweep(model, x, y, "fourier", [0, 2], batch_size=7, per_image=True)
    assert found_b.accuracies() == plain_b and found_b.outcomes["high"].pred.shape == (2, 23)


def test_outcomes_check_their_arrays():
    o = Outcomes(
        np.arange(3), np.array([0, 1, 2]), np.array([[0, 1, 1], [2, 1, 2]]), np.array([1, 4])
    )
    assert o.accuracy() == {1: 2 / 3, 4: 2 / 3} and o.at(4).correct.tolist() == [False, True, True]
    with pytest.raises(KeyError, match="k=2 was not measured"):
        o.at(2)
    with pytest.raises(ValueError, match="pred: expected shape"):
        Outcomes(np.arange(3), np.zeros(3, int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="label: expected integers"):
        Outcomes(np.arange(3), np.zeros(3), np.zeros(3, int))


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"clean.index": np.arange(3), "clean.label": np.zeros(3, int)}, "lacks clean.pred"),
        ({"clean.index": np.arange(3), "clean.label": np.zeros(3), "clean.pred": np.zeros(3, int)},
         "expected integers"),
        ({"clean.index": np.arange(3), "clean.label": np.zeros(2, int),
          "clean.pred": np.zeros(3, int)}, "must be"),
        ({"clean": np.arange(3)}, "is not <group>"),
        ({"clean.index": np.array([object()] * 3, dtype=object)}, "cannot be read"),
    ],
)  # fmt: skip
def test_a_malformed_record_is_a_clear_error(tmp_path, arrays, message):
    path = tmp_path / "per_image.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as err:
        runs.read_per_image(path)
    assert str(path) in str(err.value)


def test_not_an_npz_and_a_missing_record(tmp_path):
    (tmp_path / "per_image.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="cannot be read as an npz"):
        runs.read_per_image(tmp_path)  # the run folder: its per_image.npz
    with pytest.raises(FileNotFoundError):
        runs.read_per_image(tmp_path / "other.npz")


def test_a_run_without_a_record_says_so(tmp_path):
    config = dict.fromkeys(["dataset", "model", "attack", "rank", "seed"])
    metrics = {"status": "ok", "clean_acc": 0.5, "robust_acc": 0.1, "config": config}
    write_metrics(tmp_path, {**metrics, "timings": {}})
    with pytest.raises(FileNotFoundError, match="has no per-image record"):
        runs.per_image(tmp_path)
    write_metrics(tmp_path, {**metrics, "timings": {}, "per_image": "../elsewhere.npz"})
    with pytest.raises(ValueError, match="per_image='../elsewhere.npz' is not the name of a file"):
        runs.per_image(tmp_path)


def test_records_round_trip_without_pickle(tmp_path):
    groups = {
        "clean": Outcomes(np.array([4, 9]), np.array([1, 2]), np.array([1, 0])),
        "rank_sweep.low": Outcomes(
            np.array([4]), np.array([1]), np.array([[1], [3]]), np.array([1, 32])
        ),
    }
    runs.write_per_image(tmp_path / "per_image.npz", groups)
    with np.load(tmp_path / "per_image.npz", allow_pickle=False) as z:
        assert sorted(z.files)[0] == "clean.index"
    back = runs.read_per_image(tmp_path / "per_image.npz")
    assert back.keys() == groups.keys()
    for name, o in groups.items():
        assert np.array_equal(back[name].pred, o.pred) and np.array_equal(back[name].index, o.index)
    assert not list(tmp_path.glob("*.tmp"))


def _folder(root, n_per_class: int = 6) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("cat", "dog", "emu"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n_per_class):
                pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")


@pytest.mark.parametrize("in_memory", [True, False])
def test_test_index_names_the_images_in_the_full_test_split(tmp_path, monkeypatch, in_memory):
    """dataset.n_test picks a subset; the index is the position in the whole test split, so two
    runs on the same data pair image by image, in memory or streamed alike."""
    monkeypatch.setenv("RANKROBUST_CACHE", str(tmp_path / "cache"))
    tmp_path = tmp_path / "data"
    _folder(tmp_path)
    common = dict(root=str(tmp_path), image_size=16, num_classes=3, augment=False, seed=3)
    full = ImageDataModule("image_folder", in_memory=True, **common)
    full.setup("test")
    dm = ImageDataModule("image_folder", in_memory=in_memory, n_test=11, **common)
    dm.setup("test")
    for n, seed in ((None, None), (5, None), (4, 7)):
        x, y = dm.test_tensors(raw=True, n=n, seed=seed)
        index = dm.test_index(n=n, seed=seed)
        assert len(index) == len(y) == (n or 11) and len(set(index.tolist())) == len(index)
        assert torch.equal(full.raw_test_set.labels[index], y)
        assert torch.allclose(full.raw_test_set.images[index], x, atol=1e-6)


def test_a_run_writes_its_per_image_record_and_it_gives_metrics_accuracies(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        *FAST, "trainer.max_epochs=1", "++trainer.limit_train_batches=2", "dataset.n_test=60",
        "eval.n_robust=7", "sweep.n_images=30", "sweep.robust=true", "sweep.n_robust=6",
        "sweep.ranks=[2,32]", "sweep.bases=[fourier]", "analysis.perturbation_spectrum=false",
        f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["per_image"] == "per_image.npz"
    found = runs.per_image(run_dir)
    sizes = {name: o.n for name, o in found.items()}
    assert sizes == {"clean": 60, "robust": 7, "rank_sweep.low": 30, "rank_sweep.high": 30,
                     "rank_sweep.low_robust": 6, "rank_sweep.high_robust": 6,
                     "basis_sweep.fourier.low": 30, "basis_sweep.fourier.high": 30}  # fmt: skip
    assert found["clean"].accuracy() == pytest.approx(metrics["clean_acc"], abs=1e-6)
    assert found["robust"].accuracy() == pytest.approx(metrics["robust_acc"], abs=1e-6)
    for mode, accs in metrics["rank_sweep"].items():
        assert found[f"rank_sweep.{mode}"].accuracy() == {int(k): v for k, v in accs.items()}
    for mode in ("low", "high"):
        want = {int(k): v for k, v in metrics["basis_sweep"]["fourier"][mode].items()}
        assert found[f"basis_sweep.fourier.{mode}"].accuracy() == want
    # the sweep's images are test images: their labels and full-rank predictions are the test's
    clean, low = found["clean"], found["rank_sweep.low"]
    at = {int(i): p for p, i in enumerate(clean.index)}
    where = [at[int(i)] for i in low.index]
    assert np.array_equal(clean.label[where], low.label)
    assert np.array_equal(clean.pred[where], low.at(32).pred)
