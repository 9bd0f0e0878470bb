"""model.checkpoint: checkpoints and plain state dicts round trip; bad files fail clearly."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import pytest
import torch
from helpers import FAST, make_cfg

from rankrobust.errors import ConfigError
from rankrobust.models import build_model
from rankrobust.models.checkpoints import load_weights, read_state_dict
from rankrobust.pipeline import checks, task

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
# A tiny, fast run: 800 synthetic 16x16 training images, 3 epochs, no robust test, no sweep.
TINY = [
    *FAST,
    "dataset.image_size=16",
    "dataset.n_train=800",
    "dataset.batch_size=50",
    "dataset.n_test=200",
    "trainer.max_epochs=3",
    "eval.n_robust=0",
    "sweep.enabled=false",
]


class Untrusted:
    """Any class that is not a tensor or a plain container: refused by weights_only=True."""

    def __init__(self):
        self.payload = torch.ones(2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """A smoke run's directory and metrics (trained once for this module)."""
    run_dir = tmp_path_factory.mktemp("trained")
    metrics = task.run(make_cfg(*TINY), run_dir)
    return run_dir, metrics


def _eval(ckpt, run_dir, *extra):
    cfg = make_cfg(*TINY, "train=false", f"model.checkpoint={ckpt}", *extra)
    return task.run(cfg, run_dir)


def test_lightning_checkpoint_round_trip_gives_the_same_accuracy(trained, tmp_path):
    run_dir, metrics = trained
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and metrics["clean_acc"] > 0.2
    again = _eval(ckpt, tmp_path)
    assert again["status"] == "ok" and "fit" not in again["timings"]
    assert again["clean_acc"] == pytest.approx(metrics["clean_acc"], abs=1e-6)
    assert again["config"]["weights"] == f"checkpoint:{ckpt}"
    assert json.loads((tmp_path / "metrics.json").read_text())["checkpoint"] == str(ckpt)


def test_plain_and_bare_network_state_dicts_load_the_same_weights(trained, tmp_path):
    run_dir, metrics = trained
    state = read_state_dict(run_dir / "checkpoints" / "last.ckpt")
    assert set(state) >= {"normalize.mean", "normalize.std"}
    model = build_model("small_cnn", 10, MEAN, STD)
    load_weights(model, run_dir / "checkpoints" / "last.ckpt")

    whole = tmp_path / "whole.pt"
    torch.save(model.state_dict(), whole)
    bare = tmp_path / "bare.pt"  # torchvision style: the network alone, no Normalize keys
    torch.save(model.net.state_dict(), bare)
    wrapped = tmp_path / "dataparallel.pt"  # nn.DataParallel / DDP: "module." prefix
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, wrapped)
    old_bn = tmp_path / "old_bn.pt"  # checkpoints from before BatchNorm counted its steps
    torch.save(
        {k: v for k, v in model.net.state_dict().items() if "num_batches_tracked" not in k}, old_bn
    )
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        expected = model.eval()(x)
        for path in (whole, bare, wrapped, old_bn):
            other = load_weights(build_model("small_cnn", 10, MEAN, STD), path).eval()
            torch.testing.assert_close(other(x), expected)
    # and through the pipeline: the bare network's state dict gives the trained accuracy
    again = _eval(bare, tmp_path / "bare_run")
    assert again["clean_acc"] == pytest.approx(metrics["clean_acc"], abs=1e-6)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_weights(build_model("small_cnn", 10, MEAN, STD), tmp_path / "nope.ckpt")
    with pytest.raises(ConfigError, match="does not exist"):
        checks.check_config(make_cfg(*TINY, f"model.checkpoint={tmp_path / 'nope.ckpt'}"))


def _truncated(path):
    torch.save({"w": torch.ones(100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.write_bytes(os.urandom(2000)), id="random-bytes"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(lambda p: p.write_text("not a checkpoint\n"), id="text"),
        pytest.param(_truncated, id="truncated"),
        pytest.param(lambda p: zipfile.ZipFile(p, "w").close(), id="empty-zip"),
    ],
)
def test_corrupt_checkpoint(tmp_path, make):
    path = tmp_path / "bad.ckpt"
    make(path)
    with pytest.raises(ConfigError, match="corrupt, truncated or not a file written by torch.save"):
        read_state_dict(path)


class Payload:
    """A pickle that would run a shell command when unpickled without weights_only."""

    def __reduce__(self):
        return (os.system, ("true",))


def _assert_refused(path, global_name):
    with pytest.raises(ConfigError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert f"global {global_name}" in message
    assert "not loaded: it holds Python objects beyond tensors" in message
    assert "re-save only the weights" in message and "torch.save(model.state_dict()" in message
    assert "corrupt" not in message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no torch advice


def test_untrusted_pickle_is_refused_and_names_the_class(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "extra": Untrusted()}, path)
    _assert_refused(path, f"{__name__}.Untrusted")


@pytest.mark.parametrize("write", ["torch.save", "pickle-protocol-2"])
def test_malicious_pickle_is_refused_and_names_the_global(tmp_path, write):
    # torch words a blocked module "unsupported GLOBAL posix.system whose module posix is
    # blocked": the message must name that global and call the file unsafe, not corrupt, and
    # must not pass on torch's hint to load it with weights_only=False.
    path = tmp_path / "payload.ckpt"
    if write == "torch.save":
        torch.save({"state_dict": {"w": torch.ones(1)}, "payload": Payload()}, path)
    else:
        path.write_bytes(pickle.dumps({"state_dict": Payload()}, protocol=2))
    _assert_refused(path, f"{os.system.__module__}.system")


def test_corrupt_message_drops_torchs_weights_only_advice(tmp_path):
    path = tmp_path / "payload.pkl"  # a protocol-5 pickle: torch's unpickler fails on an opcode
    path.write_bytes(pickle.dumps(Payload(), protocol=5))
    with pytest.raises(ConfigError, match="not a file written by torch.save") as info:
        read_state_dict(path)
    assert "weights_only" not in str(info.value) and "Unsupported operand" in str(info.value)


def test_file_without_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.ones(1), 3], path)
    with pytest.raises(ConfigError, match="holds no state dict of tensors"):
        read_state_dict(path)


def test_mismatched_keys_are_named(tmp_path):
    path = tmp_path / "preact.pt"
    torch.save(build_model("preact_resnet18", 10, MEAN, STD).state_dict(), path)
    with pytest.raises(ConfigError, match="does not fit the model") as info:
        load_weights(build_model("small_cnn", 10, MEAN, STD), path)
    message = str(info.value)
    assert "missing keys ['net.features.0.weight'" in message
    assert "unexpected keys ['net.conv1.weight'" in message


def test_mismatched_shapes_are_named(tmp_path):
    path = tmp_path / "five.pt"
    torch.save(build_model("small_cnn", 5, MEAN, STD).state_dict(), path)
    with pytest.raises(
        ConfigError, match=r"shape mismatch at net.fc.weight: checkpoint \(5, 128\)"
    ):
        load_weights(build_model("small_cnn", 10, MEAN, STD), path)


def test_mismatched_checkpoint_fails_the_run_with_a_failed_metrics_file(tmp_path):
    path = tmp_path / "five.pt"
    torch.save(build_model("small_cnn", 5, MEAN, STD).state_dict(), path)
    with pytest.raises(ConfigError, match="shape mismatch"):
        _eval(path, tmp_path / "run")
    failed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert failed["status"] == "failed" and "shape mismatch" in failed["error"]
