"""Hardening of the PyTorch emitter: generated names never collide with user names,
a network that returns its input compiles to a working identity module, and emitting
is near-linear in the size of the module tree."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from udnet.backends.pytorch.codegen import emit_module
from udnet.backends.pytorch.loader import import_source
from udnet.reserved import MODULE_ATTRS
from udnet.cli import main
from udnet.errors import Source, UdnetError
from udnet.pipeline import build_ir, optimize

ROOT = Path(__file__).resolve().parents[1]


def compiled(text: str, disabled=()):
    """(IR after the passes, its emitted source, the instantiated module)."""
    ir = build_ir(Source("t.ud", text), None, [], None)
    optimize(ir, disabled)
    src = emit_module(ir, "t.ud")
    module = import_source(src)
    return ir, src, module.__dict__[module.ROOT]()


def check_module(ir, model) -> torch.Tensor:
    """Parameters and state_dict keys are the IR's; a forward pass gives the IR's shape."""
    assert sum(p.numel() for p in model.parameters()) == ir.param_count()
    keys = set(model.state_dict())
    for n, d in ir.op_nodes():
        if d["params"]:
            assert f"{ir.path(n)}.weight" in keys, ir.path(n)
    x = torch.randn(2, *ir.nodes[ir.input_node]["shape"])
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2,) + ir.output_shape
    return y


# ---- 5: generated names against user labels ----

def test_join_submodule_yields_to_a_later_label():
    ir, src, model = compiled("""
network N(input = [4, 8, 8]) {
    a = x |> c1: conv(4, 3, pad = 1)
    b = x |> c2: conv(4, 3, pad = 1)
    x = join(a, b)
    join: conv(4, 1)
}
""")
    check_module(ir, model)
    assert isinstance(model.join, torch.nn.Conv2d)


def test_constructor_parameter_yields_to_a_block_class():
    # conv a's varying width is named from its slot (a_out), which is also a block's class name.
    ir, src, model = compiled("""
block a_out(c) {
    conv: conv(c, 1)
}
block B(c) {
    a: conv(2 * c, 1)
    b: a_out(c)
}
network N(input = [4, 8, 8]) {
    s1: B(8)
    s2: B(16)
}
""")
    check_module(ir, model)
    assert type(model.s1.b).__name__ == "a_out"


def test_forward_attributes_yield_to_labels():
    # The loop count n and slice bound lo vary between the two instances of R, so they
    # are stored on self; labels n: and lo: are submodules of the same class.
    ir, src, model = compiled("""
block R(n, lo) {
    for i in 1..n { l{i}: conv(8, 1) }
    x = x[lo:]
    n: conv(8, 1)
    lo: conv(8, 1)
}
network N(input = [8, 8, 8]) {
    r1: R(3, 2)
    r2: R(4, 3)
}
""")
    check_module(ir, model)
    assert "for i in range(" in src  # the count is a constructor parameter read in forward
    assert isinstance(model.r1.n, torch.nn.Conv2d) and isinstance(model.r2.lo, torch.nn.Conv2d)
    model.to(torch.float64)  # nn.Module's own methods are not shadowed


def test_plain_attribute_never_shadows_module_methods():
    ir, src, model = compiled("""
