"""Airbench-style CIFAR net: frozen patch-whitening stem, three conv groups, scaled linear head.

The design follows Keller Jordan's airbench94 (94% on CIFAR-10 in a few
seconds on an A100); this is an independent implementation for mlestar's
registry, at four widths:

| name          | widths (group 1/2/3) | params (3-channel, 10 classes) | fp32 weights |
|---------------|----------------------|--------------------------------|--------------|
| airbench_xs   | 16 / 64 / 64         | 0.13 M                         | 0.5 MB       |
| airbench_s    | 32 / 128 / 128       | 0.50 M                         | 2.0 MB       |
| airbench      | 64 / 256 / 256       | 1.97 M                         | 7.9 MB       |
| airbench_l    | 128 / 384 / 384      | 4.60 M                         | 18.4 MB      |

Measured on the CIFAR-10 JPEG copy (docs/benchmarks.md; test accuracy with flip+translate TTA,
trained on all 50,000 training images, 10 epochs, batch 1024, bf16, mlestar's engine):

| name       | NVIDIA H200, 5 / 3 seeds          |
|------------|-----------------------------------|
| airbench   | 90.48% +- 0.09 in 2.75 s training |
| airbench_l | 91.48% +- 0.07 in 4.17 s training |

On the 2-core development CPU (AVX2, fp32, batch 256) the widths train at about
1,130 / 430 / 180 img/s (xs / s / airbench), so a CPU budget buys a few epochs of
the narrow ones; what each pair reaches on validation is in docs/benchmarks.md.

Why each piece:
- The 2x2 stem is initialised from the eigenvectors of the training set's 2x2
  patch covariance (and their negatives), scaled to unit variance: the first
  layer starts out whitening the input, which is what a first layer learns
  slowly otherwise. Its weights stay frozen; its bias trains briefly.
- Batch norm keeps a fixed scale of 1 (only the shift trains) and a high
  momentum: fewer parameters to fit in a handful of epochs.
- The head's logits are scaled down (1/9) so the large learning rates the
  recipe uses do not saturate the softmax early.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mlestar.models.registry import register_model

HEAD_SCALE = 1 / 9     # multiplies the logits
BN_MOMENTUM = 0.4      # torch convention (weight of the new batch statistic)
BN_EPS = 1e-12
WHITEN_KERNEL = 2      # stem patch size in pixels


class FixedScaleBatchNorm(nn.BatchNorm2d):
    """Batch norm whose scale is frozen at 1; only the shift is learned."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FixedScaleBatchNorm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = FixedScaleBatchNorm(cout)
        for conv in (self.conv1, self.conv2):
            _partial_dirac(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.pool(self.conv1(x))))
        return F.gelu(self.norm2(self.conv2(x)))


def _partial_dirac(conv: nn.Conv2d) -> None:
    """Identity-initialise the first ``cin`` filters: the group starts close to passing its input on."""
    with torch.no_grad():
        n = min(conv.in_channels, conv.out_channels)
        nn.init.dirac_(conv.weight[:n])


class AirbenchNet(nn.Module):
    """whiten (frozen) -> GELU -> 3 conv groups -> global max-pool -> linear / 9."""

    def __init__(self, num_classes: int, in_channels: int, widths: tuple[int, int, int]) -> None:
        super().__init__()
        stem = 2 * in_channels * WHITEN_KERNEL**2
        self.whiten = nn.Conv2d(in_channels, stem, WHITEN_KERNEL, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(ConvGroup(stem, widths[0]), ConvGroup(widths[0], widths[1]),
                                    ConvGroup(widths[1], widths[2]))
        self.head = nn.Linear(widths[2], num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(F.gelu(self.whiten(x)))
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) * HEAD_SCALE

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to whiten 2x2 patches of ``images`` (normalized NCHW, a few thousand suffice)."""
        patches = images.float().unfold(2, WHITEN_KERNEL, 1).unfold(3, WHITEN_KERNEL, 1)
        patches = patches.transpose(1, 3).reshape(-1, images.shape[1] * WHITEN_KERNEL**2)
        patches = patches - patches.mean(0, keepdim=True)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None])
        # A patch row is laid out (channel, row, column), exactly as a conv filter is.
        filters = filters.reshape(-1, images.shape[1], WHITEN_KERNEL, WHITEN_KERNEL)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))


def _factory(widths: tuple[int, int, int]):  # type: ignore[no-untyped-def]
    def build(num_classes: int, in_channels: int, image_size: int, width: int) -> nn.Module:
        scale = width / widths[0]  # `width` rescales every group, so remedies can shrink or grow it
        return AirbenchNet(num_classes, in_channels, tuple(max(8, round(w * scale)) for w in widths))  # type: ignore[arg-type]
    return build


register_model("airbench_xs", default_width=16, min_image_size=16,
               description="airbench-style net, widths 16/64/64: for tight CPU budgets")(_factory((16, 64, 64)))
register_model("airbench_s", default_width=32, min_image_size=16,
               description="airbench-style net, widths 32/128/128: fast CPU recipe")(_factory((32, 128, 128)))
register_model("airbench", default_width=64, min_image_size=16,
               description="airbench-style net, widths 64/256/256: the airbench94 shape")(_factory((64, 256, 256)))
register_model("airbench_l", default_width=128, min_image_size=16,
               description="airbench-style net, widths 128/384/384: more accuracy, 3x the compute")(
    _factory((128, 384, 384)))
