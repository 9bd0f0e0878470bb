"""Weights from outside this project: torchvision's ImageNet weights and RobustBench models.

Both are loaded offline first: torchvision weights from the torch hub cache
($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints), RobustBench models from
RobustBench's own cache (``model_dir/<dataset>/<threat_model>/<name>.pt``). Where the file is
absent, a download is tried once; without a network, a ConfigError names the file and the
folder to copy it into.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.models.checkpoints import (
    KeyFit,
    check_checkpoint_path,
    key_fit,
    load_error_reason,
    read_checkpoint,
)

log = logging.getLogger("rankrobust")

__all__ = [
    "ROBUSTBENCH_CLASSES",
    "robustbench_compat",
    "TORCHVISION_ALIASES",
    "robustbench_model",
    "torchvision_cache_file",
    "torchvision_state_dict",
]

# model.pretrained=<alias> -> the torchvision weights enum member.
TORCHVISION_ALIASES = {"imagenet": "IMAGENET1K_V1", "true": "IMAGENET1K_V1"}
ROBUSTBENCH_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
ROBUSTBENCH_THREATS = ("Linf", "L2", "corruptions")
ROBUSTBENCH_PIP = "pip install '.[robustbench]'  (or: pip install robustbench==1.1.1)"


def _weights(arch: str, pretrained: str):
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    key = TORCHVISION_ALIASES.get(str(pretrained).lower(), str(pretrained))
    key = key.split(".")[-1]  # "ResNet50_Weights.IMAGENET1K_V1" -> "IMAGENET1K_V1"
    if key not in enum.__members__:
        raise ConfigError(
            f"model.pretrained={pretrained!r} is not a torchvision weight set of {arch}: use "
            f"'imagenet' (= IMAGENET1K_V1, the natural model of the paper) or one of "
            f"{', '.join(enum.__members__)}."
        )
    return enum[key]


def torchvision_cache_file(arch: str, pretrained: str) -> Path:
    """Where torch hub keeps the weights, e.g. ~/.cache/torch/hub/checkpoints/resnet50-….pth."""
    url = _weights(arch, pretrained).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def torchvision_state_dict(arch: str, pretrained: str) -> dict[str, torch.Tensor]:
    """The state dict of torchvision's ``arch`` weights ``pretrained`` ("imagenet", ...).

    Read from the torch hub cache (weights_only=True); downloaded there first when absent and a
    network is reachable, else a ConfigError naming the file and where to put it.
    """
    weights = _weights(arch, pretrained)
    path = torchvision_cache_file(arch, pretrained)
    if not path.is_file():
        try:
            torch.hub.load_state_dict_from_url(
                weights.url, progress=False, check_hash=True, weights_only=True
            )
        except Exception as err:  # noqa: BLE001 - URLError, HTTPError, timeouts, hash errors
            raise ConfigError(
                f"torchvision weights {weights} for {arch} are not cached and could not be "
                f"downloaded ({type(err).__name__}: {err}). Download {weights.url} on a machine "
                f"with network access and copy the file to {path} (the torch hub cache: "
                "$TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints), or give "
                "its path as model.checkpoint=<file> instead of model.pretrained."
            ) from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise ConfigError(
            f"The cached torchvision weights {path} could not be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Delete the file and copy a fresh "
            f"one from {weights.url}."
        ) from err
    if not isinstance(state, dict):
        raise ConfigError(f"The cached torchvision weights {path} hold no state dict.")
    return state


def robustbench_compat() -> None:
    """Make robustbench 1.1.1 importable on a fresh install, offline.

    robustbench imports ``autoattack`` (Croce & Hein's package, installed from GitHub, on no
    registry); the registry's ``pyautoattack`` is the same code under another module name, so
    ``autoattack`` and its submodules are aliased to it. robustbench also imports
    ``pkg_resources``, which setuptools >= 81 no longer ships: where it is absent, a stand-in
    with the one function robustbench calls (``resource_filename``) is provided. Nothing is
    replaced when the real module imports.
    """
    import importlib
    import sys
    import types

    try:
        importlib.import_module("autoattack")
    except ImportError:
        try:
            real = importlib.import_module("pyautoattack")
        except ImportError:
            real = None
        if real is not None:
            sys.modules["autoattack"] = real
            for sub in ("autoattack", "state", "autopgd_base", "fab_pt", "square", "other_utils",
                        "checks", "fab_base", "fab_projections"):  # fmt: skip
                try:
                    sys.modules[f"autoattack.{sub}"] = importlib.import_module(
                        f"pyautoattack.{sub}"
                    )
                except ImportError:
                    pass
    try:
        importlib.import_module("pkg_resources")
    except ImportError:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package: str, resource: str) -> str:
            from importlib.resources import files

            return str(files(package) / resource)

        shim.resource_filename = resource_filename
        sys.modules["pkg_resources"] = shim


# Constants RobustBench's networks set in their constructors (input normalisers), never held by
# its weight files: the one kind of key a file may lack (RobustBench's load tolerates them too).
RB_CONSTANTS = ("mu", "sigma", "mean", "std", "normalize.mean", "normalize.std")
# Tensors some files RobustBench publishes carry for parts its network of the entry has not (an
# auxiliary head; the pruning scores of an already pruned network): skipped, and said so.
RB_UNUSED = re.compile(r"^model_preact_hl1\.|(^|\.)scores$")


class _Misfit(Exception):
    """A RobustBench weights file that does not fit its entry's network (a `KeyFit`)."""

    def __init__(self, fit: KeyFit):
        super().__init__(fit.describe())
        self.fit = fit


