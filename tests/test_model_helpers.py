"""The helpers model.py may carry, as the modules they are (udnet/backends/pytorch:
fractal_join.py, drop_path.py, channel_shuffle.py, norm_layers.py, global_avg_pool.py,
init_layers.py), each against a computation written here; and the one reader that copies
their text (helper_text.py). The shared-buffer runtime has its own file,
test_shared_buffer.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from udnet.backends.pytorch import (
    channel_shuffle,
    drop_path,
    fractal_join,
    global_avg_pool,
    init_layers,
    norm_layers,
)
from udnet.backends.pytorch.helper_text import helper_text
from udnet.backends.pytorch.helpers import HELPER_SOURCES

pytestmark = pytest.mark.usefixtures("one_thread")

BACKEND = Path(fractal_join.__file__).parent
F64 = torch.float64


def _inputs(m=3, n=6):
    return [torch.randn(n, 4, 3, 3, dtype=F64) for _ in range(m)]


# ---- the fractal join ----


def test_join_in_eval_is_the_mean_of_its_inputs():
    join = fractal_join.Join(0.5, 0.5, (1, 2, 3)).eval()
    a, b, c = _inputs()
    torch.testing.assert_close(join(a, b, c), (a + b + c) / 3)


def test_join_in_training_without_drop_path_is_the_mean():
    a, b = _inputs(2)
    torch.testing.assert_close(fractal_join.Join(0.0, 0.0, (1, 2)).train()(a, b), (a + b) / 2)


def test_local_drop_path_averages_a_nonempty_subset_of_inputs_per_sample():
    torch.manual_seed(0)
    xs = _inputs(3, 64)
    out = fractal_join.Join(0.6, 0.0, (1, 2, 3)).train()(*xs)
    subsets = range(1, 8)  # the nonempty subsets of three inputs, as bit masks
    seen = set()
    for i in range(out.shape[0]):
        means = {s: sum(x[i] for k, x in enumerate(xs) if s >> k & 1) / bin(s).count("1") for s in subsets}
        matching = [s for s, mean in means.items() if torch.allclose(out[i], mean)]
        assert matching, f"sample {i} is the mean of no subset of the inputs"
        seen.add(matching[0])
    assert len(seen) > 3  # with p = 0.6 and 64 samples, many subsets occur


def test_global_drop_path_keeps_only_each_samples_column():
    torch.manual_seed(1)
    model = nn.Sequential(fractal_join.Join(0.0, 1.0, (1, 2, 3))).train()
    xs = _inputs(3, 16)
    fractal_join.set_drop_path_columns(model, 16, 1.0, 3, torch.device("cpu"))
    columns = model[0].global_columns
    assert columns.shape == (16,) and set(columns.tolist()) <= {1, 2, 3}
    out = model[0](*xs)
    for i, c in enumerate(columns.tolist()):
        torch.testing.assert_close(out[i], xs[c - 1][i])


def test_a_join_without_columns_numbers_its_inputs_from_the_networks_deepest():
    """A FractalNet block's join (columns None): its first input is the network's
    deepest column, the next one shallower, as set_drop_path_columns numbers them."""
    torch.manual_seed(3)
    explicit = nn.Sequential(fractal_join.Join(0.0, 1.0, (4, 3))).train()
    implicit = nn.Sequential(fractal_join.Join(0.0, 1.0)).train()
    xs = _inputs(2, 32)
    fractal_join.set_drop_path_columns(explicit, 32, 1.0, 4, torch.device("cpu"))
    implicit[0].global_columns, implicit[0].num_columns = explicit[0].global_columns, 4
    assert implicit[0].num_columns == explicit[0].num_columns == 4
    torch.manual_seed(5)
    a = explicit[0](*xs)
    torch.manual_seed(5)
    b = implicit[0](*xs)
    assert torch.equal(a, b)
    assert (explicit[0].global_columns <= 2).any()  # samples whose column is not in this join: local


def test_drop_path_columns_are_cleared_in_eval_and_local_without_global_drop():
    model = nn.Sequential(fractal_join.Join(0.0, 0.0, (1, 2))).train()
    fractal_join.set_drop_path_columns(model, 8, 0.0, 2, torch.device("cpu"))
    assert model[0].global_columns.tolist() == [-1] * 8  # every sample takes local drop-path
    model.eval()
    fractal_join.set_drop_path_columns(model, 8, 1.0, 2, torch.device("cpu"))
    assert model[0].global_columns is None


# ---- drop-path per sample ----


def test_drop_path_is_the_identity_in_eval_and_with_p_zero():
    x = torch.randn(5, 3, 2, 2)
    assert drop_path.DropPath(0.4).eval()(x) is x
    assert drop_path.DropPath(0.0).train()(x) is x


def test_drop_path_in_training_zeroes_samples_and_scales_the_rest():
    torch.manual_seed(2)
    x = torch.rand(200, 3, 2, 2, dtype=F64) + 1
    out = drop_path.DropPath(0.25).train()(x)
    dropped = [i for i in range(200) if torch.equal(out[i], torch.zeros_like(x[i]))]
    for i in set(range(200)) - set(dropped):
        torch.testing.assert_close(out[i], x[i] / 0.75)
    assert 20 < len(dropped) < 80  # a quarter of 200, give or take


# ---- channel shuffle, global average pooling ----


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_channel_shuffle_is_a_reshape_and_transpose(groups):
    x = torch.randn(2, 6, 3, 4)
    n = 6 // groups
    expected = x.reshape(2, groups, n, 3, 4).transpose(1, 2).reshape(2, 6, 3, 4)
    assert torch.equal(channel_shuffle.ChannelShuffle(groups)(x), expected)
    # the op's documented rule: channel i * n + j moves to j * groups + i
    out = channel_shuffle.ChannelShuffle(groups)(x)
    for i in range(groups):
        for j in range(n):
            assert torch.equal(out[:, j * groups + i], x[:, i * n + j])


@pytest.mark.parametrize("keep", [False, True])
def test_global_avg_pool_is_adaptive_average_pooling_to_one(keep):
    x = torch.randn(2, 5, 3, 7, dtype=F64)
    expected = nn.functional.adaptive_avg_pool2d(x, 1)
    torch.testing.assert_close(global_avg_pool.GlobalAvgPool(keep)(x), expected if keep else expected.flatten(1))


# ---- normalisation ----


def test_frozen_batch_norm_is_batch_norm_in_eval_with_the_same_buffers():
    bn = nn.BatchNorm2d(4, eps=1e-3).double()
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.randn(4))
        bn.running_var.copy_(torch.rand(4) + 0.5)
    frozen = norm_layers.FrozenBatchNorm2d(4, eps=1e-3).double()
    frozen.load_state_dict(bn.state_dict())  # an ordinary BatchNorm2d's checkpoint loads
    assert not list(frozen.parameters())
    x = torch.randn(3, 4, 2, 5, dtype=F64)
    torch.testing.assert_close(frozen.train()(x), bn.eval()(x))  # frozen even in training


def test_layer_norm_2d_normalises_the_channels_at_each_position():
    norm = norm_layers.LayerNorm2d(4, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.copy_(torch.randn(4))
        norm.bias.copy_(torch.randn(4))
    x = torch.randn(2, 4, 3, 5, dtype=F64)
    mean, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight[:, None, None] + norm.bias[:, None, None]
    torch.testing.assert_close(norm(x), expected)


# ---- initialised layers ----


def test_conv2d_is_an_nn_conv2d_with_the_given_arguments_and_init():
    conv = init_layers.conv2d(4, 6, (3, 1), 2, (1, 0), 1, 2, True, "zeros", 0.5)
    assert isinstance(conv, nn.Conv2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.groups) == (
        4, 6, (3, 1), (2, 2), (1, 0), 2,
    )
    assert torch.equal(conv.weight, torch.zeros(6, 2, 3, 1))
    assert torch.equal(conv.bias, torch.full((6,), 0.5))
    assert init_layers.conv2d(4, 6, 3).bias is None


def test_linear_keeps_torchs_own_init_by_default():
    torch.manual_seed(3)
    fc = init_layers.linear(5, 3, bias_init=-1.0)
    torch.manual_seed(3)
    plain = nn.Linear(5, 3)
    assert torch.equal(fc.weight, plain.weight)
    assert torch.equal(fc.bias, torch.full((3,), -1.0))


@pytest.mark.parametrize("kind", ["kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal"])
def test_init_weight_draws_with_the_named_scheme(kind):
    """The spread each scheme gives a 256 x 256 weight: std sqrt(2 / fan_in) for Kaiming,
    sqrt(2 / (fan_in + fan_out)) for Xavier, 0.01 for normal."""
    torch.manual_seed(4)
    weight = torch.empty(256, 256, dtype=F64)
    init_layers.init_weight(weight, kind)
    std = {"kaiming": (2 / 256) ** 0.5, "xavier": (2 / 512) ** 0.5, "normal": 0.01}[kind.split("_")[0]]
    assert weight.std().item() == pytest.approx(std, rel=0.02)
    if kind.endswith("uniform"):
        assert weight.abs().max().item() <= std * 3**0.5  # uniform on [-a, a] has std a / sqrt(3)


# ---- the reader, and every helper in a module of its own ----


def _helper_modules() -> list[Path]:
    """The modules of the backend whose text holds some helper's."""
    return [p for p in sorted(BACKEND.glob("*.py")) if any(h.strip() in p.read_text(encoding="utf-8") for h in HELPER_SOURCES)]


