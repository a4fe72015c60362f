"""Shared concat buffers in the IR: what a chain link and a fusable reader are, for the
share-concat pass that plans buffers and for verify(), which checks its annotations.

IR additions (share-concat): graph["buffers"] = [Buffer]; concat nodes in a chain get
``buffer = id`` and ``head`` (the width of their head, 0 for none); the slices that
drop a head get ``tail_of = id``; fused BN readers get ``fuse = id``.
"""

from __future__ import annotations

from dataclasses import dataclass

from udnet.ir.graph import IR, within


@dataclass
class Buffer:
    id: int
    scope: str  # where the chain begins: the first link's scope, which starts the buffer
    base: int  # d_0, the first stored value
    links: list[int]  # the concat nodes x_1 .. x_L, in order
    channels: int  # width of what is stored: the links' final width less its head


@dataclass(frozen=True)
class Link:
    head: int | None  # an operand in front of the stored part, replaced at every link
    tail: int  # the stored part so far: the previous link (less its head) or the base
    new: int  # what this link appends


def link_of(ir: IR, n: int) -> Link | None:
    """A concat of feature maps read as ``[head ++] tail ++ new``."""
    d = ir.nodes[n]
    if d["op"] != "concat" or len(d["shape"]) != 3:
        return None
    ins = ir.inputs(n)
    if len(ins) == 2:
        return Link(None, ins[0], ins[1])
    if len(ins) == 3:
        return Link(ins[0], ins[1], ins[2])
    return None


def head_width(ir: IR, link: Link) -> int:
    return 0 if link.head is None else ir.nodes[link.head]["shape"][0]


def fusable(ir: IR, bn: int) -> bool:
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


def check(ir: IR) -> str | None:
    """The first share-concat annotation that does not describe the graph, or None."""
    buffers = ir.graph.get("buffers", [])
    links: dict[int, int] = {}  # link -> buffer id
    tails: set[int] = set()
    for i, b in enumerate(buffers):
        if b.id != i or not b.links:
            return f"buffer {i} has id {b.id} and {len(b.links)} link(s)"
        if any(n not in ir for n in [b.base] + b.links):
            return f"buffer {i} names a node the graph does not have"
        if b.scope != ir.nodes[b.links[0]]["scope"]:
            return f"buffer {i} begins in {b.scope!r}, its first link in {ir.nodes[b.links[0]]['scope']!r}"
        prev = b.base
        for n in b.links:
            link = link_of(ir, n)
            if link is None or ir.nodes[n].get("buffer") != i or ir.nodes[n].get("head") != head_width(ir, link):
                return f"link {ir.path(n)} of buffer {i} is not a concat annotated with it and its head"
            tail = link.tail
            if prev != b.base and ir.nodes[prev]["head"]:
                # The previous link less its head: a slice that only the next link reads.
                d = ir.nodes[tail]
                width = ir.nodes[prev]["shape"][0]
                if (d["op"] != "slice" or d.get("tail_of") != i or ir.inputs(tail) != [prev]
                        or (d["attrs"]["lo"], d["attrs"]["hi"]) != (ir.nodes[prev]["head"], width)
                        or ir.consumers(tail) != [n]):
                    return f"link {ir.path(n)} of buffer {i} does not extend the previous link less its head"
                tails.add(tail)
            elif tail != prev:
                return f"link {ir.path(n)} of buffer {i} does not extend {ir.path(prev)}"
            links[n] = i
            prev = n
        last = ir.nodes[b.links[-1]]
        if b.channels != last["shape"][0] - last["head"]:
            return f"buffer {i} stores {b.channels} channels, its last link {last['shape'][0] - last['head']}"
    for n, d in ir.nodes(data=True):
        if ("buffer" in d or "head" in d) and (n not in links or links[n] != d.get("buffer")):
            return f"{ir.path(n)} is annotated as a link of buffer {d.get('buffer')} but is none"
        if "tail_of" in d and n not in tails:
            return f"{ir.path(n)} is annotated as dropping a head but drops none"
        if "fuse" in d:
            i = d["fuse"]
            ins = ir.inputs(n)
            if not 0 <= i < len(buffers) or not fusable(ir, n) or len(ins) != 1:
                return f"{ir.path(n)} is marked fused with buffer {i} but is no fusable reader of it"
            b = buffers[i]
            if not (links.get(ins[0]) == i or ins[0] == b.base and within(d["scope"], b.scope)):
                return f"{ir.path(n)} is marked fused with buffer {i} but reads {ir.path(ins[0])}"
    return None
