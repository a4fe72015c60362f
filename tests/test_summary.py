"""``udnet summary``: its figures come from the IR alone and agree with the emitted module.

* parameters: every row (block, group, op) equals ``numel()`` of the parameters of the
  emitted module's submodule of the same path, exactly;
* activation memory: the IR figure (docs/language.md, "udnet summary") equals, within
  10%, the bytes of every tensor a real forward pass creates, measured by interpreting
  the module compiled with ``--no-share-concat`` with torch.fx (it is exact today);
* the table is aligned and fits the terminal by cutting the call column (exactly, for a
  network small enough to check every figure by hand); ``--json`` is the same data for
  scripts, as ``json.dumps`` writes it; the command never imports torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.fx
from programs import sample

import udnet
from udnet.backends import summary
from udnet.cli import main
from udnet.errors import UdnetError
from udnet.pipeline import build_ir, optimize

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

# Small configurations of every spec (and network) in specs/, so the forward passes are fast.
CASES = [
    ("densenet.ud", None, {"blocks": [2, 3], "k": 8, "init": 16, "input": [3, 64, 64]}),
    ("densenet.ud", "DenseNetBC", {"depth": 16, "k": 6}),
    ("dpn.ud", None, {"variant": 68, "input": [3, 64, 64]}),
    ("fractal.ud", None, {"C": 2, "widths": [16, 32], "drop": [0.0, 0.1]}),
    ("highway.ud", None, {"widths": [8, 16, 16], "highways": [2, 1, 1]}),
    ("highway.ud", "HighwayMLP", {"depth": 5, "units": 20}),
    ("resnet.ud", None, {"depth": 0, "layers": [1, 2, 1, 1], "kind": "bottleneck", "input": [3, 64, 64]}),
    ("resnet.ud", None, {"input": [3, 64, 64]}),
    ("rir.ud", None, {"widths": [8, 16, 16], "blocks": [1, 2, 1]}),
    ("mobilenet.ud", None, {"input": [3, 32, 32], "classes": 10}),
    ("efficientnet.ud", None, {"input": [3, 32, 32], "classes": 10}),
    ("fpn.ud", None, {"layers": [1, 1, 1, 1], "out": 16, "input": [3, 64, 64]}),
    ("unet.ud", None, {"widths": [8, 16, 32], "bilinear": True, "input": [1, 16, 16]}),
]
IDS = [f"{f}:{n or 'default'}:{i}" for i, (f, n, _) in enumerate(CASES)]

# Every built-in op and connection kind, n-ary sums, views (slices, flatten) and dead code.
ZOO = """
block Mix(c) {
    a = x[:c]
    b = x[c:]
    s = a + b + (a |> conv(c, 3, pad = 1, groups = c))
    g = gate(s |> tanh, a, s |> sigmoid)
    j = join(g |> elu(alpha = 0.5), a |> identity, b |> dropout(0.2))
    unused = x |> conv(4, 1)
    return j ++ x ++ (s |> bn(affine = false))
}
network Zoo(input = [8, 12, 12]) {
    stem: conv(8, 3, pad = 1, bias = true)
    m: Mix(4)
    avgpool(3, stride = 1, pad = 1, count_pad = false)
    maxpool(2, ceil = true)
    upsample(2, mode = "bilinear")
    up: conv(6, 3, stride = 2, dilation = 2, pad = 2)
    relu
    t: conv_transpose(6, 3, stride = 2, pad = 1, output_pad = 1, groups = 2, bias = true)
    frozen_bn
    groupnorm(3)
    layernorm
    relu6
    x = x * (x |> gap(keep = true) |> conv(6, 1) |> hardsigmoid)
    x = x * (x |> gap |> linear(6) |> sigmoid)
    x = x * (x |> conv(1, 1) |> silu)
    drop_path(0.2)
    channel_shuffle(3)
    gelu
    hardswish
    leaky_relu(0.1)
    upsample(size = [9, 7], mode = "bilinear", align_corners = true)
    upsample(1.5)
    softmax
    y = x |> adaptive_avgpool([2, 3])
    x = x |> adaptive_maxpool(3) |> upsample(size = [2, 3])
    x = x + y
    pooled = x |> gap
    flatten
    head: linear(10, bias = false)
    x = (x ++ pooled) |> layernorm(affine = false)
}
"""


class _Measure(torch.fx.Interpreter):
    """Sums numel * element_size of the input and of every module and function result."""

    def __init__(self, gm):
        super().__init__(gm)
        self.total = 0

    def run_node(self, n):
        result = super().run_node(n)
        if n.op in ("placeholder", "call_module", "call_function", "call_method") and isinstance(result, torch.Tensor):
            self.total += result.numel() * result.element_size()
        return result


def measured_activation_bytes(model: torch.nn.Module, shape, batch: int, dtype=torch.float32) -> int:
    model = model.to(dtype).eval()
    interp = _Measure(torch.fx.symbolic_trace(model))
    with torch.no_grad():
        interp.run(torch.randn(batch, *shape, dtype=dtype))
    return interp.total


def _summary(source, network, params, **kw) -> summary.Summary:
    ir = build_ir(source, network, params)
    return summary.summarize(ir, "test.ud", **kw)


def _module_params(model: torch.nn.Module, path: str) -> int:
    return sum(p.numel() for p in model.get_submodule(path).parameters())


def _check_against_module(source, network, params, batch=2):
    s = _summary(source, network, params, batch=batch, depth=None)
    # Parameters, exactly, per row, against the module exactly as `udnet compile` emits it.
    model = udnet.load(source, network, **params)
    rows = [r for r in s.rows if r.kind in ("block", "group", "op")]
    assert rows
    for r in rows:
        assert r.params == _module_params(model, r.scope), r.scope
    assert s.total.params == sum(p.numel() for p in model.parameters())
    # Activation memory against a measured forward pass of the plain (torch.cat) module.
    naive = udnet.load(source, network, disable=("share-concat",), **params)
    measured = measured_activation_bytes(naive, s.input, batch)
    assert abs(s.total.activation_bytes - measured) <= 0.1 * measured, (s.total.activation_bytes, measured)
    return s, measured


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_specs_match_the_emitted_module(case):
    name, network, params = case
    s, measured = _check_against_module(str(SPECS / name), network, params)
    assert s.total.activation_bytes == measured  # the definition is exact, not only within 10%


def test_every_op_and_connection_kind():
    s, measured = _check_against_module(ZOO, None, {}, batch=3)
    assert s.total.activation_bytes == measured
    kinds = {r.call.split(" ")[0].split("(")[0] for r in s.rows}
    for k in ("conv", "bn", "relu", "tanh", "sigmoid", "elu", "dropout", "avgpool", "maxpool", "upsample", "gap",
              "flatten", "linear", "+", "++", "*", "gate", "join", "[0:4]", "[4:8]"):
        assert k in kinds, (k, kinds)
    # Dead code (and the identity, which prune folds) is counted before the passes, not after them.
    before, after = s.stages[0][1], s.stages[1][1]
    assert before.nodes > after.nodes and before.params > after.params


@pytest.mark.parametrize("seed", range(0, 40, 2))
def test_generated_programs_match_the_emitted_module(seed):
    (text,) = sample(ok=True, n=1, start=seed)
    try:
        build_ir(text)
    except UdnetError:
        pytest.skip("this generated program does not elaborate")
    _check_against_module(text, None, {})


def test_dtype_and_batch_scale_the_activations():
    src = str(SPECS / "highway.ud")
    base = _summary(src, None, {})
    assert base.total.activation_bytes == sum(summary.activation_elements(build_ir(src), n)
                                              for n in build_ir(src).nodes) * 4
    for dtype, nbytes in (("float16", 2), ("bfloat16", 2)):
        s = _summary(src, None, {}, batch=8, dtype=dtype)
        assert s.total.activation_bytes == base.total.activation_bytes * 8 * nbytes // 4
        assert [r.activation_bytes for r in s.rows] == [r.activation_bytes * 8 * nbytes // 4 for r in base.rows]
    model = udnet.load(src)
    assert measured_activation_bytes(model, base.input, 2, torch.bfloat16) == base.total.activation_bytes * 2 // 2


def test_rows_add_up_and_nest():
    s = _summary(str(SPECS / "densenet.ud"), None, {}, depth=None)
    top = [r for r in s.rows if r.level == 1]
    for field in ("params", "macs", "activation_bytes", "nodes"):
        assert sum(getattr(r, field) for r in top) == getattr(s.total, field) - (field == "nodes"), field
    # Every row's figures are the sum of the rows directly inside it.
    for i, r in enumerate(s.rows):
        kids = []
        for q in s.rows[i + 1:]:
            if q.level <= r.level:
                break
            if q.level == r.level + 1:
                kids.append(q)
        if kids:
            assert sum(k.params for k in kids) == r.params, r.scope
            assert sum(k.activation_bytes for k in kids) == r.activation_bytes, r.scope
    assert [r.scope for r in s.rows[:4]] == ["input", "features", "features.conv0", "features.norm0"]
    block = next(r for r in s.rows if r.scope == "features.denseblock1")
    assert block.call == "DenseBlock(n=6, k=32, bn_size=4)" and block.output == [256, 56, 56]
    conv0 = next(r for r in s.rows if r.scope == "features.conv0")
    assert conv0.call == "conv(64, 7, stride=2, pad=3)" and conv0.params == 9408
    concat = next(r for r in s.rows if r.scope == "features.denseblock1.x")
    assert concat.kind == "connection" and concat.call.startswith("++ of 2")
    # --depth limits the rows, not the totals.
    shallow = _summary(str(SPECS / "densenet.ud"), None, {}, depth=1)
    assert {r.level for r in shallow.rows} == {1} and shallow.total == s.total


def test_before_and_after_passes_densenet():
    from udnet.passes.share_concat import estimate_activation_bytes

    ir = build_ir(str(SPECS / "densenet.ud"))
    s = summary.summarize(ir, "densenet.ud", batch=4, dtype="float16")
    names = [n for n, _ in s.stages]
    assert names == ["elaborated", "after prune", "after share-concat"]
    elaborated, pruned, shared = (f for _, f in s.stages)
    assert elaborated == pruned == s.total  # nothing to prune in DenseNet
    compiled = build_ir(str(SPECS / "densenet.ud"))
    optimize(compiled)
    naive, buffer = estimate_activation_bytes(compiled, compiled.graph["buffers"], 2)
    assert shared.activation_bytes == pruned.activation_bytes - 4 * (naive - buffer)
    assert shared.activation_bytes < pruned.activation_bytes / 2
    assert ir.graph.get("buffers") is None  # the passes ran on a copy
    assert any("share-concat" in line for line in s.passes)


def _run(capsys, *args, columns=None, monkeypatch=None):
    if columns is not None:
        monkeypatch.setenv("COLUMNS", str(columns))
    rc = main(["summary", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_table_is_aligned_and_fits(capsys, monkeypatch):
    rc, out, err = _run(capsys, str(SPECS / "resnet.ud"), "--depth", "3", columns=90, monkeypatch=monkeypatch)
    assert rc == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("scope "))
    table = lines[header:]
    end = table.index("", 1)
    table = [line for line in table[:end] if not line.startswith("-") and not line.startswith("(")]
    assert all(len(line) <= 90 for line in lines if not line.startswith("  prune"))
    # right-aligned numbers: every row ends its params and activations columns where the header does
    params_end = table[0].index("params") + len("params")
    for line in table[1:]:
        assert line[params_end - 1].isdigit(), line
        assert line[params_end] == " ", line
    assert any("..." in line for line in table)  # the call column was cut to fit 90 columns
    assert lines[0].startswith(f"{SPECS / 'resnet.ud'}: network ResNet(")
    assert any(line.split()[:1] == ["total"] for line in lines)
    assert "after prune" in out and "before and after the passes" in out

    rc, wide, _ = _run(capsys, str(SPECS / "resnet.ud"), "--depth", "3", columns=250, monkeypatch=monkeypatch)
    assert rc == 0 and "BasicBlock(planes=64, stride=1)" in wide and "conv(128, 3, stride=2, pad=1)" in wide


def test_cli_json(capsys):
    rc, out, err = _run(capsys, str(SPECS / "densenet.ud"), "-D", "blocks=[2,2]", "--batch", "16", "--dtype",
                        "bfloat16", "--depth", "1", "--json")
    assert rc == 0, err
    data = json.loads(out)
    ir = build_ir(str(SPECS / "densenet.ud"), None, ["blocks=[2,2]"])
    assert data["network"] == "DenseNet" and data["arguments"]["blocks"] == [2, 2]
    assert data["batch"] == 16 and data["dtype"] == "bfloat16" and data["bytes_per_element"] == 2
    assert data["total"]["params"] == ir.param_count() and data["total"]["macs"] == ir.mac_count()
    assert data["total"]["activation_bytes"] == sum(summary.activation_elements(ir, n) for n in ir.nodes) * 32
    assert [r["scope"] for r in data["rows"]] == ["input", "features", "relu", "gap", "classifier"]
    assert {s["stage"] for s in data["stages"]} == {"elaborated", "after prune", "after share-concat"}
    assert set(data["rows"][1]) >= {"scope", "level", "kind", "call", "output", "params", "macs", "activation_bytes"}


def test_cli_errors(capsys, tmp_path):
    assert main(["summary", str(SPECS / "densenet.ud"), "--batch", "0"]) == 2
    assert main(["summary", str(SPECS / "densenet.ud"), "--depth", "-1"]) == 2
    with pytest.raises(SystemExit):
        main(["summary", str(SPECS / "densenet.ud"), "--dtype", "float64"])
    bad = tmp_path / "bad.ud"
    bad.write_text("network N(input = [3, 8, 8]) { conv(4, 3) + conv(5, 1) }\n")
    capsys.readouterr()
    assert main(["summary", str(bad)]) == 1
    assert "error:" in capsys.readouterr().err


def test_summary_never_imports_torch():
    code = (
        "import sys; from udnet.cli import main; "
        "rc = main(['summary', 'specs/dpn.ud', '--json']); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr


# ---- how figures print: hand-computed ----


@pytest.mark.parametrize("n,text", [
    (0, "0 B"), (1023, "1,023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (1023.9 * 1024, "1,023.9 KiB"),
    (1024**2 - 1, "1.0 MiB"),
    (3.5 * 2**20, "3.5 MiB"), (7 * 2**30, "7.0 GiB"), (2**40, "1.0 TiB"), (3 * 2**50, "3,072.0 TiB"),
    (-2048, "-2.0 KiB"),
])
def test_human_bytes(n, text):
    assert summary.human_bytes(n) == text


@pytest.mark.parametrize("n,text", [
    (0, "0"), (999, "999"), (1000, "1 K"), (1500, "1.5 K"), (123_456, "123 K"), (999_400, "999 K"),
    (999_999, "1 M"), (999_500, "1 M"), (2.5e9, "2.5 G"), (4e12, "4 T"), (1e15, "1 P"), (2.5e15, "2.5 P"),
    (999.5e15, "1,000 P"), (1e18, "1,000 P"), (2.5e18, "2,500 P"), (-1500, "-1.5 K"),
])
def test_si(n, text):
    assert summary.si(n) == text


@pytest.mark.parametrize("value", [
    {}, [], {"a": []}, {"b": {}}, [1, [2, [3, []]], {"x": None}], [1, None, 2], {"é ℌ": "q\"\\\n", "n": -0.5, "t": True},
    (1, 2), range(3), {"list": [[1, 2], [3]], "deep": {"deeper": {"deepest": [False]}}},
])
def test_json_text_is_json_dumps(value):
    plain = list(value) if isinstance(value, (tuple, range)) else value
    assert summary.json_text(value) == json.dumps(plain, indent=2)
    assert summary.json_text(value, indent=4) == json.dumps(plain, indent=4)


def test_json_of_a_network_argument_nested_beyond_the_recursion_limit(tmp_path, capsys):
    # --json writes the real value, however deep --max-nesting lets it nest.
    depth = sys.getrecursionlimit() + 500
    spec = tmp_path / "deep.ud"
    spec.write_text("network N(input = [3, 8, 8], p = " + "[" * depth + "7" + "]" * depth + ") { relu }\n")
    assert main(["summary", str(spec), "--max-nesting", str(depth + 100), "--json"]) == 0
    compact = capsys.readouterr().out.replace(" ", "").replace("\n", "")
    assert '"p":' + "[" * depth + "7" + "]" * depth in compact


# ---- the table, character by character, for a network small enough to check by hand ----

TINY = """block B(c) {
    conv(c, 3, pad = 1)
    relu
}
network N(input = [3, 8, 8], widths = [4, 6], name = "tiny") {
    b1: B(widths[0])
    b2: B(widths[1])
    gap
    linear(10)
}
"""
# By hand: conv 3->4 3x3 has 3*4*9 = 108 weights and 4*8*8 * 3*9 = 6,912 MACs; conv 4->6
# has 216 and 13,824; linear 6->10 has 70 and 60. Activations (float32): the input
# 3*8*8*4 = 768 B, each conv and relu output 1,024 B (b1) and 1,536 B (b2), gap 24 B,
# linear 40 B: 5,952 B = 5.8 KiB. Eight nodes: input, four ops per block pair, gap, linear, output.
TINY_TAIL = """
before and after the passes:
  stage               nodes  params    MACs  activations
  elaborated              8     394  20.8 K      5.8 KiB
  after prune             8     394  20.8 K      5.8 KiB
  after share-concat      8     394  20.8 K      5.8 KiB