def _load_strictly(model: nn.Module, model_name: str, state_dict: dict, dataset_=None):
    """RobustBench's `_safe_load_state_dict` made strict: every weight of ``model`` comes from
    ``state_dict`` and every tensor of it has a place (`checkpoints.key_fit`).

    Allowed: the constructor's constants (`RB_CONSTANTS`, buffers only) absent from the file, or
    present under RobustBench's added "model." prefix (a saved whole model) when equal to the
    model's own; the known unused parts (`RB_UNUSED`), skipped with a log line. RobustBench
    itself loads with strict=False whenever one known message shows, whatever else is missing,
    so a wrong file ran with random weights. Raises _Misfit.
    """
    own = model.state_dict()
    optional = tuple(k for k, _ in model.named_buffers() if k in RB_CONSTANTS)

    def skippable(key: str, value) -> bool:
        if key in own:
            return False
        bare = key.removeprefix("model.")  # RobustBench adds "model." to ImageNet files' keys
        twin = own[bare] if bare in optional else None
        if twin is not None and isinstance(value, torch.Tensor):
            return value.shape == twin.shape and torch.equal(value.to(twin.device), twin)
        return bool(RB_UNUSED.search(key))

    skipped = [k for k, v in state_dict.items() if skippable(k, v)]
    state = {k: v for k, v in state_dict.items() if k not in skipped}
    fit = key_fit(own, state, optional)
    if not fit.ok:
        raise _Misfit(fit)
    if skipped:
        log.info("[rankrobust] RobustBench %s: %d tensor(s) its network does not use skipped "
                 "(equal copies of its constants, or known unused parts), e.g. %s", model_name,
                 len(skipped), skipped[:3])  # fmt: skip
    model.load_state_dict(state, strict=False)  # what is absent: the constants above
    return model


@contextlib.contextmanager
def _strict_robustbench_loads():
    """RobustBench's loader, with `_load_strictly` for its lenient state dict load."""
    import robustbench.utils as rb_utils

    original = getattr(rb_utils, "_safe_load_state_dict", None)
    rb_utils._safe_load_state_dict = _load_strictly
    try:
        yield
    finally:
        rb_utils._safe_load_state_dict = original


@contextlib.contextmanager
def _cache_of(checkpoint: Path, dataset: str, threat_model: str, name: str):
    """A temporary RobustBench cache holding only ``checkpoint`` as the entry's file, so a file
    given as model.checkpoint is read exactly as RobustBench reads its own cache."""
    with tempfile.TemporaryDirectory(prefix="rankrobust-rb-") as tmp:
        link = Path(tmp) / dataset / threat_model / f"{name}.pt"
        link.parent.mkdir(parents=True)
        try:
            link.symlink_to(checkpoint.resolve())
        except OSError:  # no symlinks here (some file systems, Windows without the right)
            shutil.copyfile(checkpoint, link)
        yield tmp


def _robustbench_entry(name: str, dataset: str, threat_model: str) -> dict:
    """RobustBench's zoo entry {"model": constructor, "gdrive_id": str | list, ...}; KeyError."""
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)][name]


def _check_entry_takes_a_file(entry: dict, name: str, dataset: str, path: Path) -> None:
    """model.checkpoint needs an entry whose weights are one file RobustBench reads."""
    if isinstance(entry.get("gdrive_id"), list):
        raise ConfigError(
            f"model.checkpoint '{path}': RobustBench entry {name!r} is an ensemble of "
            f"{len(entry['gdrive_id'])} networks, each in its own file ({name}.pt_m0.pt, ...), "
            "so one file cannot hold it. Put the files in model.model_dir/<rb_dataset>/"
            "<threat_model>/ and leave model.checkpoint unset."
        )
    if dataset == "imagenet" and "Standard" in name:
        raise ConfigError(
            f"model.checkpoint '{path}': RobustBench's {name!r} reads torchvision's weights, "
            "never a file. For a ResNet-50 state dict use model=resnet50 (or model=torchvision "
            "model.arch=...) with model.checkpoint=<file>."
        )


