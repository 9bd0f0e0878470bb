"""The CIFAR-size architectures (SmallCNN, ResNetSmall with patch whitening, PreActResNet-18,
Wide ResNet); `rankrobust.models.build_model` puts the normalisation in front of them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rankrobust.errors import ConfigError

# --------------------------------------------------------------------------- small CNN


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages (widths w, 2w, 4w) with pooling; ~94k parameters at width 32."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 32):
        super().__init__()
        w = width

        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *stage(in_channels, w),
            nn.MaxPool2d(2),
            *stage(w, 2 * w),
            nn.MaxPool2d(2),
            *stage(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


# --------------------------------------------------------------------------- small ResNet


class PatchWhitening(nn.Module):
    """A fixed p x p conv that whitens image patches: its 2 C p^2 filters are +-e_i / sqrt(l_i +
    eps) for the eigenpairs (l_i, e_i) of the (uncentred) covariance of the C p^2-dimensional
    patches of the first training batch it sees (PCA whitening; the fast CIFAR-10 trainers' first
    layer, Page 2018, Jordan's airbench). Directions of small variance (fine detail) get large
    gains and the image-wide brightness direction (the largest variance) a small one. The filters
    are a buffer (saved in checkpoints, never trained); the bias is trained. Until fitted, the
    filters are zero. Input (N, C, H, W) -> (N, 2 C p^2, H - p + 1, W - p + 1)."""

    def __init__(self, in_channels: int = 3, patch: int = 2, eps: float = 5e-4):
        super().__init__()
        self.patch, self.eps = patch, eps
        dim = in_channels * patch * patch
        self.register_buffer("weight", torch.zeros(2 * dim, in_channels, patch, patch))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.bias = nn.Parameter(torch.zeros(2 * dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the filters from the patches of x (N, C, H, W), in float64 (eigh, C p^2 square)."""
        p, c = self.patch, x.shape[1]
        patches = x.detach().double().unfold(2, p, 1).unfold(3, p, 1)  # N, C, H', W', p, p
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * p * p)
        cov = patches.T @ patches / len(patches)
        values, vectors = torch.linalg.eigh(cov)  # ascending; vectors in columns
        filters = (vectors / torch.sqrt(values.clamp_min(0) + self.eps)).T.flip(0)
        filters = filters.reshape(-1, c, p, p)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight.dtype))
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not bool(self.fitted):  # the first training batch fits it
            self.fit(x)
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype))


class _PoolBlock(nn.Module):
    """conv(cin -> cout) -> 2x2 max-pool -> BN -> ReLU, then a residual conv-BN-ReLU at the
    pooled size: the second conv costs a quarter of a full-size one (why this is CPU-cheap)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return x + F.relu(self.bn2(self.conv2(x)))


class ResNetSmall(nn.Module):
    """A CPU-efficient residual net for 32 x 32 images (the demo's model): a conv-BN-ReLU stem of
    width w, then three pooling blocks of widths w, 2w, 4w (each: conv, 2x2 max-pool, BN, ReLU,
    plus a residual conv-BN-ReLU at the pooled size), global max-pool and a linear layer whose
    logits are scaled by ``logit_scale``. The layout follows the fast CIFAR-10 trainers
    (Page 2018 "How to train your ResNet"; Jordan's cifar10-airbench): pooling straight after
    the first conv of a stage keeps most of the compute at low resolution. At width 32: 298k
    parameters and about 27M multiply-adds per 32 x 32 image (small_cnn: 95k, 10M); with
    ``whiten`` (a PatchWhitening stem of 2 C 4 = 24 channels, no padding: 31 x 31) 295k and
    about 20M. ``whiten_eps`` caps the whitening gain at 1 / sqrt(eps): FGSM-RS training of the
    demo's net overfitted catastrophically at 5e-4 (PGD-20 1%) and not at 0.05 (28%)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 32,
        logit_scale: float = 0.125,
        whiten: bool = False,
        whiten_eps: float = 5e-4,
    ):
        super().__init__()
        if width < 1:
            raise ConfigError(f"resnet_small needs width >= 1; got width={width}.")
        w = width
        if whiten:  # a fixed 2 x 2 patch-whitening conv (24 channels for RGB) instead of a conv
            self.stem = nn.Sequential(PatchWhitening(in_channels, 2, whiten_eps), nn.ReLU())
            first = 2 * in_channels * 4
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()
            )
            first = w
        self.blocks = nn.Sequential(
            _PoolBlock(first, w), _PoolBlock(w, 2 * w), _PoolBlock(2 * w, 4 * w)
        )
        self.fc = nn.Linear(4 * w, num_classes, bias=False)
        self.logit_scale = float(logit_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x))
        out = F.adaptive_max_pool2d(out, 1).flatten(1)
        return self.fc(out) * self.logit_scale


# --------------------------------------------------------------------------- PreActResNet-18


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """The standard CIFAR PreActResNet-18 (He et al. 2016; as in Wong et al. 2020, Rice et al.)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        layers, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(
                nn.Sequential(PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes))
            )
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


# --------------------------------------------------------------------------- Wide ResNet


class WideBasicBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes and stride == 1
        self.shortcut: nn.Module | None = None
        if not self.equal_in_out:
            self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # As in the reference WRN: a projection shortcut takes the pre-activated input.
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = F.relu(self.bn2(self.conv1(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + shortcut


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko & Komodakis 2016), CIFAR layout: widths 16, 16k, 32k, 64k."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        depth: int = 28,
        widen_factor: int = 10,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0 or widen_factor < 1:
            raise ConfigError(
                f"wide_resnet needs depth = 6n + 4 with n >= 1 (10, 16, 22, 28, 34, ...) and "
                f"widen_factor >= 1; got depth={depth}, widen_factor={widen_factor}."
            )
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        blocks = []
        for i, stride in enumerate((1, 2, 2)):
            cin, cout = widths[i], widths[i + 1]
            blocks.append(
                nn.Sequential(
                    *[
                        WideBasicBlock(
                            cin if j == 0 else cout, cout, stride if j == 0 else 1, drop_rate
                        )
                        for j in range(n)
                    ]
                )
            )
        self.block1, self.block2, self.block3 = blocks
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)
