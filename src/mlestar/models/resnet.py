"""CIFAR-style ResNet-18 (He et al. 2016, as adapted for 32x32 images by kuangliu's and Page's CIFAR code).

A 3x3 stem without max-pooling keeps the full 32x32 resolution for the first
stage; four stages of two basic blocks each (widths 64/128/256/512 at the
default ``width=64``, strides 1/2/2/2), global average pooling and a linear
head. 11.2 M parameters, 1.11 GFLOPs per 32x32 image, 44.7 MB in fp32
(``mlestar models`` measures all three): the "textbook" model the MLE-Star
walkthrough trains for hours, kept for comparison with the airbench nets,
which reach more accuracy per second (docs/benchmarks.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mlestar.models.registry import register_model

STAGE_MULTIPLIERS = (1, 2, 4, 8)  # stage widths as multiples of ``width``
STAGE_STRIDES = (1, 2, 2, 2)
BLOCKS_PER_STAGE = 2              # ResNet-18: 2 basic blocks x 4 stages x 2 convs + stem + head = 18 layers


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a shortcut (1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        nn.init.zeros_(self.bn2.weight)  # each block starts as the identity: deep nets train from step one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """stem -> 4 stages x 2 basic blocks -> global average pool -> linear."""

    def __init__(self, num_classes: int, in_channels: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        cin = width
        for multiplier, stride in zip(STAGE_MULTIPLIERS, STAGE_STRIDES):
            cout = width * multiplier
            for i in range(BLOCKS_PER_STAGE):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model("resnet18", default_width=64, min_image_size=8,
                description="CIFAR-style ResNet-18 (3x3 stem, no max-pool): the textbook baseline")
def resnet18(num_classes: int, in_channels: int, image_size: int, width: int) -> nn.Module:
    return ResNet18(num_classes, in_channels, width)