def _misfit_error(err: _Misfit, name: str, dataset: str, threat_model: str, path: Path,
                  given: bool) -> ConfigError:  # fmt: skip
    key = "model.checkpoint" if given else "RobustBench's cached file"
    hint = ""
    with contextlib.suppress(Exception):  # only a hint: the file's layout, if it has one
        if read_checkpoint(path).layout == "madrylab":
            hint = (" It is a MadryLab robustness checkpoint: load it with "
                    "model=imagenet_madrylab_r50 model.checkpoint=<file>.")  # fmt: skip
    return ConfigError(
        f"{key} {path} does not fit RobustBench entry {name!r} ({dataset}, {threat_model}): "
        f"{err.fit.describe()}. Nothing is loaded with random weights in their place: replace "
        "the file with the one RobustBench publishes for this entry, or name the entry the "
        f"file belongs to (model.name_rb).{hint}"
    )


def robustbench_model(
    name: str,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: str = "models",
    architecture_only: bool = False,
    checkpoint: str | Path | None = None,
) -> nn.Module:
    """A RobustBench model zoo entry, in eval mode; it takes [0, 1] pixels (it normalises inside).

    Needs the optional extra ``robustbench`` (importable offline: `robustbench_compat`).
    RobustBench caches each model's weights at ``model_dir/<dataset>/<threat_model>/<name>.pt``
    and downloads them there when absent; ``checkpoint`` (a path) is read instead of that file,
    the same way. RobustBench's own key handling is kept (a "state_dict" around the weights,
    "module." / "model." prefixes), but the load is strict (`_load_strictly`): a file that does
    not fit the entry is a ConfigError naming the missing / unexpected keys and shapes, never a
    network with random weights. ``architecture_only``: the entry's network, random weights.
    Raises ConfigError (unknown entry, missing extra, absent / corrupt / misfitting file).
    """
    if not name or name == "???":
        raise ConfigError(
            "model=robustbench needs model.name_rb, a RobustBench model zoo name such as "
            "Standard or Carmon2019Unlabeled (cifar10, Linf) or Salman2020Do_R50 (imagenet, Linf)."
        )
    if dataset not in ROBUSTBENCH_CLASSES:
        raise ConfigError(
            f"model.rb_dataset={dataset!r}: RobustBench datasets are "
            f"{', '.join(ROBUSTBENCH_CLASSES)}."
        )
    if threat_model not in ROBUSTBENCH_THREATS:
        raise ConfigError(
            f"model.threat_model={threat_model!r}: RobustBench threat models are "
            f"{', '.join(ROBUSTBENCH_THREATS)}."
        )
    robustbench_compat()
    try:
        from robustbench.utils import load_model
    except ImportError as err:
        raise ConfigError(
            f"model=robustbench needs the optional RobustBench extra, which is not installed "
            f"({err}). Install it with: {ROBUSTBENCH_PIP}."
        ) from err
    given = Path(checkpoint).expanduser() if checkpoint else None
    cached = given or Path(model_dir).expanduser() / dataset / threat_model / f"{name}.pt"
    try:
        if architecture_only:
            return _robustbench_entry(name, dataset, threat_model)["model"]().eval()
        if given is not None:
            check_checkpoint_path(given)
            _check_entry_takes_a_file(_robustbench_entry(name, dataset, threat_model), name,
                                      dataset, given)  # fmt: skip
        with contextlib.ExitStack() as stack:
            stack.enter_context(_strict_robustbench_loads())
            folder = str(model_dir)
            if given is not None:
                folder = stack.enter_context(_cache_of(given, dataset, threat_model, name))
            model = load_model(model_name=name, model_dir=folder, dataset=dataset,
                               threat_model=threat_model)  # fmt: skip
    except ConfigError:
        raise
    except KeyError as err:
        raise ConfigError(
            f"RobustBench has no model {name!r} for dataset {dataset!r} and threat model "
            f"{threat_model!r} ({err}). See the names at https://robustbench.github.io or in "
            "robustbench/model_zoo/<dataset>.py."
        ) from err
    except _Misfit as err:
        raise _misfit_error(err, name, dataset, threat_model, cached, given is not None) from None
    except Exception as err:  # noqa: BLE001 - network, gdown, torch.load errors
        if cached.is_file():  # the file is there: it is the file, not the network
            raise ConfigError(
                f"RobustBench could not load {name!r} ({dataset}, {threat_model}) from "
                f"{'model.checkpoint' if given else 'its cached file'} {cached}: "
                f"{type(err).__name__}: {load_error_reason(err)[:300]}. The file is damaged, "
                "truncated or not a file written by torch.save: replace it with the file "
                "RobustBench publishes for this entry."
            ) from err
        text = str(err).strip()
        raise ConfigError(
            f"RobustBench could not load {name!r} ({dataset}, {threat_model}): "
            f"{type(err).__name__}: {text.splitlines()[0] if text else ''}. "
            f"RobustBench caches weights under model.model_dir ('{model_dir}') as {cached}, "
            "and that file is absent: without network access, fetch the model on a machine "
            "that has it (python -m rankrobust.zoo.download --model-dir models --dataset "
            f"{dataset} --threat-model {threat_model} {name}) and "
            f"copy the .pt file to {cached}. (ImageNet 'Standard_R50' reads torchvision's "
            "weights from the torch hub cache instead.)"
        ) from err
    return model.eval()
