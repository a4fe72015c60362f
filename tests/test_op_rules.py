"""The op table's own rules, one by one: the drawn label, parameter count and MACs of every
sample call, the errors each shape rule raises (message and hint, as a user reads them),
and the value printer that signatures, errors and labels share.

tests/test_op_table.py checks that every op is whole and computes what PyTorch computes;
this file pins what those comparisons cannot see: texts, and the boundaries of each rule.
"""

from __future__ import annotations

import pytest

from test_op_table import FORMS, SAMPLES
from udnet.backends.drawing.labels import call_text
from udnet.elaborate.values import show
from udnet.errors import UdnetError
from udnet.ir.graph import Scope
from udnet.ops import OPS
from udnet.ops.spec import (
    REQUIRED,
    Arg,
    ArgError,
    ShapeError,
    check_arg,
    infer_op,
    num_text,
)
from udnet.pipeline import build_ir, compile_to_torch
from udnet.spectext import SHOW_DEPTH, spec_string, spec_text


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
    ([4, 1, 2], "conv_transpose(4, 1, pad = 1)",
     "conv_transpose with kernel [1, 1] and padding [1, 1] leaves no output from the input 1x2",
     "the padding removes more than the kernel adds: pad less"),
    ([4], "conv_transpose(4, 1)", "conv_transpose needs a [C, H, W] tensor, got [4]",
     "spatial ops cannot follow gap, flatten or linear"),
    ([4, 5, 5], "conv_transpose(6, 1, groups = 4)",
     "conv_transpose groups = 4 must divide both the input channels (4) and the output channels (6)", None),
    ([4, 5, 5], "adaptive_avgpool(2) |> flatten |> adaptive_maxpool(1)",
     "adaptive_maxpool needs a [C, H, W] tensor, got [16]", "spatial ops cannot follow gap, flatten or linear"),
    ([4, 5, 5], "maxpool(2, pad = 2)", "maxpool padding 2 is more than half the kernel 2", None),
    ([4, 5, 5], "avgpool([3, 2], pad = [1, 2])", "avgpool padding 2 is more than half the kernel 2", None),
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


@pytest.mark.parametrize("call,shape", [
    ("maxpool(2, pad = 1)", (4, 3, 3)),  # padding of exactly half the window: as PyTorch allows
    ("avgpool([3, 2], pad = [1, 1])", (4, 2, 3)),  # the stride is the kernel: as torch gives
    ("conv(4, 1, pad = 2)", (4, 9, 9)),  # a convolution pads as much as it likes
])
def test_padding_up_to_half_the_window(call, shape):
    (node,) = _op_nodes([4, 5, 5], call)
    assert tuple(node["shape"]) == shape


@pytest.mark.parametrize("bias,params", [("false", 4 * 6 * 9), ("true", 4 * 6 * 9 + 6)])
def test_transposed_conv_counts_its_bias_only_when_it_has_one(bias, params):
    (node,) = _op_nodes([4, 5, 5], f"conv_transpose(6, 3, bias = {bias})")
    assert node["params"] == params


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
    assert spec_text([None, True, False, 1.5, 2, 'a"b\\c', (1, [2]), range(2)]) == (
        '[none, true, false, 1.5, 2, "a\\"b\\\\c", [1, [2]], [0, 1]]'
    )


def test_unprintable_characters_print_escaped():
    text = 'tab\there\nnl \x1b[31m\u202e \\ " end'
    assert spec_string(text) == '"tab\\there\\nnl \\x1b[31m\\u202e \\\\ \\" end"'
    assert spec_string("plain, with spaces") == '"plain, with spaces"'


def _nested(levels):
    v = []
    for _ in range(levels):
        v = [v]
    return v


def test_lists_nested_past_the_show_depth_are_elided():
    assert spec_text(_nested(SHOW_DEPTH)) == "[" * (SHOW_DEPTH + 1) + "]" * (SHOW_DEPTH + 1)
    assert spec_text(_nested(SHOW_DEPTH + 1)) == "[" * SHOW_DEPTH + "[...]" + "]" * SHOW_DEPTH


def test_strings_given_to_udnet_load_read_back_as_they_were():
    """A keyword value of udnet.load becomes -D text that the parser reads: quoted for it."""
    text = 'a"b\\c\nd\te\x1b\u202e\\x1b'
    assert spec_string(text, "source") == '"a\\"b\\\\c\\nd\te\x1b\u202e\\\\x1b"'
    ir = build_ir('network N(s = "", t = [], input = [3]) { linear(2) }', defines={"s": text, "t": [1, [2.5, text]]})
    assert ir.graph["params"]["s"] == text and ir.graph["params"]["t"] == (1, (2.5, text))


def test_messages_and_labels_cut_long_values_short():
    """A list may hold a million items and a range 2**62: messages cut them after 100
    characters (strings as they are: the message is escaped when printed), a drawing's
    label a little past its width, where the label is cut anyway."""
    assert show("x" * 150) == '"' + "x" * 100 + '..."'
    assert show('a"b') == '"a"b"'
    text = show(range(2**62))
    assert text.startswith("[0, 1, 2, ") and text.endswith(", ...]") and len(text) < 110
    call = call_text(Scope("b", "block", "B", {"r": range(2**62), "p": 1 / 3}))
    assert call == "B(r=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 1...)"
    assert call_text(Scope("b", "block", "B", {"p": 1 / 3, "q": 2.0})) == "B(p=0.333333, q=2)"



