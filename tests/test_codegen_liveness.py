"""A value that is still read after a folded loop keeps its own name in the emitted code.

Regression: when a repeat loop was folded into ``for i in range(n)`` and its carried
value started from a tensor read again after the loop (the block input of a residual
block around a dense block, ``y = x; for ... { y = ... }; return y + x``), the loop
wrote into ``x`` and the sum became ``x + x``; with the concat buffer a later layer
overwrote the buffer's name the same way.
"""

from __future__ import annotations

import torch
from torch_helpers import check_shapes, instantiate

import udnet
from udnet.backends.pytorch.codegen import emit_module
from udnet.backends.pytorch.loader import import_source
from udnet.errors import Source
from udnet.pipeline import build_ir, compile_to_torch, optimize

LOOP = """
block B(c) {
    y = x
    for i in 1..4 { y = y |> conv{i}: conv(c, 3, pad = 1) }
    return y + x
}
network N(input = [4, 8, 8]) { b: B(4) }
"""

DENSE_RES = """
block DenseLayer(k) { norm: bn; relu: relu; conv: conv(k, 3, pad = 1) }
block DenseRes(n, k, out) {
    y = x
    for i in 1..n { y = y ++ (y |> layer{i}: DenseLayer(k)) }
    y = y |> compress: { bn; relu; conv(out, 1) }
    if channels != out { x = x |> proj: { conv(out, 1); bn } }
    return (y + x) |> relu
}
network Net(input = [8, 8, 8]) {
    a: DenseRes(4, 4, 8)
    b: DenseRes(4, 4, 16)
    c: DenseRes(4, 4, 24)
}
"""


def test_folded_loop_keeps_its_input():
    model = udnet.load(LOOP).eval()
    assert "for i in range(1, 5):" in compile_to_torch(Source("loop.ud", LOOP))  # the spec's loop, 1..4
    # The instance path folds the unrolled statements into a loop of its own.
    assert "for i in range(4)" in emit_module(build_ir(Source("loop.ud", LOOP)), "loop.ud", mirror=False)
    plain = import_source(emit_module(build_ir(Source("loop.ud", LOOP)), "loop.ud", mirror=False))
    torch.manual_seed(0)
    other = plain.N().eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(other(torch.ones(1, 4, 8, 8)), model(torch.ones(1, 4, 8, 8)))
    x = torch.randn(2, 4, 8, 8)
    b = model.b
    want = b.conv4(b.conv3(b.conv2(b.conv1(x)))) + x
    with torch.no_grad():
        assert torch.allclose(model(x), want)


def test_dense_block_under_a_residual_sum():
    ir = build_ir(DENSE_RES)
    optimize(ir, {"share-concat"})
    check_shapes(ir, instantiate(ir), batch=2)  # every layer reads the tensor the IR says
    torch.manual_seed(0)
    shared = udnet.load(DENSE_RES).train()
    naive = udnet.load(DENSE_RES, disable=("share-concat",)).train()
    naive.load_state_dict(shared.state_dict())
    x = torch.randn(3, 8, 8, 8)
    a, b = shared(x), naive(x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    grads = dict(shared.named_parameters())
    for name, p in naive.named_parameters():
        torch.testing.assert_close(grads[name].grad, p.grad, rtol=1e-3, atol=1e-4)
    # the naive module really computes relu(compress(dense(x)) + proj(x)) in block b
    naive.eval()
    blk = naive.b
    with torch.no_grad():
        h = naive.a(x)
        y = h
        for i in range(1, 5):
            y = torch.cat([y, getattr(blk, f"layer{i}")(y)], 1)
        want = torch.relu(blk.compress(y) + blk.proj(h))
        torch.testing.assert_close(blk(h), want)


def test_emitted_code_names_the_copy():
    text = emit_module(build_ir(LOOP), "loop.ud")
    assert "y = x\n" in text and "y + x" in text
