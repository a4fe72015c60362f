"""The scope tree (udnet.ir.analysis.ScopeTree) of a small spec, counted by hand: parents,
children in creation order, depths, enclosing scopes, and containers kept (drawing,
summary) or left out (the PyTorch backend's modules); and verify's check of what it
relies on."""

from __future__ import annotations

import pytest

from udnet.ir.analysis import ScopeTree
from udnet.ir.verify import VerifyError, verify
from udnet.pipeline import build_ir

SPEC = """
block Pair(c) {
    a: conv(c, 3, pad = 1)
    b: relu
}

network Tree(input = [3, 8, 8]) {
    stem: Pair(4)
    convs.0: Pair(4)
    head: {
        convs.1.inner: Pair(4)
        bn
    }
    Pair(4)
}
"""


@pytest.fixture(scope="module")
def ir():
    return build_ir(SPEC)


def test_the_tree_with_its_containers(ir):
    tree = ScopeTree(ir)
    # stem, then the container convs (made by convs.0:) with its block, then the group
    # head with the containers of convs.1.inner:, then the unlabelled Pair (named pair, after its block).
    assert list(tree.scopes) == ["stem", "convs", "convs.0", "head", "head.convs", "head.convs.1",
                                 "head.convs.1.inner", "pair"]
    assert tree.parent == {"stem": "", "convs": "", "convs.0": "convs", "head": "", "head.convs": "head",
                           "head.convs.1": "head.convs", "head.convs.1.inner": "head.convs.1", "pair": ""}
    assert tree.children == {"": ["stem", "convs", "head", "pair"], "stem": [], "convs": ["convs.0"],
                             "convs.0": [], "head": ["head.convs"], "head.convs": ["head.convs.1"],
                             "head.convs.1": ["head.convs.1.inner"], "head.convs.1.inner": [], "pair": []}
    assert tree.depth == {"": 0, "stem": 1, "convs": 1, "convs.0": 2, "head": 1, "head.convs": 2,
                          "head.convs.1": 3, "head.convs.1.inner": 4, "pair": 1}
    assert tree.enclosing("head.convs.1.inner") == ["head.convs.1.inner", "head.convs.1", "head.convs", "head"]
    assert tree.enclosing("") == []
    assert tree.scope_of("head.convs") == "head.convs"


def test_the_tree_without_containers_hangs_their_scopes_on_the_scope_around(ir):
    tree = ScopeTree(ir, containers=False)
    assert list(tree.scopes) == ["stem", "convs.0", "head", "head.convs.1.inner", "pair"]
    assert tree.parent == {"stem": "", "convs.0": "", "head": "", "head.convs.1.inner": "head", "pair": ""}
    assert tree.children[""] == ["stem", "convs.0", "head", "pair"]
    assert tree.children["head"] == ["head.convs.1.inner"]
    assert tree.depth["convs.0"] == 1 and tree.depth["head.convs.1.inner"] == 2
    # A container stands for the scope that runs it.
    assert tree.scope_of("convs") == ""
    assert tree.scope_of("head.convs.1") == "head"
    assert tree.enclosing("head.convs") == ["head"]


def test_nodes_lie_in_the_tree(ir):
    tree = ScopeTree(ir)
    scope_of_op = {ir.path(n): d["scope"] for n, d in ir.nodes(data=True) if d["name"]}
    assert scope_of_op == {"stem.a": "stem", "stem.b": "stem", "convs.0.a": "convs.0", "convs.0.b": "convs.0",
                           "head.convs.1.inner.a": "head.convs.1.inner", "head.convs.1.inner.b": "head.convs.1.inner",
                           "head.bn": "head", "pair.a": "pair", "pair.b": "pair"}
    assert all(s == "" or s in tree.scopes for s in scope_of_op.values())


def test_verify_rejects_scopes_that_form_no_tree():
    ir = build_ir(SPEC)
    scopes = ir.graph["scopes"]
    inner = scopes.pop("head.convs.1")
    scopes["head.convs.1"] = inner  # listed after its own scope head.convs.1.inner
    with pytest.raises(VerifyError, match="'head.convs.1.inner' is not listed after the scope around it"):
        verify(ir, "a test")
    ir = build_ir(SPEC)
    del ir.graph["scopes"]["pair"]
    with pytest.raises(VerifyError, match="node pair.a is in the scope 'pair', which is not listed"):
        verify(ir, "a test")