"""


def _tiny_text(width, depth):
    s = summary.summarize(build_ir(TINY), spec="t.ud", depth=depth)
    return summary.format_text(s, width=width)


def test_table_of_a_network_checked_by_hand():
    assert _tiny_text(100, 2) == """\
t.ud: network N(input=[3, 8, 8], widths=[4, 6], name="tiny")
input [3, 8, 8] -> output [10]; activations for batch 1 in float32, MACs per sample

scope    block / op         output     params    MACs  activations
------------------------------------------------------------------
input    input              [3, 8, 8]       0       0        768 B
b1       B(c=4)             [4, 8, 8]     108  6.91 K      2.0 KiB
b1.conv  conv(4, 3, pad=1)  [4, 8, 8]     108  6.91 K      1.0 KiB
b1.relu  relu               [4, 8, 8]       0       0      1.0 KiB
b2       B(c=6)             [6, 8, 8]     216  13.8 K      3.0 KiB
b2.conv  conv(6, 3, pad=1)  [6, 8, 8]     216  13.8 K      1.5 KiB
b2.relu  relu               [6, 8, 8]       0       0      1.5 KiB
gap      gap                [6]             0       0         24 B
linear   linear(10)         [10]           70      60         40 B
------------------------------------------------------------------
total    8 nodes            [10]          394  20.8 K      5.8 KiB
""" + TINY_TAIL + """\
  prune: removed 0 node(s) that cannot reach the output, folded 0
  share-concat: planned 0 shared buffer(s) for 0 concat(s); 0 BN-ReLU-conv1x1 reader(s) fused
