"""The op table's own rules, one by one: the drawn label, parameter count and MACs of every
sample call, the errors each shape rule raises (message and hint, as a user reads them),
and the value printer that signatures, errors and labels share.

tests/test_op_table.py checks that every op is whole and computes what PyTorch computes;
this file pins what those comparisons cannot see: texts, and the boundaries of each rule.
"""

from __future__ import annotations

import pytest

from test_op_table import FORMS, SAMPLES
from udnet.errors import UdnetError
from udnet.ops import OPS
from udnet.ops.spec import SHOW_DEPTH, show_string, show_value
from udnet.pipeline import build_ir


def _network(shape, call):
    return f"network N(input = {list(shape)}) {{ {call} }}"


def _op_nodes(shape, call):
    ir = build_ir(_network(shape, call))
    return [d for _, d in ir.nodes(data=True) if d["op"] in OPS]


# (sample or form name) -> (drawn label, output shape, parameters, MACs) of its op. The
# counts are worked out by hand in the comments; the labels are what a diagram shows.
EXPECTED = {
    # 6 out * 4 in * 3x2 kernel + 6 bias; 6 * 4 * 7 outputs, each 4 * 3 * 2 multiply-adds
    "conv": ("3x2 conv, 6 /2x1, d=1x2", (6, 4, 7), 150, 4032),
    "linear": ("linear, 3", (3,), 18, 15),
    "bn": (None, (4, 5, 5), 8, 0),
    "maxpool": ("maxpool 3x3 /2", (3, 4, 5), 0, 0),
    "avgpool": ("avgpool 2x3", (3, 3, 3), 0, 0),  # the stride defaults to the kernel: not shown
    "upsample": ("upsample x2", (3, 8, 10), 0, 0),
    "dropout": ("dropout 0.3", (4, 5, 5), 0, 0),
    # 4 in * (6 / 2 groups) out * 3x2 kernel + 6 bias; 4 * 5 * 6 inputs, each to 3 * 6 outputs
    "conv_transpose": ("3x2 conv_transpose, 6 x2x1, g=2, d=1x2", (6, 10, 8), 78, 2160),
    "frozen_bn": ("frozen bn", (4, 5, 5), 0, 0),
    "groupnorm": ("groupnorm /3", (6, 3, 4), 12, 0),
    "layernorm": (None, (6, 3, 4), 12, 0),
    "gelu": ("gelu (tanh)", (4, 5, 5), 0, 0),
    "leaky_relu": ("leaky_relu 0.2", (4, 5, 5), 0, 0),
    "drop_path": ("drop_path 0.3", (4, 5, 5), 0, 0),
    "channel_shuffle": ("channel shuffle /3", (6, 3, 2), 0, 0),
    "adaptive_avgpool": ("adaptive avgpool 3x4", (3, 3, 4), 0, 0),
    "adaptive_maxpool": ("adaptive maxpool 2x2", (3, 2, 2), 0, 0),
    "gap": (None, (3, 1, 1), 0, 0),
    "flatten": (None, (24,), 0, 0),
    "layernorm vector": (None, (6,), 0, 0),
    "groupnorm vector": ("groupnorm /2", (6,), 12, 0),
    "upsample size": ("upsample to 7x9", (3, 7, 9), 0, 0),
    "upsample float": ("upsample x1.5", (3, 6, 7), 0, 0),
    "upsample nearest size": ("upsample to 6", (3, 6, 6), 0, 0),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_label_params_and_macs_of_each_sample(name):
    shape, call = {**SAMPLES, **FORMS}[name]
    (node,) = _op_nodes(shape, call)
    spec = OPS[node["op"]]
    label = spec.draw.label(node["attrs"]) if spec.draw.label else None
    assert (label, tuple(node["shape"]), node["params"], node["macs"]) == EXPECTED[name]


@pytest.mark.parametrize("shape,call,label", [
    ([3, 8, 8], "maxpool(2)", "maxpool 2x2"),
    ([3, 8, 8], "maxpool(2, stride = 1)", "maxpool 2x2 /1"),
    ([3, 8, 8], "avgpool(3, stride = [2, 1], pad = 1)", "avgpool 3x3 /2x1"),
    ([3, 8, 8], "conv(6, 3, groups = 3, dilation = 2)", "3x3 conv, 6, g=3, d=2"),
    ([3, 8, 8], "adaptive_maxpool([1, 2])", "adaptive maxpool 1x2"),
])
def test_labels_show_only_what_differs_from_the_default(shape, call, label):
    (node,) = _op_nodes(shape, call)
    assert OPS[node["op"]].draw.label(node["attrs"]) == label


@pytest.mark.parametrize("shape,call,message,hint", [
    ([4, 5, 5], "conv_transpose(4, 3, stride = 2, output_pad = 2)",
     "conv_transpose output_pad 2 must be smaller than the stride (2) or the dilation (1)",
     "output_pad picks one of the stride's possible output sizes; it is at most stride - 1"),
    ([4, 1, 1], "conv_transpose(4, 1, pad = 1)",
     "conv_transpose with kernel [1, 1] and padding [1, 1] leaves no output from the input 1x1",
     "the padding removes more than the kernel adds: pad less"),
    ([4], "conv_transpose(4, 1)", "conv_transpose needs a [C, H, W] tensor, got [4]",
     "spatial ops cannot follow gap, flatten or linear"),
    ([4, 5, 5], "conv_transpose(6, 1, groups = 4)",
     "conv_transpose groups = 4 must divide both the input channels (4) and the output channels (6)", None),
    ([4, 5, 5], "adaptive_avgpool(2) |> flatten |> adaptive_maxpool(1)",
     "adaptive_maxpool needs a [C, H, W] tensor, got [16]", "spatial ops cannot follow gap, flatten or linear"),
    ([4, 5, 5], "maxpool(2, pad = 2)", "maxpool padding 2 is more than half the kernel 2", None),
    ([4, 2, 2], "avgpool(3)", "avgpool with kernel 3x3 and padding 0x0 does not fit the input 2x2",
     "the input is too small here: remove a downsampling step or pad more"),
])
def test_shape_rules_say_what_is_wrong(shape, call, message, hint):
    with pytest.raises(UdnetError) as e:
        build_ir(_network(shape, call))
    text = str(e.value)
    assert e.value.message == message, text
    assert e.value.hint == hint, text


def test_transposed_output_pad_below_the_stride_or_the_dilation_is_allowed():
    # output_pad 1 is below the stride 2: allowed; output_pad 1 with stride 1 and dilation 2 is
    # below the dilation: allowed too (the rule is "smaller than the stride or the dilation").
    (a,) = _op_nodes([4, 5, 5], "conv_transpose(4, 3, stride = 2, output_pad = 1)")
    (b,) = _op_nodes([4, 5, 5], "conv_transpose(4, 3, dilation = 2, output_pad = 1)")
    assert tuple(a["shape"]) == (4, 12, 12)  # (5 - 1) * 2 + 3 + 1
    assert tuple(b["shape"]) == (4, 10, 10)  # (5 - 1) + 2 * 2 + 1 + 1
    with pytest.raises(UdnetError, match="output_pad 1 must be smaller"):
        build_ir(_network([4, 5, 5], "conv_transpose(4, 3, output_pad = 1)"))


def test_transposed_output_of_exactly_one_pixel_is_allowed():
    (node,) = _op_nodes([4, 1, 1], "conv_transpose(4, 3, pad = 1)")  # 0 - 2 + 2 + 1 = 1
    assert tuple(node["shape"]) == (4, 1, 1)


def test_signatures_show_each_default_as_a_spec_writes_it():
    assert OPS["conv"].signature() == (
        'conv(out, kernel, stride = 1, pad = 0, dilation = 1, groups = 1, bias = false, '
        'weight_init = "kaiming_normal", bias_init = 0.0)'
    )
    assert OPS["maxpool"].signature() == "maxpool(kernel, stride = none, pad = 0, ceil = false)"


def test_values_print_as_a_spec_writes_them():
    assert show_value([None, True, False, 1.5, 2, 'a"b\\c', (1, [2]), range(2)]) == (
        '[none, true, false, 1.5, 2, "a\\"b\\\\c", [1, [2]], [0, 1]]'
    )


def test_unprintable_characters_print_escaped():
    text = 'tab\there\nnl \x1b[31m\u202e \\ " end'
    assert show_string(text) == '"tab\\there\\nnl \\x1b[31m\\u202e \\\\ \\" end"'
    assert show_string("plain, with spaces") == '"plain, with spaces"'


def _nested(levels):
    v = []
    for _ in range(levels):
        v = [v]
    return v


def test_lists_nested_past_the_show_depth_are_elided():
    assert show_value(_nested(SHOW_DEPTH)) == "[" * (SHOW_DEPTH + 1) + "]" * (SHOW_DEPTH + 1)
    assert show_value(_nested(SHOW_DEPTH + 1)) == "[" * SHOW_DEPTH + "[...]" + "]" * SHOW_DEPTH
