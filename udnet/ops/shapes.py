"""Shape rules shared by several op families: the sliding-window arithmetic."""

from __future__ import annotations

from udnet.ops.spec import Shape, ShapeError


def window(size: int, k: int, stride: int, pad: int, dil: int, ceil: bool) -> int:
    span = dil * (k - 1) + 1
    num = size + 2 * pad - span
    # As PyTorch computes it, rounding down (or up, in ceil mode) towards -infinity: in
    # ceil mode a window may hang over the right edge, even of an input smaller than it.
    out = (-(-num // stride) if ceil else num // stride) + 1
    if out < 1:
        return 0
    # PyTorch drops a last window that would start entirely in the right padding.
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def window_out(op: str, s: Shape, a: dict, dil=None) -> tuple[int, int]:
    _, h, w = s  # [C, H, W]: infer_op checks the rank before any rule runs
    kh, kw = a["kernel"]
    sh, sw = a["stride"] if a.get("stride") is not None else a["kernel"]
    ph, pw = a["pad"]
    dh, dw = dil or a["dilation"]  # pooling passes dil: it has no dilation argument
    ceil = a.get("ceil", False)
    oh, ow = window(h, kh, sh, ph, dh, ceil), window(w, kw, sw, pw, dw, ceil)
    if oh < 1 or ow < 1:
        raise ShapeError(
            f"{op} with kernel {kh}x{kw} and padding {ph}x{pw} does not fit the input {h}x{w}",
            hint="the input is too small here: remove a downsampling step or pad more",
        )
    return oh, ow


def same(s: Shape, a: dict) -> Shape:
    return s