# Each error an op raises, whole as a user reads it: the message, the quoted line, the caret
# under the argument or call at fault, the hint and the note.
ERRORS = {
    'upsample both': ([3, 4, 4], 'upsample(2, size = 8)', (
        '<string>:1:44: error: upsample takes a scale or a size, not both\n'
        '    1 | network N(input = [3, 4, 4]) { upsample(2, size = 8) }\n'
        '      |                                            ^~~~~~~~\n'
        'hint: upsample(2) doubles height and width; upsample(size = [h, w]) resizes to h x w'
    )),
    'upsample align': ([3, 4, 4], 'upsample(2, align_corners = true)', (
        '<string>:1:44: error: upsample align_corners applies to bilinear upsampling only\n'
        '    1 | network N(input = [3, 4, 4]) { upsample(2, align_corners = true) }\n'
        '      |                                            ^~~~~~~~~~~~~~~~~~~~\n'
        'hint: write mode = "bilinear", or leave align_corners out'
    )),
    'upsample none': ([3, 4, 4], 'upsample(0.1)', (
        '<string>:1:32: error: upsample by 0.1 leaves no output from the input 4x4\n'
        '    1 | network N(input = [3, 4, 4]) { upsample(0.1) }\n'
        '      |                                ^~~~~~~~~~~~~\n'
        'hint: the scale multiplies height and width; it must leave at least 1x1\n'
        'udnet: note: the input of this upsample is [3, 4, 4]'
    )),
    'groupnorm groups': ([6, 4, 4], 'groupnorm(4)', (
        '<string>:1:32: error: groupnorm groups = 4 must divide the input channels (6)\n'
        '    1 | network N(input = [6, 4, 4]) { groupnorm(4) }\n'
        '      |                                ^~~~~~~~~~~~\n'
        'hint: choose a number of groups that divides the channels, such as 32 for 256\n'
        'udnet: note: the input of this groupnorm is [6, 4, 4]'
    )),
    'shuffle groups': ([6, 4, 4], 'channel_shuffle(4)', (
        '<string>:1:32: error: channel_shuffle groups = 4 must divide the input channels (6)\n'
        '    1 | network N(input = [6, 4, 4]) { channel_shuffle(4) }\n'
        '      |                                ^~~~~~~~~~~~~~~~~~\n'
        'udnet: note: the input of this channel_shuffle is [6, 4, 4]'
    )),
    'sum shapes': ([4, 4, 4], 'x = x + (x |> conv(8, 1))', (
        '<string>:1:36: error: residual sum of [4, 4, 4] and [8, 4, 4]: shapes differ\n'
        '    1 | network N(input = [4, 4, 4]) { x = x + (x |> conv(8, 1)) }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~\n'
        'hint: insert a 1x1 projection on the shortcut: conv(8, 1)'
    )),
    'concat spatial': ([4, 4, 4], 'x = x ++ (x |> maxpool(2))', (
        '<string>:1:36: error: channel concat of [4, 4, 4] and [4, 2, 2]: spatial sizes differ\n'
        '    1 | network N(input = [4, 4, 4]) { x = x ++ (x |> maxpool(2)) }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~~\n'
        'hint: concatenate tensors of equal height and width; pool or stride the larger one'
    )),
    'mul broadcast': ([4, 4, 4], 'x = x * (x |> conv(2, 1))', (
        '<string>:1:36: error: element-wise product of [4, 4, 4] and [2, 4, 4]: the shapes do not broadcast\n'
        '    1 | network N(input = [4, 4, 4]) { x = x * (x |> conv(2, 1)) }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~\n'
        'hint: each of C, H, W must be equal or 1 in one operand: [C, H, W] * [C, 1, 1] (channel attention), [C, H, W] * [1, H, W] (spatial attention), [C, H, W] * [C]'
    )),
    'gate shapes': ([4, 4, 4], 'x = gate(x, x |> conv(8, 1), x |> conv(4, 1) |> sigmoid)', (
        '<string>:1:44: error: gate operands differ: h is [4, 4, 4] but x is [8, 4, 4]\n'
        '    1 | network N(input = [4, 4, 4]) { x = gate(x, x |> conv(8, 1), x |> conv(4, 1) |> sigmoid) }\n'
        '      |                                            ^~~~~~~~~~~~~~~\n'
        'hint: h, x and t must have one shape; project x if the width changes'
    )),
    'linear spatial': ([4, 4, 4], 'linear(3)', (
        '<string>:1:32: error: linear needs a [C] tensor, got [4, 4, 4]\n'
        '    1 | network N(input = [4, 4, 4]) { linear(3) }\n'
        '      |                                ^~~~~~~~~\n'
        'hint: insert gap (global average pooling) or flatten first\n'
        'udnet: note: the input of this linear is [4, 4, 4]'
    )),
    'conv groups': ([4, 4, 4], 'conv(6, 1, groups = 4)', (
        '<string>:1:32: error: conv groups = 4 must divide both the input channels (4) and the output channels (6)\n'
        '    1 | network N(input = [4, 4, 4]) { conv(6, 1, groups = 4) }\n'
        '      |                                ^~~~~~~~~~~~~~~~~~~~~~\n'
        'udnet: note: the input of this conv is [4, 4, 4]'
    )),
    'conv fit': ([4, 2, 2], 'conv(6, 5)', (
        '<string>:1:32: error: conv with kernel 5x5 and padding 0x0 does not fit the input 2x2\n'
        '    1 | network N(input = [4, 2, 2]) { conv(6, 5) }\n'
        '      |                                ^~~~~~~~~~\n'
        'hint: the input is too small here: remove a downsampling step or pad more\n'
        'udnet: note: the input of this conv is [4, 2, 2]'
    )),
    'int arg': ([4, 4, 4], 'conv(6.0, 1)', (
        "<string>:1:37: error: conv argument 'out' must be an integer, got 6.0\n"
        '    1 | network N(input = [4, 4, 4]) { conv(6.0, 1) }\n'
        '      |                                     ^~~\n'
        'hint: 6.0 is a number, not an integer: write 6'
    )),
    'pos arg': ([4, 4, 4], 'conv(0, 1)', (
        "<string>:1:37: error: conv argument 'out' must be a positive integer, got 0\n"
        '    1 | network N(input = [4, 4, 4]) { conv(0, 1) }\n'
        '      |                                     ^\n'
        'hint: the valid range is 1 to 2**31'
    )),
    'big arg': ([4, 4, 4], 'conv(2**40, 1)', (
        "<string>:1:37: error: conv argument 'out' must be at most 2**31, got 1099511627776\n"
        '    1 | network N(input = [4, 4, 4]) { conv(2**40, 1) }\n'
        '      |                                     ^~~~~\n'
        'hint: the valid range is 1 to 2**31: sizes, windows and counts above 2**31 (a fixed limit) are always a mistake'
    )),
    'prob arg': ([4, 4, 4], 'dropout(1.0)', (
        "<string>:1:40: error: dropout argument 'p' must be a probability in [0, 1), got 1.0\n"
        '    1 | network N(input = [4, 4, 4]) { dropout(1.0) }\n'
        '      |                                        ^~~\n'
        'hint: the valid range is [0, 1): p is the probability of dropping an element; 1 would drop everything and divide by 1 - p = 0'
    )),
    'choice arg': ([4, 4, 4], 'gelu(approximate = "fast")', (
        '<string>:1:37: error: gelu argument \'approximate\' must be one of "none", "tanh", got the string "fast"\n'
        '    1 | network N(input = [4, 4, 4]) { gelu(approximate = "fast") }\n'
        '      |                                     ^~~~~~~~~~~~~~~~~~~~'
    )),
    'pair arg': ([4, 4, 4], 'maxpool([2, 2, 2])', (
        "<string>:1:40: error: maxpool argument 'kernel' must be an integer or a list of two integers, got [2, 2, 2]\n"
        '    1 | network N(input = [4, 4, 4]) { maxpool([2, 2, 2]) }\n'
        '      |                                        ^~~~~~~~~'
    )),
    'bool arg': ([4, 4, 4], 'gap(keep = 1)', (
        "<string>:1:36: error: gap argument 'keep' must be true or false, got 1\n"
        '    1 | network N(input = [4, 4, 4]) { gap(keep = 1) }\n'
        '      |                                    ^~~~~~~~'
    )),
}


