"""Concat-buffer sharing: plan one buffer per concat chain.

A chain is x_1 = x_0 ++ y_1, x_2 = x_1 ++ y_2, ... (a DenseNet dense block). Naively
each x_l is a fresh tensor, so layer l's output is stored L - l + 1 times and
training memory grows quadratically with depth. The plan gives the chain one buffer
of its final width; x_0 and each y_l get a channel range in it, and every reader of
an x_l reads a prefix.

A link may also carry a head that is replaced, not extended, at every step: DPN's
x_l = r_l ++ d_l with d_l = d_{l-1} ++ y_l (written ``r ++ x[bw:] ++ y``). Only the
dense part d_l is append-only, so the buffer holds the d's and each link keeps its
head r_l as an ordinary tensor beside it; the slice that drops the previous head
(``x[bw:]``) becomes the buffer itself and costs nothing.

Readers that start with BN-ReLU-conv1x1 (DenseNet-BC's bottleneck, the transitions,
DPN's first 1x1) are marked for a fused kernel that recomputes BN-ReLU in backward
instead of storing it. The PyTorch backend turns the plan into code.

The IR additions, and what a link and a fusable reader are, are in udnet/ir/buffers.py,
which verify() uses to check them after the pass.
"""

from __future__ import annotations

from udnet.ir.buffers import Buffer, fusable, head_width, link_of
from udnet.ir.graph import IR, within
from udnet.passes.manager import Options, Report

#: Shorter chains are not worth a buffer.
MIN_CHAIN = 2


def run(ir: IR, options: Options) -> Report:
    report = Report("share-concat")
    buffers: list[Buffer] = []
    member: set[int] = set()  # bases and links of planned chains
    for n in ir.topo():
        first = link_of(ir, n)
        if n in member or first is None or first.tail in member:
            continue
        chain, tails = [n], []
        while True:
            nxt = _next_links(ir, chain[-1])
            if len(nxt) != 1:
                break
            chain.append(nxt[0][0])
            tails.append(nxt[0][1])
        if len(chain) < MIN_CHAIN:
            continue
        last = ir.nodes[chain[-1]]
        buf = Buffer(len(buffers), ir.nodes[n]["scope"], first.tail, chain,
                     last["shape"][0] - head_width(ir, link_of(ir, chain[-1])))
        buffers.append(buf)
        member.update(chain + [first.tail])
        for c in chain:
            ir.nodes[c]["buffer"] = buf.id
            ir.nodes[c]["head"] = head_width(ir, link_of(ir, c))
        for t in tails:
            if t is not None:
                ir.nodes[t]["tail_of"] = buf.id
    fused = 0
    for buf in buffers:
        for value in [buf.base] + buf.links:
            for r in ir.consumers(value):
                if value == buf.base and not within(ir.nodes[r]["scope"], buf.scope):
                    continue
                if fusable(ir, r):
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


def _next_links(ir: IR, prev: int) -> list[tuple[int, int | None]]:
    """Concats that extend ``prev``'s stored part, each with the slice dropping prev's head."""
    head = head_width(ir, link_of(ir, prev))
    width = ir.nodes[prev]["shape"][0]
    found = []
    for v in ir.consumers(prev):
        if head == 0:
            link = link_of(ir, v)
            if link is not None and link.tail == prev:
                found.append((v, None))
            continue
        d = ir.nodes[v]
        # The slice x[head:] is the stored part itself; anything else reading it needs
        # a tensor, so it must feed the next link alone (once, not also as its head or
        # new part), from the same scope.
        if d["op"] != "slice" or (d["attrs"]["lo"], d["attrs"]["hi"]) != (head, width):
            continue
        readers = ir.consumers(v)
        if len(readers) == 1 and ir.in_degree(readers[0]) == len(set(ir.inputs(readers[0]))):
            link = link_of(ir, readers[0])
            if link is not None and link.tail == v and ir.nodes[readers[0]]["scope"] == d["scope"]:
                found.append((readers[0], v))
    return found


def estimate_activation_bytes(ir: IR, buffers: list[Buffer], dtype_bytes: int = 4) -> tuple[int, int]:
    """Training-time activation bytes per sample held for the chains' concatenations.

    Naive: every x_l is stored, and each BN-ReLU reader of it keeps its BN and ReLU
    outputs. Shared: one buffer and its gradient per chain, and each link's head.
    """
    naive = shared = 0
    for buf in buffers:
        for value in [buf.base] + buf.links:
            c, h, w = ir.nodes[value]["shape"]
            readers = sum(1 for r in ir.consumers(value) if ir.nodes[r].get("fuse") == buf.id)
            naive += c * h * w * (1 + 2 * readers) * (value != buf.base)
            shared += ir.nodes[value].get("head", 0) * h * w
        _, h, w = ir.nodes[buf.links[-1]]["shape"]
        shared += 2 * buf.channels * h * w
    return naive * dtype_bytes, shared * dtype_bytes
