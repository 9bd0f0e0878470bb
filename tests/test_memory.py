"""Gradient batches sized from the memory available (rankrobust.attribution.memory): known image
sizes and known memory give known batches."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from rankrobust.attribution.memory import (
    activation_bytes,
    available_bytes,
    fit_batch,
    gradient_batch_size,
)
from rankrobust.errors import ConfigError

MB, GB = 2**20, 2**30


def test_fit_batch_known_answers():
    assert fit_batch(256, 100 * MB, 10 * GB) == 51  # half of 10 GB in 100 MB images
    assert fit_batch(256, 100 * MB, 10 * GB, share=1.0) == 102
    assert fit_batch(16, 100 * MB, 10 * GB) == 16  # never more than asked
    assert fit_batch(256, 100 * MB, 10 * MB) == 1  # one image is the least a pass takes


def test_activation_bytes_counts_every_layer_output():
    """conv (8 x 10 x 10) + ReLU (8 x 10 x 10) float32 outputs: 2 x 800 x 4 bytes per image."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).train()
    assert activation_bytes(model, (3, 10, 10)) == 6400
    assert model.training  # its mode is restored
    assert gradient_batch_size(model, (3, 10, 10), 256, available=64000) == 5


def test_resnet50_at_224px_on_a_24gb_machine_gets_a_batch_that_fits():
    """ResNet-50 keeps ~106 MB per 224px image in a backward pass (measured): the default batch
    of 256 (~27 GB) is cut to what half of 24 GB holds; 32px images keep the whole batch."""
    net = torchvision.models.resnet50(num_classes=1000).eval()
    per_image = activation_bytes(net, (3, 224, 224))
    assert 100 * MB < per_image < 150 * MB
    batch = gradient_batch_size(net, (3, 224, 224), 256, available=24 * GB)
    assert batch == (12 * GB) // per_image and 70 <= batch <= 110
    assert gradient_batch_size(net, (3, 32, 32), 256, available=24 * GB) == 256


def test_available_memory_is_read_and_bad_arguments_name_themselves():
    assert 0 < available_bytes("cpu") and 0 < available_bytes(torch.device("cpu"))
    with pytest.raises(ConfigError, match="requested"):
        fit_batch(0, MB, GB)
    with pytest.raises(ConfigError, match="per_image_bytes"):
        fit_batch(8, 0, GB)
    with pytest.raises(ValueError, match="share"):
        fit_batch(8, MB, GB, share=0.0)