@pytest.mark.parametrize("op,message", [
    ("bn", "bn input has no channels"),
    ("frozen_bn", "frozen_bn input has no channels"),
    ("layernorm", "layernorm input has no channels"),
    ("conv", "conv input has no channels"),
    ("conv_transpose", "conv_transpose input has no channels"),
    ("linear", "linear input has no features"),
])
def test_an_input_without_channels_is_refused(op, message):
    # Unreachable from a spec today (no zero-width tensor is made); the rule stands guard.
    shape, call = SAMPLES[op]
    (node,) = _op_nodes(shape, call)
    with pytest.raises(ShapeError, match=f"^{message}$"):
        OPS[op].infer((0, *shape[1:]), node["attrs"])
    assert OPS[op].infer(tuple(shape), node["attrs"]) == tuple(node["shape"])


# The name each constructor argument gets as a parameter of a shared emitted class, where
# instances of a block differ in it (dpn92's DualPathBlock(in_channels, out, kernel, stride, ...)).
FIELD_NAMES = {
    'conv': ('in', 'out', 'kernel', 'stride', 'pad', 'dilation', 'groups', 'bias', 'weight_init', 'bias_init'),
    'linear': ('in', 'out', 'bias', 'weight_init', 'bias_init'),
    'bn': ('channels', 'eps', 'momentum', 'affine'),
    'elu': ('alpha',),
    'maxpool': ('kernel', 'stride', 'pad', 'ceil'),
    'avgpool': ('kernel', 'stride', 'pad', 'ceil', 'count_pad'),
    'gap': ('keep',),
    'upsample': ('scale', 'mode', 'align_corners'),
    'dropout': ('p',),
    'conv_transpose': ('in', 'out', 'kernel', 'stride', 'pad', 'output_pad', 'groups', 'bias', 'dilation'),
    'frozen_bn': ('channels', 'eps'),
    'groupnorm': ('groups', 'channels', 'eps', 'affine'),
    'layernorm': ('channels', 'eps', 'affine'),
    'gelu': ('approximate',),
    'leaky_relu': ('slope',),
    'softmax': ('dim',),
    'drop_path': ('p',),
    'channel_shuffle': ('groups',),
    'adaptive_avgpool': ('size',),
    'adaptive_maxpool': ('size',),
    'layernorm vector': ('channels', 'eps', 'affine'),
    'groupnorm vector': ('groups', 'channels', 'eps', 'affine'),
    'upsample size': ('size', 'mode', 'align_corners'),
    'upsample float': ('scale', 'mode', 'align_corners'),
    'upsample nearest size': ('size', 'mode', 'align_corners'),
}


