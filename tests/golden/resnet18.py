"""ResNet, compiled by udnet from resnet.ud.

Parameters: depth=18, layers=[], kind='', classes=1000, input=[3, 224, 224].
Input: [N, 3, 224, 224] -> output: [N, 1000]; 11,689,512 parameters.
Standalone: this file needs only torch.
"""

from torch import nn


def init_weight(weight, kind):
    if kind == "kaiming_normal":
        nn.init.kaiming_normal_(weight)
    elif kind == "kaiming_uniform":
        nn.init.kaiming_uniform_(weight)
    elif kind == "xavier_normal":
        nn.init.xavier_normal_(weight)
    elif kind == "xavier_uniform":
        nn.init.xavier_uniform_(weight)
    elif kind == "normal":
        nn.init.normal_(weight, std=0.01)
    elif kind == "zeros":
        nn.init.zeros_(weight)


def conv2d(
    in_channels,
    out_channels,
    kernel_size,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    bias=False,
    weight_init="kaiming_normal",
    bias_init=0.0,
):
    """nn.Conv2d initialised as the spec says."""
    conv = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
    )
    init_weight(conv.weight, weight_init)
    if conv.bias is not None:
        nn.init.constant_(conv.bias, bias_init)
    return conv


def linear(in_features, out_features, bias=True, weight_init="default", bias_init=0.0):
    """nn.Linear initialised as the spec says."""
    fc = nn.Linear(in_features, out_features, bias)
    init_weight(fc.weight, weight_init)
    if fc.bias is not None:
        nn.init.constant_(fc.bias, bias_init)
    return fc


class GlobalAvgPool(nn.Module):
    """Mean over the spatial dimensions: [N, C, H, W] -> [N, C] (or [N, C, 1, 1])."""

    def __init__(self, keep=False):
        super().__init__()
        self.keep = keep

    def forward(self, x):
        return x.mean((2, 3), keepdim=self.keep)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). The first carries the stage's stride."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.conv1 = conv2d(in_channels, planes, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu_1 = nn.ReLU(inplace=True)
        self.conv2 = conv2d(planes, planes, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_channels != planes:
            self.downsample = Downsample(in_channels, planes, stride)
        else:
            self.downsample = None
        self.relu_2 = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.conv1(x)
        y = self.bn1(y)
        y = self.relu_1(y)
        y = self.conv2(y)
        y = self.bn2(y)
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu_2(y + x)


class Bottleneck(nn.Module):
    """1x1 reduce - 3x3 (strided, as in torchvision 'ResNet v1.5') - 1x1 expand x4 (ResNet-50+)."""

    def __init__(self, in_channels, planes, stride=1, expansion=4):
        super().__init__()
        self.conv1 = conv2d(in_channels, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu_1 = nn.ReLU()
        self.conv2 = conv2d(planes, planes, 3, stride=stride, padding=1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu_2 = nn.ReLU()
        self.conv3 = conv2d(planes, planes * expansion, 1)
        self.bn3 = nn.BatchNorm2d(planes * expansion)
        if stride != 1 or in_channels != planes * expansion:
            self.downsample = Downsample(in_channels, planes * expansion, stride)
        else:
            self.downsample = None
        self.relu_3 = nn.ReLU()

    def forward(self, x):
        y = self.conv1(x)
        y = self.bn1(y)
        y = self.relu_1(y)
        y = self.conv2(y)
        y = self.bn2(y)
        y = self.relu_2(y)
        y = self.conv3(y)
        y = self.bn3(y)
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu_3(y + x)


class Stage(nn.Module):
    """One stage: n blocks, numbered from 0 like torchvision's nn.Sequential;
    only the first block downsamples.
    """

    def __init__(self, in_channels, kind, n, planes, stride):
        super().__init__()
        self.n = n
        channels = in_channels
        for i in range(n):
            s = stride if i == 0 else 1
            if kind == "basic":
                self.add_module(str(i), BasicBlock(channels, planes, s))
            else:
                self.add_module(str(i), Bottleneck(channels, planes, s))
            channels = planes if kind == "basic" else planes * 4

    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, str(i))(x)
        return x


class Downsample(nn.Module):
    """Projection shortcut: 1x1 conv (strided) + BN, as torchvision's `downsample`."""

    def __init__(self, in_channels, out, stride):
        super().__init__()
        self.add_module("0", conv2d(in_channels, out, 1, stride=stride))
        self.add_module("1", nn.BatchNorm2d(out))

    def forward(self, x):
        x = getattr(self, "0")(x)
        x = getattr(self, "1")(x)
        return x


class ResNet(nn.Module):
    """The network ResNet."""

    def __init__(self):
        super().__init__()
        self.conv1 = conv2d(3, 64, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = Stage(in_channels=64, kind="basic", n=2, planes=64, stride=1)
        self.layer2 = Stage(in_channels=64, kind="basic", n=2, planes=128, stride=2)
        self.layer3 = Stage(in_channels=128, kind="basic", n=2, planes=256, stride=2)
        self.layer4 = Stage(in_channels=256, kind="basic", n=2, planes=512, stride=2)
        self.avgpool = GlobalAvgPool()
        self.fc = linear(512, 1000)

    def forward(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = self.fc(x)
        return x


ROOT = "ResNet"
