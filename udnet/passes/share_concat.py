"""Concat-buffer sharing: plan one buffer per concat chain.

A chain is x_1 = x_0 ++ y_1, x_2 = x_1 ++ y_2, ... (a DenseNet dense block). Naively
each x_l is a fresh tensor, so layer l's output is stored L - l + 1 times and
training memory grows quadratically with depth. The plan gives the chain one buffer
of its final width; x_0 and each y_l get a channel range in it, and every reader of
an x_l reads a prefix. Readers that start with BN-ReLU-conv1x1 (DenseNet-BC's
bottleneck, the transitions) are marked for a fused kernel that recomputes BN-ReLU
in backward instead of storing it. The PyTorch backend turns the plan into code.

IR additions: graph["buffers"] = [Buffer]; concat nodes in a chain get
``buffer = id``; fused BN readers get ``fuse = id``.
"""

from __future__ import annotations

from dataclasses import dataclass

from udnet.ir.graph import IR
from udnet.passes.manager import Options, Report

#: Shorter chains are not worth a buffer.
MIN_CHAIN = 2


@dataclass
class Buffer:
    id: int
    scope: str  # where the chain's concats live (the dense block)
    base: int  # x_0
    links: list[int]  # the concat nodes x_1 .. x_L, in order
    channels: int  # width of the whole buffer


def run(ir: IR, options: Options) -> Report:
    report = Report("share-concat")
    buffers: list[Buffer] = []
    taken: set[int] = set()
    for n in ir.topo():
        if n in taken or not _is_link(ir, n):
            continue
        chain = [n]
        while True:
            nxt = [v for v in ir.consumers(chain[-1]) if _is_link(ir, v) and ir.inputs(v)[0] == chain[-1]]
            if len(nxt) != 1:
                break
            chain.append(nxt[0])
        scope = ir.nodes[chain[0]]["scope"]
        if len(chain) < MIN_CHAIN or any(ir.nodes[c]["scope"] != scope for c in chain):
            continue
        buf = Buffer(len(buffers), scope, ir.inputs(chain[0])[0], chain, ir.nodes[chain[-1]]["shape"][0])
        buffers.append(buf)
        taken.update(chain)
        for c in chain:
            ir.nodes[c]["buffer"] = buf.id
    fused = 0
    for buf in buffers:
        for value in [buf.base] + buf.links:
            for r in ir.consumers(value):
                if value == buf.base and not _within(ir.nodes[r]["scope"], buf.scope):
                    continue
                if _fusable(ir, r):
                    ir.nodes[r]["fuse"] = buf.id
                    fused += 1
    ir.graph["buffers"] = buffers
    before, after = estimate_activation_bytes(ir, buffers)
    report.lines.append(
        f"planned {len(buffers)} shared buffer(s) for {sum(len(b.links) for b in buffers)} concat(s); "
        f"{fused} BN-ReLU-conv1x1 reader(s) fused"
    )
    if buffers:
        report.lines.append(
            f"concat activations per sample: {before / 2**20:.1f} MiB naive -> {after / 2**20:.1f} MiB shared"
        )
    return report


def _is_link(ir: IR, n: int) -> bool:
    d = ir.nodes[n]
    return d["op"] == "concat" and ir.in_degree(n) == 2 and len(d["shape"]) == 3


def _within(path: str, scope: str) -> bool:
    return path == scope or path.startswith(scope + ".") or not scope


def _fusable(ir: IR, bn: int) -> bool:
    """bn -> relu -> conv 1x1 (stride 1, no padding, one group), each the only reader of the last."""
    d = ir.nodes[bn]
    if d["op"] != "bn" or not d["attrs"]["affine"]:
        return False
    relu = ir.consumers(bn)
    if len(relu) != 1 or ir.nodes[relu[0]]["op"] != "relu":
        return False
    conv = ir.consumers(relu[0])
    if len(conv) != 1 or ir.nodes[conv[0]]["op"] != "conv":
        return False
    a = ir.nodes[conv[0]]["attrs"]
    one = (1, 1)
    same_scope = ir.nodes[relu[0]]["scope"] == ir.nodes[conv[0]]["scope"] == d["scope"]
    return same_scope and a["kernel"] == one and a["stride"] == one and a["pad"] == (0, 0) and (
        a["dilation"] == one and a["groups"] == 1
    )


def estimate_activation_bytes(ir: IR, buffers: list[Buffer], dtype_bytes: int = 4) -> tuple[int, int]:
    """Training-time activation bytes per sample held for the chains' concatenations.

    Naive: every x_l is stored, and each BN-ReLU reader of it keeps its BN and ReLU
    outputs. Shared: one buffer and its gradient per chain.
    """
    naive = shared = 0
    for buf in buffers:
        for value in [buf.base] + buf.links:
            c, h, w = ir.nodes[value]["shape"]
            readers = sum(1 for r in ir.consumers(value) if ir.nodes[r].get("fuse") == buf.id)
            naive += c * h * w * (1 + 2 * readers) * (value != buf.base)
        c, h, w = ir.nodes[buf.links[-1]]["shape"]
        shared += 2 * c * h * w
    return naive * dtype_bytes, shared * dtype_bytes