@pytest.mark.parametrize("name", sorted(FIELD_NAMES))
def test_constructor_arguments_are_named_after_the_spec(name):
    shape, call = {**SAMPLES, **FORMS}[name]
    ir = build_ir(_network(shape, call))
    ((node, data),) = [(n, d) for n, d in ir.nodes(data=True) if d["op"] in OPS]
    (pred,) = ir.predecessors(node)
    fields = OPS[data["op"]].torch.fields(tuple(ir.nodes[pred]["shape"]), data["attrs"])
    assert tuple(f.hint for f in fields) == FIELD_NAMES[name]


# Residual sums that do not fit: the hint names the fix the shapes suggest.
SUM_ERRORS = {
    'sum of three': ([4, 9, 9], 'x = x + x + (x |> conv(8, 1))', (
        '<string>:1:36: error: residual sum of [4, 9, 9] and [8, 9, 9]: shapes differ\n'
        '    1 | network N(input = [4, 9, 9]) { x = x + x + (x |> conv(8, 1)) }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~~~~~\n'
        'hint: insert a 1x1 projection on the shortcut: conv(8, 1)'
    )),
    'sum wider first': ([4, 9, 9], 'x = (x |> conv(8, 1)) + x', (
        '<string>:1:36: error: residual sum of [8, 9, 9] and [4, 9, 9]: shapes differ\n'
        '    1 | network N(input = [4, 9, 9]) { x = (x |> conv(8, 1)) + x }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~\n'
        'hint: insert a 1x1 projection on the shortcut: conv(8, 1)'
    )),
    'sum strided': ([4, 9, 9], 'x = x + (x |> conv(4, 3, stride = 3, pad = 1))', (
        '<string>:1:36: error: residual sum of [4, 9, 9] and [4, 3, 3]: shapes differ\n'
        '    1 | network N(input = [4, 9, 9]) { x = x + (x |> conv(4, 3, stride = 3, pad = 1)) }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n'
        'hint: project the shortcut with stride: conv(4, 1, stride = 3)'
    )),
    'sum strided unevenly': ([4, 9, 6], 'x = x + (x |> conv(4, 3, stride = [3, 2], pad = 1))', (
        '<string>:1:36: error: residual sum of [4, 9, 6] and [4, 3, 3]: shapes differ\n'
        '    1 | network N(input = [4, 9, 6]) { x = x + (x |> conv(4, 3, stride = [3, 2], pad = 1)) }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n'
        'hint: project the shortcut with stride: conv(4, 1, stride = [3, 2])'
    )),
    'sum strided first': ([4, 8, 8], 'x = (x |> conv(8, 3, stride = 2, pad = 1)) + x', (
        '<string>:1:36: error: residual sum of [8, 4, 4] and [4, 8, 8]: shapes differ\n'
        '    1 | network N(input = [4, 8, 8]) { x = (x |> conv(8, 3, stride = 2, pad = 1)) + x }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n'
        'hint: project the shortcut with stride: conv(8, 1, stride = 2)'
    )),
    'sum uneven': ([4, 9, 9], 'x = x + (x |> conv(4, 3, stride = 2, pad = 1))', (
        '<string>:1:36: error: residual sum of [4, 9, 9] and [4, 5, 5]: shapes differ\n'
        '    1 | network N(input = [4, 9, 9]) { x = x + (x |> conv(4, 3, stride = 2, pad = 1)) }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n'
        'hint: a residual sum needs equal shapes; stride or pool the larger operand, or upsample the smaller'
    )),
    'sum rounding': ([4, 9, 9], 'x = x + (x |> maxpool(2) |> upsample(2))', (
        '<string>:1:36: error: residual sum of [4, 9, 9] and [4, 8, 8]: shapes differ\n'
        '    1 | network N(input = [4, 9, 9]) { x = x + (x |> maxpool(2) |> upsample(2)) }\n'
        '      |                                    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\n'
        "hint: the sizes differ by rounding; upsample to the other operand's own size, upsample(size = [height(t), width(t)]), or use an input size that divides evenly"
    )),
    'sum vectors': ([4], 'x = x + (x |> linear(3))', (
        '<string>:1:30: error: residual sum of [4] and [3]: shapes differ\n'
        '    1 | network N(input = [4]) { x = x + (x |> linear(3)) }\n'
        '      |                              ^~~~~~~~~~~~~~~~~~~~\n'
        'hint: insert a projection on the shortcut: linear(4)'
    )),
}


