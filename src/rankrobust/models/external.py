"""Weights from outside this project: torchvision's ImageNet weights and RobustBench models.

Both are loaded offline first: torchvision weights from the torch hub cache
($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints), RobustBench models from
RobustBench's own cache (``model_dir/<dataset>/<threat_model>/<name>.pt``). Where the file is
absent, a download is tried once; without a network, a ConfigError names the file and the
folder to copy it into.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from rankrobust.errors import ConfigError

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


def _robustbench_zoo_network(name: str, dataset: str, threat_model: str) -> nn.Module:
    """The architecture of a RobustBench entry, without weights (they come from a file)."""
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    entries = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)]
    if name not in entries:
        raise KeyError(name)
    return entries[name]["model"]()


def robustbench_model(
    name: str,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    model_dir: str = "models",
    architecture_only: bool = False,
) -> nn.Module:
    """A RobustBench model zoo entry, in eval mode; it takes [0, 1] pixels (it normalises inside).

    Needs the optional extra ``robustbench`` (importable offline: `robustbench_compat`).
    RobustBench caches each model's weights at ``model_dir/<dataset>/<threat_model>/<name>.pt``
    and downloads them there when absent. ``architecture_only``: the entry's network without
    weights (for ``model.checkpoint``).
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
    cached = Path(model_dir).expanduser() / dataset / threat_model / f"{name}.pt"
    try:
        if architecture_only:
            return _robustbench_zoo_network(name, dataset, threat_model).eval()
        model = load_model(
            model_name=name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model
        )
    except KeyError as err:
        raise ConfigError(
            f"RobustBench has no model {name!r} for dataset {dataset!r} and threat model "
            f"{threat_model!r} ({err}). See the names at https://robustbench.github.io or in "
            "robustbench/model_zoo/<dataset>.py."
        ) from err
    except Exception as err:  # noqa: BLE001 - network, gdown, torch.load errors
        text = str(err).strip()
        if cached.is_file():  # the file is there: it is the file, not the network
            raise ConfigError(
                f"RobustBench could not load {name!r} ({dataset}, {threat_model}) from its "
                f"cached file {cached}: {type(err).__name__}: {text}. The file does not fit "
                f"the entry's architecture (a different model saved under this name) or is "
                "damaged: replace it with the file RobustBench publishes for this entry, or "
                "name the entry the file belongs to (model.name_rb)."
            ) from err
        raise ConfigError(
            f"RobustBench could not load {name!r} ({dataset}, {threat_model}): "
            f"{type(err).__name__}: {text.splitlines()[0] if text else ''}. "
            f"RobustBench caches weights under model.model_dir ('{model_dir}') as {cached}, "
            "and that file is absent: without network access, fetch the model on a machine "
            "that has it (python -c "
            f"\"from robustbench.utils import load_model; load_model('{name}', "
            f"model_dir='models', dataset='{dataset}', threat_model='{threat_model}')\") and "
            f"copy the .pt file to {cached}. (ImageNet 'Standard_R50' reads torchvision's "
            "weights from the torch hub cache instead.)"
        ) from err
    return model.eval()
