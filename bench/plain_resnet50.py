"""ResNet-50 in plain torch.nn (no torchvision), for timing torchinfo on the same network."""

import torch.nn as nn


class Bottleneck(nn.Module):
    def __init__(self, in_c: int, c: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, 4 * c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * c)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_c != 4 * c:
            self.downsample = nn.Sequential(nn.Conv2d(in_c, 4 * c, 1, stride, bias=False), nn.BatchNorm2d(4 * c))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def resnet50() -> nn.Module:
    layers, in_c = [], 64
    stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    for c, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        blocks = [Bottleneck(in_c, c, stride)] + [Bottleneck(4 * c, c) for _ in range(n - 1)]
        in_c = 4 * c
        layers.append(nn.Sequential(*blocks))
    return nn.Sequential(*stem, *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))