@pytest.mark.parametrize("name", sorted({**ERRORS, **SUM_ERRORS}))
def test_each_op_error_reads_whole(name):
    shape, call, text = {**ERRORS, **SUM_ERRORS}[name]
    with pytest.raises(UdnetError) as e:
        build_ir(_network(shape, call))
    assert str(e.value) == text


# Argument errors: what the message says of the value given, and the valid range.
ARG_ERRORS = [
    ('conv(true, 1)',
     "conv argument 'out' must be an integer, got true",
     None),
    ('conv("abc", 1)',
     'conv argument \'out\' must be an integer, got the string "abc"',
     None),
    ('conv([1, 2], 1)',
     "conv argument 'out' must be an integer, got [1, 2]",
     None),
    ('conv(false, 1)',
     "conv argument 'out' must be an integer, got false",
     None),
    ('conv("a\\tb", 1)',
     'conv argument \'out\' must be an integer, got the string "a\\tb"',
     None),
    ('conv([' + ', '.join(['1000'] * 12) + '], 1)',
     "conv argument 'out' must be an integer, got a list of 12",
     None),
    ('conv(4, 1, pad = [1, -2])',
     "conv argument 'pad' must be non-negative, got [1, -2]",
     'the valid range is 0 to 2**31'),
    ('conv(4, [2.5, 3])',
     "conv argument 'kernel' must be an integer or a list of two integers, got [2.5, 3]",
     '2.5 is a number, not an integer: convert it with int(...)'),
    ('conv(4, [true, 3])',
     "conv argument 'kernel' must be an integer or a list of two integers, got [true, 3]",
     None),
    ('conv(4, [3, 2**40])',
     "conv argument 'kernel' must be at most 2**31, got [3, 1099511627776]",
     'the valid range is 1 to 2**31: sizes, windows and counts above 2**31 (a fixed limit) are always a mistake'),
    ('conv(4, 1, groups = -2**40)',
     "conv argument 'groups' must be a positive integer, got -1099511627776",
     'the valid range is 1 to 2**31'),
    ('bn(momentum = 1.5)',
     "bn argument 'momentum' must be a number in [0, 1], got 1.5",
     "the valid range is [0, 1]: the running statistics move this fraction of the way to each batch's "
     "(0 freezes them, 1 keeps only the last batch)"),
    ('bn(eps = 0.0)',
     "bn argument 'eps' must be a number in [1e-37, 65504], got 0.0",
     'the valid range is [1e-37, 65504]: eps is added to the variance before dividing by its square root, so it '
     'must stay positive in float32 (whose normal numbers start near 1.2e-38)'),
    ('upsample(scale = -1)',
     "upsample argument 'scale' must be a number in [0, 65504], got -1",
     'the valid range is [0, 65504]: every number an op holds is at most 65504 in magnitude, the largest '
     'float16, so that the model stays finite in half precision'),
    ('dropout(-0.1)',
     "dropout argument 'p' must be a probability in [0, 1), got -0.1",
     'the valid range is [0, 1): p is the probability of dropping an element; 1 would drop everything and '
     'divide by 1 - p = 0'),
    ('dropout(true)',
     "dropout argument 'p' must be a number, got true",
     None),
    ('conv(4, 1, 1, 1, 1, 1, 1, 1, 1, 1)',
     'conv takes at most 9 argument(s), got 10',
     'signature: conv(out, kernel, stride = 1, pad = 0, dilation = 1, groups = 1, bias = false, '
     'weight_init = "kaiming_normal", bias_init = 0.0)'),
    ('conv(4, 1, zz = 1)',
     "conv has no argument 'zz'",
     'signature: conv(out, kernel, stride = 1, pad = 0, dilation = 1, groups = 1, bias = false, '
     'weight_init = "kaiming_normal", bias_init = 0.0)'),
    ('conv(4, 1, out = 3)',
     "conv got argument 'out' twice",
     None),
    ('conv(kernel = 1)',
     "conv needs argument 'out'",
     'signature: conv(out, kernel, stride = 1, pad = 0, dilation = 1, groups = 1, bias = false, '
     'weight_init = "kaiming_normal", bias_init = 0.0)'),
    ('conv("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1)',
     'conv argument \'out\' must be an integer, got the string "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..." (61 characters)',
     None),
    ('conv("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1)',
     'conv argument \'out\' must be an integer, got the string "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"',
     None),
    ('conv(4, 1, pad = -1)',
     "conv argument 'pad' must be non-negative, got -1",
     'the valid range is 0 to 2**31'),
    ('elu(alpha = -1.0)',
     "elu argument 'alpha' must be a number in [0, 65504], got -1.0",
     'the valid range is [0, 65504]: elu saturates at -alpha for negative inputs (0 gives relu), and 65504, the largest float16, keeps that finite in half precision'),
    ('leaky_relu(slope = true)',
     "leaky_relu argument 'slope' must be a number, got true",
     None),
    ('conv(4, 1, bias_init = 1e300)',
     "conv argument 'bias_init' must be a number in [-65504, 65504], got 1e+300",
     'the valid range is [-65504, 65504]: the bias is this constant, and 65504, the largest float16, keeps it finite in half precision'),
    ('conv(4, 1, stride = 0)',
     "conv argument 'stride' must be positive, got 0",
     'the valid range is 1 to 2**31'),
    ('conv(4.5, 1)',
     "conv argument 'out' must be an integer, got 4.5",
     '4.5 is a number, not an integer: convert it with int(...)'),
    ('conv(1e20, 1)',
     "conv argument 'out' must be an integer, got 1e+20",
     '1e+20 is a number, not an integer: convert it with int(...)'),
    ('conv(1e15, 1)',
     "conv argument 'out' must be an integer, got 1000000000000000.0",
     '1000000000000000.0 is a number, not an integer: write 1000000000000000'),
    # from 1e16 on, a float no longer holds every integer: no digits are suggested
    ('conv(1e16, 1)',
     "conv argument 'out' must be an integer, got 1e+16",
     '1e+16 is a number, not an integer: convert it with int(...)'),
    ('conv(4, [1.5, 2])',
     "conv argument 'kernel' must be an integer or a list of two integers, got [1.5, 2]",
     '1.5 is a number, not an integer: convert it with int(...)'),
    ('conv(4, 2.0)',
     "conv argument 'kernel' must be an integer or a list of two integers, got 2.0",
     '2.0 is a number, not an integer: write 2'),
    # three items are no pair, whatever they hold
    ('conv(4, [1.5, 2.0, 3.0])',
     "conv argument 'kernel' must be an integer or a list of two integers, got [1.5, 2.0, 3.0]",
     None),
]