"""


def test_narrow_table_wraps_the_call_and_cuts_the_call_column():
    # 59 columns: the network's call wraps between arguments (its closing parenthesis
    # counts: one column short of fitting), the call column is cut with "..." (to no less
    # than 12 characters), the pass reports to the width.
    assert _tiny_text(59, None) == """\
t.ud: network N(input=[3, 8, 8], widths=[4, 6],
    name="tiny")
input [3, 8, 8] -> output [10]; activations for batch 1 in float32, MACs per sample

scope    block / op    output     params    MACs  activations
-----------------------------------------------------------
input    input         [3, 8, 8]       0       0        768 B
b1       B(c=4)        [4, 8, 8]     108  6.91 K      2.0 KiB
b1.conv  conv(4, 3...  [4, 8, 8]     108  6.91 K      1.0 KiB
b1.relu  relu          [4, 8, 8]       0       0      1.0 KiB
b2       B(c=6)        [6, 8, 8]     216  13.8 K      3.0 KiB
b2.conv  conv(6, 3...  [6, 8, 8]     216  13.8 K      1.5 KiB
b2.relu  relu          [6, 8, 8]       0       0      1.5 KiB
gap      gap           [6]             0       0         24 B
linear   linear(10)    [10]           70      60         40 B
-----------------------------------------------------------
total    8 nodes       [10]          394  20.8 K      5.8 KiB
""" + TINY_TAIL + """\
  prune: removed 0 node(s) that cannot reach the output,...
  share-concat: planned 0 shared buffer(s) for 0 concat(...
"""
    assert _tiny_text(60, None).startswith('t.ud: network N(input=[3, 8, 8], widths=[4, 6], name="tiny")\n')
    # 63 columns leave the call column 14 of its 17 characters; 20 cut a report to 20.
    assert "\nb1.conv  conv(4, 3, ...  [4, 8, 8]     108  6.91 K      1.0 KiB\n" in _tiny_text(63, None)
    assert _tiny_text(20, 1).endswith("\n  share-concat: pla...\n")


def test_rows_cut_at_depth_say_so():
    group = "network G(input = [3, 8, 8]) {\n    g: {\n        conv(4, 3)\n        relu\n    }\n    gap\n}\n"
    text = summary.format_text(summary.summarize(build_ir(group), depth=1))
    assert text.startswith("<spec>: network G(input=[3, 8, 8])\n")  # no spec named: a placeholder
    assert "\ng      { ... }     [4, 6, 6]     108  3.89 K      1.1 KiB\n" in text
    assert "(rows to depth 1; --depth N shows more)\n" in text  # a group's rows are left out
    text = _tiny_text(100, 1)
    assert "b1.conv" not in text
    assert "total   8 nodes     [10]          394  20.8 K      5.8 KiB\n(rows to depth 1; --depth N shows more)\n" in text
    assert "(rows to depth" not in _tiny_text(100, 2)  # every block's rows shown: nothing left out


@pytest.mark.parametrize("width,text", [(8, "abcdefgh"), (7, "abcd..."), (4, "a..."), (3, "abc"), (0, "")])
def test_cut_cells_fit_their_width(width, text):
    assert summary._cut("abcdefgh", width) == text


def test_file_names_print_escaped(tmp_path, capsys):
    spec = tmp_path / "n\x1b]0;t\x07\u202e é.ud"
    spec.write_text(TINY)
    assert main(["summary", str(spec)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(tmp_path) + "/n\\x1b]0;t\\x07\\u202e é.ud: network N(")  # printable é stays


def test_connection_rows_at_the_top_level():
    # By hand, batch 2 in float32: the concat's [5, 4, 4] output is 80 * 2 * 4 = 640 B; a
    # join of 2 makes 3 tensors of [4, 4, 4] (the stack of both, then the mean): 1,536 B.
    spec = """network J(input = [3, 4, 4]) {
    x = x ++ (x |> conv(2, 1))
    x = join(x |> conv(4, 1), x |> conv(4, 3, pad = 1), drop_local = 0.1, drop_global = 0.2)
}"""
    rows = summary.rows(build_ir(spec), batch=2, depth=1)
    # In the order the spec computes them, connections among the ops.
    assert [r.scope for r in rows] == ["input", "conv_1", "x", "conv_2", "conv_3", "x"]
    assert [r for r in rows if r.kind == "connection"] == [
        summary.Row("x", 1, "connection", "++ of 2 (channel concat)", [5, 4, 4], 0, 0, 640, 1),
        summary.Row("x", 1, "connection", "join of 2 (drop_local=0.1, drop_global=0.2)", [4, 4, 4], 0, 0, 1536, 1),
    ]


def test_summary_passes_run_as_asked():
    # Dead code: prune removes a 3*4*9 = 108-parameter conv; --fractal-column 1 keeps one column.
    dead = "network D(input = [3, 8, 8]) {\n    unused = x |> conv(4, 3)\n    conv(2, 1)\n}\n"
    stages = dict(summary.summarize(build_ir(dead)).stages)
    assert stages["elaborated"].params - stages["after prune"].params == 108
    kept = summary.summarize(build_ir(dead), disabled={"prune"})
    assert [name for name, _ in kept.stages] == ["elaborated", "after share-concat"] and kept.total.params == 108 + 3 * 2
    fractal = build_ir(str(SPECS / "fractal.ud"), None, ["C=2", "widths=[4]", "drop=[0.0]"])
    whole, column = summary.summarize(fractal).total.params, summary.summarize(fractal, fractal_column=1).total.params
    assert column < whole
    with pytest.raises(ValueError, match="^dtype must be one of float32, float16, bfloat16$"):
        summary.summarize(build_ir(dead), dtype="int8")


def test_rows_default_to_one_sample_and_show_asymmetric_windows():
    rows = summary.rows(build_ir("network A(input = [3, 8, 8]) { conv(4, [3, 5], pad = [1, 2]); maxpool(2) }"))
    assert rows[0] == summary.Row("input", 1, "input", "input", [3, 8, 8], 0, 0, 3 * 8 * 8 * 4, 1)  # one float32 sample
    assert [(r.kind, r.call) for r in rows[1:]] == [("op", "conv(4, [3, 5], pad=[1, 2])"), ("op", "maxpool(2)")]


TWO_OUTPUTS = """
network Two(input = [4, 8, 8]) {
    stem: conv(4, 3, pad = 1)
    x = x * (x |> gap(keep = true) |> sigmoid)
    convs.0: conv(4, 3, pad = 1)
    convs.1: relu
    return {fine: x, coarse: x |> maxpool(2)}
}
"""


def test_table_of_named_outputs_a_product_and_a_module_list_checked_by_hand():
    # conv 4 -> 4, 3x3: 4 * 4 * 9 = 144 parameters, 4 * 8 * 8 outputs of 36 MACs = 9.22 K;
    # the product is a connection row of its own; a module list runs nothing itself.
    s = summary.summarize(build_ir(TWO_OUTPUTS), spec="two.ud")
    assert s.outputs == {"fine": [4, 8, 8], "coarse": [4, 4, 4]}
    assert summary.format_text(s, width=100).split("\n\nbefore and after")[0] == """\
two.ud: network Two(input=[4, 8, 8])
input [4, 8, 8] -> outputs fine [4, 8, 8], coarse [4, 4, 4]; activations for batch 1 in float32, MACs per sample

scope    block / op                output     params    MACs  activations
-------------------------------------------------------------------------
input    input                     [4, 8, 8]       0       0      1.0 KiB
stem     conv(4, 3, pad=1)         [4, 8, 8]     144  9.22 K      1.0 KiB
gap      gap(keep=true)            [4, 1, 1]       0       0         16 B
sigmoid  sigmoid                   [4, 1, 1]       0       0         16 B
x        * (element-wise product)  [4, 8, 8]       0       0      1.0 KiB
convs    (module list)             [4, 8, 8]     144  9.22 K      2.0 KiB
convs.0  conv(4, 3, pad=1)         [4, 8, 8]     144  9.22 K      1.0 KiB
convs.1  relu                      [4, 8, 8]       0       0      1.0 KiB
maxpool  maxpool(2)                [4, 4, 4]       0       0        256 B
-------------------------------------------------------------------------
total    10 nodes                  2 outputs     288  18.4 K      5.3 KiB"""


@pytest.mark.parametrize("spec,outputs", [
    # named outputs of two shapes: the block's row shows the first one's
    ("""block Two(c) {
    y = x |> conv(c, 1)
    return {p: y, q: y |> conv(2, 1)}
}
network N(input = [4, 3, 3]) { o = x |> two: Two(4); return {p: o.p, q: o.q} }""",
     [("input", [4, 3, 3]), ("two", [4, 3, 3]), ("two.conv_1", [4, 3, 3]), ("two.conv_2", [2, 3, 3])]),
    # a single named output
    ("""block One(c) { return {p: x |> conv(c, 1)} }
network N(input = [4, 3, 3]) { o = x |> one: One(2); return {p: o.p} }""",
     [("input", [4, 3, 3]), ("one", [2, 3, 3]), ("one.conv", [2, 3, 3])]),
    # the block returns y, computed before the (dead, unpruned) a: its row shows y's shape
    ("""block B(c) {
    y = x |> conv(c, 1)
    a = y |> conv(2, 1)
    return y
}
network N(input = [4, 3, 3]) { b: B(6) }""",
     [("input", [4, 3, 3]), ("b", [6, 3, 3]), ("b.conv_1", [6, 3, 3]), ("b.conv_2", [2, 3, 3])]),
    # f.b's join was merged into f's (joins are flat): its row shows what it computed last
    ("""block F(C) {
    if C == 1 { return x |> conv(4, 1) }
    return join(x |> a: F(C - 1) |> b: F(C - 1), x |> c: conv(4, 1))
}
network N(input = [4, 3, 3]) { f: F(3) }""",
     [("input", [4, 3, 3]), ("f", [4, 3, 3])] + [(p, [4, 3, 3]) for p in (
         "f.a", "f.a.a", "f.a.b", "f.a.c", "f.a.(join)", "f.b", "f.b.a", "f.b.b", "f.b.c", "f.c", "f.(join)")]),
])
def test_each_scope_row_shows_the_scope_output(spec, outputs):
    assert [(r.scope, r.output) for r in summary.rows(build_ir(spec), depth=3)] == outputs