block R(to, train) {
    for i in 1..to { c{i}: conv(8, 1) }
    x = x[train:]
}
network N(input = [8, 8, 8]) {
    r1: R(3, 2)
    c: conv(8, 1)
    r2: R(4, 3)
}
""")
    check_module(ir, model)
    assert "self.to =" not in src and "self.train =" not in src
    model.train()
    model.to(torch.float64)


def _vocabulary() -> list[str]:
    """Every identifier the emitter writes for the shipped specs that is not one of
    their labels: classes, helpers, parameters, plain attributes, locals, imports."""
    names: set[str] = set()
    labels: set[str] = set()
    for spec, defines in (("densenet.ud", ["blocks=[2,3]"]), ("dpn.ud", ["variant=68"]),
                          ("fractal.ud", ["C=2"]), ("highway.ud", []), ("resnet.ud", []), ("rir.ud", []),
                          ("mobilenet.ud", []), ("efficientnet.ud", []), ("fpn.ud", []), ("unet.ud", ["bilinear=true"])):
        ir = build_ir(Source(spec, (ROOT / "specs" / spec).read_text()), None, defines, None)
        optimize(ir)
        labels.update(d["name"] for _, d in ir.nodes(data=True) if d["name"])
        labels.update(p.rpartition(".")[2] for p in ir.graph["scopes"])
        for node in ast.walk(ast.parse(emit_module(ir, spec))):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                names.add(node.name)
    names |= {"join", "join2", "in_channels", "out_channels", "offset", "width", "repeats", "n0", "n1",
              "y", "y2", "x2", "i", "n", "lo", "c"}
    return sorted(names - labels - set(MODULE_ATTRS))


def _accepted(names: list[str], text: str) -> list[str]:
    """The names the language takes in ``text`` (labels or block names)."""
    ok = []
    for name in names:
        try:
            build_ir(Source("v.ud", text.format(name=name)), None, [], None)
        except UdnetError:
            continue
        ok.append(name)
    return ok


VOCAB = _vocabulary()
LABELS = _accepted(VOCAB, "network N(input = [8, 8, 8]) {{ {name}: conv(8, 1) }}\n")
BLOCKS = _accepted(VOCAB, "block {name}(c) {{ conv(c, 1) }}\nnetwork N(input = [8, 8, 8]) {{ {name}(8) }}\n")

TEMPLATE = """
block {B1}(n, lo, c) {{
    for i in 1..n {{ {L0}{{i}}: conv(c, 1) }}
    x = x[lo:]
    {L1}: conv(c, 1)
    {L2}: conv(2 * c, 1)
    {L3}: {B2}(c)
    a = x |> {L4}: conv(c, 3, pad = 1)
    b = x |> {L5}: conv(c, 1)
    x = join(a, b)
    {L6}: relu
}}
block {B2}(c) {{
    {L7}: conv(c, 1)
    y = x |> {L8}: conv(c, 1)
    x = x ++ y
}}
network {NET}(input = [8, 8, 8]) {{
    {L9}: {B1}(3, 2, 8)
    {L10}: {B1}(4, 3, 16)
    {L11}: {{ {L12}: conv(8, 1) }}
    {L13}: {{ {L14}: {B2}(4) }}
}}
"""


def test_vocabulary_holds_the_generated_names():
    assert {"x", "torch", "nn", "conv2d", "Join", "in_channels", "join", "n0"} <= set(LABELS)
    assert {"torch", "nn", "conv2d", "Join", "in_channels", "DenseLayer", "n", "lo"} <= set(BLOCKS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(labels=["y", "n", "lo", "in_channels", "x", "x2", "join", "c", "offset", "repeats", "width", "conv2d",
                 "torch", "n0", "nn"],
         blocks=["in_channels", "Join", "c"])
@given(labels=st.lists(st.sampled_from(LABELS), min_size=15, max_size=15, unique=True),
       blocks=st.lists(st.sampled_from(BLOCKS), min_size=3, max_size=3, unique=True))
def test_labels_and_blocks_from_the_generated_vocabulary(labels, blocks):
    names = {f"L{k}": v for k, v in enumerate(labels)}
    names.update(B1=blocks[0], B2=blocks[1], NET=blocks[2])
    try:
        text = TEMPLATE.format(**names)
        ir = build_ir(Source("t.ud", text), None, [], None)
    except UdnetError:
        assume(False)
    optimize(ir)
    module = import_source(emit_module(ir, "t.ud"))
    check_module(ir, module.__dict__[module.ROOT]())


# ---- 6: a network whose output is its input ----

IDENTITIES = {
    "identity op": "identity",
    "empty body": "",
    "single join": "x = join(x)",
    "labelled identity": "a: identity",
    "empty block": "b: Empty()",
    "everything pruned": "y = x |> conv(4, 1)",
}


@pytest.mark.parametrize("disabled", [(), ("prune",)], ids=["passes", "no-prune"])
@pytest.mark.parametrize("body", IDENTITIES.values(), ids=IDENTITIES.keys())
def test_identity_network(body, disabled):
    text = "block Empty() {\n}\nnetwork N(input = [4, 8, 8]) {\n    " + body + "\n}\n"
    ir, src, model = compiled(text, disabled)
    assert "def forward(self, x)" in src
    x = torch.randn(2, 4, 8, 8)
    model.eval()
    with torch.no_grad():
        y = model(x)
    if "conv" not in body:
        assert torch.equal(y, x)
    else:
        assert y.shape == x.shape
    assert sum(p.numel() for p in model.parameters()) == ir.param_count()


def test_check_reports_parameters_after_the_passes(tmp_path, capsys):
    spec = tmp_path / "p.ud"
    spec.write_text("network N(input = [4, 8, 8]) {\n    y = x |> conv(4, 1)\n    z = x |> conv(4, 1)\n"
                    "    conv(4, 1)\n}\n")
    assert main(["check", str(spec)]) == 0
    assert "params  48 (16 after passes)" in capsys.readouterr().out
    spec.write_text("network N(input = [4, 8, 8]) {\n    conv(4, 1)\n}\n")
    assert main(["check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "params  16\n" in out and "after passes" not in out
    # The compiled module holds what check reports after the passes.
    spec.write_text("network N(input = [4, 8, 8]) {\n    y = x |> conv(4, 1)\n}\n")
    assert main(["check", str(spec)]) == 0
    assert "params  16 (0 after passes)" in capsys.readouterr().out
    ir, _, model = compiled(spec.read_text())
    assert sum(p.numel() for p in model.parameters()) == 0 == ir.param_count()


# ---- 11: emitting is near-linear in the module tree ----

def _bench_compile():
    """benchmarks/bench_compile.py, whose deep-tree generator the near-linear test shares."""
    spec = importlib.util.spec_from_file_location("bench_compile", ROOT / "benchmarks" / "bench_compile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deep_tree = _bench_compile().deep_tree


def _emit_work(monkeypatch, depth: int, steps: int, patterned: bool = True) -> dict[str, int]:
    """Deterministic measures of the work of emitting a deep tree: Python calls in all,
    graph queries (a node's inputs or consumers), loop-folding comparisons, characters."""
    from udnet.backends.pytorch import structure
    from udnet.ir.graph import IR

    ir = build_ir(Source("deep.ud", deep_tree(depth, steps, patterned)), None, [], None)
    optimize(ir)
    work = {"calls": 0, "queries": 0, "keys": 0}

    def counted(fn, what):
        def wrapper(*a, **k):
            work[what] += 1
            return fn(*a, **k)
        return wrapper

    with monkeypatch.context() as m:
        m.setattr(IR, "inputs", counted(IR.inputs, "queries"))
        m.setattr(IR, "consumers", counted(IR.consumers, "queries"))
        m.setattr(structure, "_stmt_key", counted(structure._stmt_key, "keys"))

        def count(frame, event, arg):
            if event == "call":
                work["calls"] += 1

        sys.setprofile(count)
        try:
            src = emit_module(ir, "deep.ud")
        finally:
            sys.setprofile(None)
    work.update(size=len(src), nodes=ir.number_of_nodes(), edges=ir.number_of_edges())
    return work


@pytest.mark.parametrize("patterned", [True, False], ids=["loops", "unrolled"])
def test_emitting_a_deep_tree_is_near_linear(monkeypatch, patterned):
    w = _emit_work(monkeypatch, 12, 10, patterned)
    for depth, steps in ((24, 10), (12, 21)):  # twice the nodes: twice as deep, or twice as wide
        w2 = _emit_work(monkeypatch, depth, steps, patterned)
        grow = w2["nodes"] / w["nodes"]
        assert 1.8 < grow < 2.2
        # Each node's edges are looked up a bounded number of times, however deep it is nested.
        assert w2["queries"] <= 2 * (w2["nodes"] + w2["edges"]), (depth, steps, w2)
        # Loop folding gives up a run as soon as its labels break the pattern.
        assert w2["keys"] <= 1.25 * grow * w["keys"], (depth, steps, w, w2)
        assert w2["size"] <= 1.25 * grow * w["size"], (depth, steps, w, w2)
        # Nor does a class carry the numbers of everything nested in it.
        assert w2["calls"] <= 1.25 * grow * w["calls"], (depth, steps, w, w2)