@pytest.mark.parametrize("call,message,hint", ARG_ERRORS)
def test_argument_errors_describe_the_value_given(call, message, hint):
    with pytest.raises(UdnetError) as e:
        build_ir(_network([4, 4, 4], call))
    assert (e.value.message, e.value.hint) == (message, hint)


def test_non_ascii_printable_characters_print_as_they_are():
    assert spec_string("é\n") == '"é\\n"'


@pytest.mark.parametrize("op", ["bn", "frozen_bn", "layernorm"])
def test_normalisation_of_a_single_channel_is_allowed(op):
    shape, call = SAMPLES[op]
    (node,) = _op_nodes(shape, call)
    assert OPS[op].infer((1, *shape[1:]), node["attrs"]) == (1, *shape[1:])


def test_upsample_without_a_scale_or_size_doubles():
    (node,) = _op_nodes([3, 4, 5], 'upsample(mode = "bilinear")')
    assert tuple(node["shape"]) == (3, 8, 10)
    assert node["attrs"]["scale"] == 2 and OPS["upsample"].draw.label(node["attrs"]) == "upsample x2"


# The op table's machinery on its own (udnet/ops/spec.py): what every op's checks and
# emission go through, pinned directly rather than through one op or another.


def test_op_exceptions_carry_their_message():
    assert str(ArgError("bad", 0)) == "bad" and str(ShapeError("wrong")) == "wrong"


def test_the_torch_description_names_module_and_fields():
    relu = OPS["relu"].torch
    assert relu.describe((4, 5, 5), {}) == ("op", "nn.ReLU", ())
    assert relu.describe((4, 5, 5), {}, inplace=True) == ("op", "nn.ReLU", (("inplace", "inplace", "False", None, True),))
    assert OPS["sigmoid"].torch.describe((4, 5, 5), {}, inplace=True) == ("op", "nn.Sigmoid", ())
    bn = OPS["bn"].bind([], {})
    assert OPS["bn"].torch.describe((4,), bn)[1] == "nn.BatchNorm1d"
    assert OPS["bn"].torch.describe((4, 5, 5), bn)[1] == "nn.BatchNorm2d"


@pytest.mark.parametrize("x,text", [
    (2.0, "2"), (-65504.0, "-65504"), (0.5, "0.5"), (1e-37, "1e-37"), (1e20, "1e+20"), (1e16, "1e+16"),
    (9999999999999998.0, "9999999999999998"), (-1e16, "-1e+16"),
])
def test_bounds_print_as_integers_where_they_are_whole(x, text):
    assert num_text(x) == text


