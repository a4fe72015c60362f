"""specs/unet.ud against a U-Net written in plain PyTorch (Ronneberger et al. 2015,
Figure 1, padded convs): the same parameters, outputs and gradients, for the
transposed-conv and the bilinear variants; and the input sizes it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import udnet
from udnet.errors import UdnetError

SPEC = Path(__file__).resolve().parents[1] / "specs" / "unet.ud"

pytestmark = pytest.mark.usefixtures("one_thread")


def double_conv(cin: int, c: int) -> nn.Module:
    m = nn.Module()
    m.conv1 = nn.Conv2d(cin, c, 3, padding=1)
    m.conv2 = nn.Conv2d(c, c, 3, padding=1)
    return m


class PlainUNet(nn.Module):
    """The module names are the spec's labels, so one state_dict serves both."""

    def __init__(self, widths, cin, classes, bilinear=False, align_corners=False):
        super().__init__()
        self.levels, self.bilinear, self.align_corners = len(widths), bilinear, align_corners
        for i, c in enumerate(widths, 1):
            self.add_module(f"enc{i}", double_conv(cin, c))
            cin = c
        for i in range(len(widths) - 1, 0, -1):
            c = widths[i - 1]
            level = nn.Module()
            level.up = nn.Conv2d(cin, c, 1) if bilinear else nn.ConvTranspose2d(cin, c, 2, stride=2)
            level.conv = double_conv(2 * c, c)
            self.add_module(f"up{i}", level)
            cin = c
        self.head = nn.Conv2d(cin, classes, 1)

    @staticmethod
    def twice(m, x):
        return F.relu(m.conv2(F.relu(m.conv1(x))))

    def forward(self, x):
        skips = []
        for i in range(1, self.levels + 1):
            if i > 1:
                x = F.max_pool2d(x, 2)
            x = self.twice(getattr(self, f"enc{i}"), x)
            skips.append(x)
        for i in range(self.levels - 1, 0, -1):
            level = getattr(self, f"up{i}")
            if self.bilinear:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=self.align_corners)
            x = self.twice(level.conv, torch.cat([skips[i - 1], level.up(x)], 1))
        return self.head(x)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("bilinear", [False, True])
def test_full_size_parameters_equal_the_plain_unet(bilinear):
    # Weights only: nothing runs at this size.
    plain = PlainUNet([64, 128, 256, 512, 1024], 1, 2, bilinear)
    spec = udnet.load(SPEC, bilinear=bilinear)
    assert n_params(spec) == n_params(plain) == (28_941_698 if bilinear else 31_030_658)
    assert {k: v.shape for k, v in spec.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}


@pytest.mark.parametrize("bilinear,align_corners", [(False, False), (True, False), (True, True)])
def test_outputs_and_gradients_equal_the_plain_unet(bilinear, align_corners):
    widths, shape = [4, 8, 16, 32, 64], (3, 32, 48)
    torch.manual_seed(0)
    spec = udnet.load(SPEC, widths=widths, classes=3, input=list(shape), bilinear=bilinear, align_corners=align_corners)
    plain = PlainUNet(widths, 3, 3, bilinear, align_corners)
    plain.load_state_dict(spec.state_dict(), strict=True)
    x = torch.randn(2, *shape)
    y, want = spec(x), plain(x)
    assert y.shape == (2, 3, 32, 48)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)
    y.square().mean().backward()
    want.square().mean().backward()
    got = dict(spec.named_parameters())
    for name, p in plain.named_parameters():
        torch.testing.assert_close(got[name].grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("size", [[1, 16, 16], [1, 64, 32], [1, 48, 112]])
def test_any_size_divisible_by_16_keeps_its_size(size):
    model = udnet.load(SPEC, widths=[2, 4, 4, 4, 4], input=size)
    with torch.no_grad():
        assert model(torch.randn(1, *size)).shape == (1, 2, *size[1:])


def test_other_sizes_are_a_spec_error():
    with pytest.raises(UdnetError, match="divisible"):
        udnet.load(SPEC, input=[1, 40, 40])
