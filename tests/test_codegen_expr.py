"""The emitter's expression tree and line layout (udnet/backends/pytorch/expr.py, layout.py):
what each node renders to, the parentheses precedence needs, ruff's slice spacing, and
calls split at their arguments, nested calls included, when a line is too long."""

from __future__ import annotations

import ast

import pytest

from udnet.backends.pytorch.expr import (
    SELF,
    BinOp,
    Call,
    FString,
    List,
    Lit,
    Name,
    Neg,
    Slice,
    Subscript,
    Tuple,
    call,
    read_names,
    render,
    self_attr,
)
from udnet.backends.pytorch.layout import BODY_WIDTH, stmt_lines
from udnet.ops import CONNECTIONS

x, y, i = Name("x"), Name("y"), Name("i")


@pytest.mark.parametrize("expr, text", [
    (Lit(3), "3"), (Lit(-3), "-3"), (Lit(0.5), "0.5"), (Lit(True), "True"), (Lit(None), "None"),
    (Lit('a"b\\'), '"a\\"b\\\\"'), (Lit((1,)), "(1,)"), (Lit(("a", 2)), '("a", 2)'),
    (Tuple((x,)), "(x,)"), (Tuple((x, y)), "(x, y)"), (List((x, y)), "[x, y]"),
    (self_attr("n"), "self.n"), (call("nn.Conv2d", Lit(3), bias=Lit(False)), "nn.Conv2d(3, bias=False)"),
    (Call(call("getattr", SELF, Lit("a")), (x,)), 'getattr(self, "a")(x)'),
    (FString(("conv", BinOp(i, "+", Lit(1)), ".x")), 'f"conv{i + 1}.x"'),
    (FString(("{", i, "}")), 'f"{{{i}}}"'),
    (BinOp(BinOp(x, "+", y), "+", i), "x + y + i"),
    (BinOp(x, "-", BinOp(y, "-", i)), "x - (y - i)"),
    (BinOp(BinOp(Lit(1), "-", x), "*", y), "(1 - x) * y"),
    (BinOp(x, "+", BinOp(Lit(2), "*", i)), "x + 2 * i"),
    (Neg(i), "-i"), (Neg(BinOp(x, "+", y)), "-(x + y)"),
    (Subscript(x, (Slice(), Slice(Lit(2), i))), "x[:, 2:i]"),
    (Subscript(x, (Slice(), Slice(self_attr("lo")))), "x[:, self.lo :]"),
    (Subscript(x, (Slice(), Slice(None, BinOp(i, "+", Lit(1))))), "x[:, : i + 1]"),
    (Subscript(x, (Slice(), Slice(BinOp(Lit(1), "+", i), BinOp(Lit(9), "-", i)))), "x[:, 1 + i : 9 - i]"),
])
def test_render(expr, text):
    assert render(expr) == text
    ast.parse(text, mode="eval")


def test_read_names_sees_every_name_but_no_attribute():
    e = call("torch.cat", List((x, Subscript(self_attr("y"), (i,)))), Lit(1))
    assert set(read_names(e)) == {"torch", "x", "self", "i"}


def test_connections_build_their_forward_expressions():
    h, t = Name("h"), Name("t")
    assert render(CONNECTIONS["add"].forward([x, y, h], ())) == "x + y + h"
    assert render(CONNECTIONS["concat"].forward([x, y], ())) == "torch.cat([x, y], 1)"
    assert render(CONNECTIONS["gate"].forward([h, x, t], ())) == "t * h + (1 - t) * x"
    assert render(CONNECTIONS["mul"].forward([x, y], (False, True))) == "x * y[:, :, None, None]"


def test_long_calls_split_at_their_arguments_as_ruff_does():
    long = "a" * 40
    module = call("conv2d", Name(long), Name(long), Lit(3), padding=Lit(1))
    assert stmt_lines("self.c = ", module) == [
        "self.c = conv2d(",
        f"    {long},",
        f"    {long},",
        "    3,",
        "    padding=1,",
        ")",
    ]
    # a call inside a split call is split too when it does not fit, with its own trailing comma
    put = Call(self_attr("add_module"), (Lit("c"), module))
    assert stmt_lines("", put, "    ") == [
        "    self.add_module(",
        '        "c",',
        "        conv2d(",
        f"            {long},",
        f"            {long},",
        "            3,",
        "            padding=1,",
        "        ),",
        "    )",
    ]
    # arguments that fit on one line of their own
    assert stmt_lines("y = ", call("f" * 75, x, y)) == ["y = " + "f" * 75 + "(", "    x, y", ")"]
    # a call of a call is split at its last argument list, whatever its callee says
    label = "b" * 70
    assert stmt_lines("x = ", Call(call("getattr", SELF, Lit(label)), (x,))) == [
        f'x = getattr(self, "{label}")(', "    x", ")"]
    # what is not a call stays on its line, however long
    assert stmt_lines("y = ", BinOp(Name(long), "+", Name(long))) == [f"y = {long} + {long}"]
    assert all(len(line) <= BODY_WIDTH for line in stmt_lines("self.c = ", module))