@pytest.mark.parametrize("arg,valid", [
    (Arg("n", "int"), "-2**31 to 2**31"),
    (Arg("n", "pos_int"), "1 to 2**31"),
    (Arg("n", "pair"), "0 to 2**31"),
    (Arg("n", "pos_pair"), "1 to 2**31"),
    (Arg("n", "opt_pair"), "1 to 2**31"),
    (Arg("x", "float"), "[-65504, 65504]"),
    (Arg("x", "float", lo=0.5, hi=2.0), "[0.5, 2]"),
    (Arg("x", "float", hi=3.0, hi_open=True), "[-65504, 3)"),
    (Arg("x", "opt_number", lo=0.0), "[0, 65504]"),
    (Arg("p", "prob", lo=0.5, hi=0.75), "[0, 1)"),  # a probability's range is fixed
])
def test_each_kind_states_its_valid_values(arg, valid):
    assert arg.valid() == valid


@pytest.mark.parametrize("kind,value,result", [
    ("opt_number", 3, 3), ("opt_number", 2.5, 2.5), ("opt_number", None, None), ("float", 3, 3.0),
    ("prob", 0, 0.0), ("opt_pair", None, None), ("pair", 2, (2, 2)), ("pos_pair", [1, 3], (1, 3)),
    ("int", -2**31, -2**31), ("bool", False, False)
])
def test_checked_arguments_are_normalised(kind, value, result):
    got = check_arg("op", Arg("a", kind), value, 0)
    assert got == result and type(got) is type(result)


@pytest.mark.parametrize("kind,value,message", [
    ("int", None, "op argument 'a' must be an integer, got none"),
    ("int", object(), "op argument 'a' must be an integer, got object"),
    ("int", 2**31 + 1, "op argument 'a' must be at most 2**31, got 2147483649"),
    ("int", -2**31 - 1, "op argument 'a' must be at most 2**31, got -2147483649"),
    ("pair", [1], "op argument 'a' must be an integer or a list of two integers, got [1]"),
    ("pair", (2**31 + 1, 0), "op argument 'a' must be at most 2**31, got [2147483649, 0]"),
    ("float", float("nan"), "op argument 'a' must be a finite number, got nan"),
    ("float", float("-inf"), "op argument 'a' must be a finite number, got -inf"),
    ("float", 70000, "op argument 'a' must be a number in [-65504, 65504], got 70000"),
    ("float", "1", 'op argument \'a\' must be a number, got the string "1"'),
    ("int", [1000] * 10, "op argument 'a' must be an integer, got [" + ", ".join(["1000"] * 10) + "]"),  # 60 characters
    ("int", [10000] + [1000] * 9, "op argument 'a' must be an integer, got a list of 10"),  # 61
])
def test_argument_checks_at_their_limits(kind, value, message):
    with pytest.raises(ArgError) as e:
        check_arg("op", Arg("a", kind), value, 3)
    assert e.value.message == message and e.value.arg == 3


def test_integer_limits_are_inclusive():
    assert check_arg("op", Arg("a", "pos_pair"), [2**31, 1], 0) == (2**31, 1)
    assert check_arg("op", Arg("a", "float", lo=0.0, hi=1.0), 1.0, 0) == 1.0
    assert check_arg("op", Arg("a", "float", lo=0.0, hi=1.0), 0.0, 0) == 0.0
    with pytest.raises(ArgError):
        check_arg("op", Arg("a", "float", lo=0.0, hi=1.0, hi_open=True), 1.0, 0)


def test_shape_rules_refuse_the_wrong_rank_with_a_fix():
    with pytest.raises(ShapeError) as e:
        infer_op(OPS["conv"], (4,), OPS["conv"].bind([4, 1], {}))
    assert (e.value.message, e.value.hint) == (
        "conv needs a [C, H, W] tensor, got [4]", "spatial ops cannot follow gap, flatten or linear")
    with pytest.raises(ShapeError) as e:
        infer_op(OPS["linear"], (4, 2, 2), OPS["linear"].bind([3], {}))
    assert (e.value.message, e.value.hint) == (
        "linear needs a [C] tensor, got [4, 2, 2]", "insert gap (global average pooling) or flatten first")
    both = next(s for s in OPS.values() if s.rank == (1, 3))
    with pytest.raises(ShapeError) as e:
        infer_op(both, (4, 2), both.bind([], {}) if not any(a.default is REQUIRED for a in both.args) else {})
    assert e.value.message == f"{both.name} needs a [C] or [C, H, W] tensor, got [4, 2]" and e.value.hint is None