def test_every_helper_is_the_text_of_a_module():
    texts = [p.read_text(encoding="utf-8") for p in _helper_modules()]
    for h in HELPER_SOURCES:
        assert any(h.strip() in t for t in texts), h[:80]


def test_helper_modules_are_ruff_clean_as_emitted_code_is():
    """ruff's defaults, as model.py is checked with: the copied text must pass there too."""
    files = [str(p) for p in _helper_modules()]
    for args in (["check", "--isolated", "--no-cache"], ["format", "--isolated", "--no-cache", "--check"]):
        r = subprocess.run([sys.executable, "-m", "ruff", *args, *files], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def _module(tmp_path, text):
    path = tmp_path / "helper.py"
    path.write_text(text, encoding="utf-8")
    return str(path)


HELPER = '''"""Doc."""

import torch
from torch import nn

X = 1


# about f
def f():
    return torch.zeros(1)


class G(nn.Module):
    pass


def h():
    pass
'''


def test_reader_copies_definitions_with_their_comments_or_everything_below_the_imports(tmp_path):
    path = _module(tmp_path, HELPER)
    assert helper_text(path, "f") == "\n# about f\ndef f():\n    return torch.zeros(1)\n"
    assert helper_text(path, "G", "h") == "\nclass G(nn.Module):\n    pass\n\n\ndef h():\n    pass\n"
    assert helper_text(path) == "\n" + HELPER.split("\n\n", 2)[2].lstrip("\n")


@pytest.mark.parametrize("names", [("nothing",), ("f", "h"), ("h", "G")])
def test_reader_refuses_names_that_are_not_consecutive_definitions(tmp_path, names):
    with pytest.raises(ValueError):
        helper_text(_module(tmp_path, HELPER), *names)


@pytest.mark.parametrize("imports", ["import math\nimport torch", "import torch.nn", "from torch import nn as tnn", ""])
def test_reader_refuses_imports_model_py_does_not_make(tmp_path, imports):
    with pytest.raises(ValueError):
        helper_text(_module(tmp_path, f"{imports}\n\n\ndef f():\n    pass\n"))