# The constructor line each op emits, written out by hand as a PyTorch user would: a keyword
# where the argument is not positional, and an argument left out where PyTorch's default (or,
# for a pool's stride, the kernel) already says it.
@pytest.mark.parametrize("shape,call,line", [
    ([4, 8, 8], "conv(4, 3)", "conv2d(4, 4, 3)"),
    ([4, 8, 8], "conv(4, 3, stride = [2, 1])", "conv2d(4, 4, 3, stride=(2, 1))"),
    ([4, 8, 8], "conv(4, 3, stride = 2, pad = 1, dilation = 2, groups = 2, bias = true)",
     "conv2d(4, 4, 3, stride=2, padding=1, dilation=2, groups=2, bias=True)"),
    ([4, 8, 8], "maxpool(2)", "nn.MaxPool2d(2)"),
    ([4, 8, 8], "maxpool(3, stride = 2, pad = 1)", "nn.MaxPool2d(3, stride=2, padding=1)"),
    ([4, 8, 8], "maxpool(3, stride = 2, ceil = true)", "nn.MaxPool2d(3, stride=2, ceil_mode=True)"),
    ([4, 8, 8], "avgpool([2, 3], stride = 1)", "nn.AvgPool2d((2, 3), stride=1)"),
    ([4, 8, 8], "bn", "nn.BatchNorm2d(4)"),
    ([4, 8, 8], "bn(eps = 0.001)", "nn.BatchNorm2d(4, eps=0.001)"),
    ([4, 8, 8], "upsample(size = [6, 8])", 'nn.Upsample(size=(6, 8), mode="nearest")'),
    ([4, 8, 8], "upsample(size = 6)", 'nn.Upsample(size=6, mode="nearest")'),
    ([4, 8, 8], 'upsample(2, mode = "bilinear", align_corners = true)',
     'nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)'),
])
def test_each_op_emits_the_constructor_a_person_would_write(shape, call, line):
    source = compile_to_torch(_network(shape, f"op: {call}"))
    assert f"self.op = {line}\n" in source


def test_upsample_that_empties_one_dimension_names_both():
    # 0.3 leaves 3 x 4 at 0 x 1: the height alone is empty, and the message names the input as it is
    with pytest.raises(UdnetError) as e:
        build_ir(_network([3, 3, 4], "upsample(0.3)"))
    assert e.value.message == "upsample by 0.3 leaves no output from the input 3x4"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_number_that_is_not_finite_is_told_the_valid_range(value):
    with pytest.raises(ArgError) as e:
        check_arg("op", Arg("a", "float"), value, 3)
    assert e.value.hint == ("the valid range is [-65504, 65504]: every number an op holds is at most 65504 in "
                            "magnitude, the largest float16, so that the model stays finite in half precision")


def test_an_argument_given_twice_is_pointed_at_where_it_is_named():
    with pytest.raises(UdnetError) as e:
        build_ir(_network([4, 4, 4], "conv(4, 1, out = 3)"))
    span = e.value.span
    assert (span.col, span.end_col) == (43, 50)  # out = 3, not the whole call


# The residual sum's hint at each of its boundaries: which operand is the larger (by area,
# whichever comes first), strides that divide exactly, sizes one apart (rounding) and two
# apart (not rounding), and operands of different rank (no hint).
@pytest.mark.parametrize("spec,message,hint", [
    ("network N(input = [4, 3, 3]) { x = x + (x |> gap) }",
     "residual sum of [4, 3, 3] and [4]: shapes differ", None),
    ("network N(input = [4, 1, 4]) { x = x + (x |> upsample(size = [2, 8])) }",
     "residual sum of [4, 1, 4] and [4, 2, 8]: shapes differ",
     "project the shortcut with stride: conv(4, 1, stride = 2)"),
    ("network N(input = [4, 3, 1]) { x = x + (x |> upsample(size = [6, 1])) }",
     "residual sum of [4, 3, 1] and [4, 6, 1]: shapes differ",
     "project the shortcut with stride: conv(4, 1, stride = [2, 1])"),
    ("network N(input = [4, 6, 6]) { x = x + (x |> maxpool(3, stride = 1)) }",
     "residual sum of [4, 6, 6] and [4, 4, 4]: shapes differ",
     "a residual sum needs equal shapes; stride or pool the larger operand, or upsample the smaller"),
    ("network N(input = [4, 3, 6]) { x = x + (x |> upsample(size = [4, 5])) }",
     "residual sum of [4, 3, 6] and [4, 4, 5]: shapes differ",
     "the sizes differ by rounding; upsample to the other operand's own size, "
     "upsample(size = [height(t), width(t)]), or use an input size that divides evenly"),
])
def test_residual_sum_hints_at_their_boundaries(spec, message, hint):
    with pytest.raises(UdnetError) as e:
        build_ir(spec)
    assert (e.value.message, e.value.hint) == (message, hint)


def test_join_operands_are_counted_from_one():
    with pytest.raises(UdnetError) as e:
        build_ir("network N(input = [4, 3, 3]) { x = join(x, x, x |> gap) }")
    assert e.value.message == "join operands differ: operand 1 is [4, 3, 3] but operand 3 is [4]"


def test_gate_emits_the_highway_formula():
    source = compile_to_torch(
        "network N(input = [4, 3, 3]) { h = x |> conv(4, 1); t = x |> conv(4, 1) |> sigmoid; x = gate(h, x, t) }")
    assert "        x = t * h + (1 - t) * x\n" in source


def test_a_cut_value_stops_at_its_limit_exactly():
    # "[1, 2" is 5 characters: past the limit of 4 the next item is elided, not before
    assert spec_text([1, 2, 3], limit=4) == "[1, 2, ...]"
    assert spec_text("abcd", limit=4) == '"abcd"' and spec_text("abcde", limit=4) == '"abcd..."'


def test_values_that_are_no_literal_print_as_they_describe_themselves():
    class Tensor:
        def describe(self):
            return "a tensor [4, 3, 3]"

    assert spec_text([Tensor(), 1]) == "[a tensor [4, 3, 3], 1]"
