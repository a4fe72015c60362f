"""A reference interpreter of the IR, written independently of the PyTorch code generator.

Every IR node is evaluated from its ``op`` and ``attrs`` alone with ``torch.nn.functional``:
no emitted code, no runtime helper, none of the passes' annotations (``buffer``, ``fuse``,
``head``, ``tail_of``) are read. The one fact shared with the emitter is how parameters
are named: a node's weights live in the module at its dotted path (``ir.path(node)``,
the spec's scope and label), so ``params[f"{path}.weight"]`` are the weights the emitted
module uses too (its ``state_dict`` keys are the spec's labels).

``interpret`` returns every node's value, so a test can compare the IR's static shape of
every node (connection nodes included) with what torch computes, and every module of the
emitted network (forward hooks, see ``ModuleTrace``) with the values it should see.
Drop-path and dropout are off: joins are the plain mean (their eval semantics), dropout is
the identity; the drop-path distribution is tested on its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from udnet.ir.graph import IR, within


class ShapeMismatch(AssertionError):
    """Torch computed another shape for a node than the IR states."""


def interpret(ir: IR, x: torch.Tensor, params: dict[str, torch.Tensor], training: bool = False,
              check_shapes: bool = True) -> dict[int, torch.Tensor]:
    """Every node's value for the batch ``x``. ``params`` maps state_dict keys to tensors
    (BN running statistics are updated in place in training, as BatchNorm does)."""
    values: dict[int, torch.Tensor] = {}
    for n in ir.topo():
        d = ir.nodes[n]
        ins = [values[u] for u in ir.inputs(n)]
        if d["op"] == "input":
            v = x
        elif d["op"] == "output":
            v = ins[0]
        else:
            v = _eval(ir, n, d, ins, params, training)
        if check_shapes and tuple(v.shape[1:]) != tuple(d["shape"]):
            raise ShapeMismatch(
                f"node {ir.path(n)} ({d['op']} {d.get('attrs')}): the IR says {list(d['shape'])}, "
                f"torch computes {list(v.shape[1:])} from {[list(t.shape[1:]) for t in ins]}"
            )
        values[n] = v
    return values


def _eval(ir: IR, n: int, d: dict, ins: list[torch.Tensor], params: dict, training: bool) -> torch.Tensor:
    op, a = d["op"], d.get("attrs") or {}
    path = ir.path(n)

    def p(name: str) -> torch.Tensor | None:
        return params.get(f"{path}.{name}")

    if op == "conv":
        return F.conv2d(ins[0], params[f"{path}.weight"], p("bias"), stride=a["stride"], padding=a["pad"],
                        dilation=a["dilation"], groups=a["groups"])
    if op == "conv_transpose":
        return F.conv_transpose2d(ins[0], params[f"{path}.weight"], p("bias"), stride=a["stride"], padding=a["pad"],
                                  output_padding=a["output_pad"], groups=a["groups"], dilation=a["dilation"])
    if op == "linear":
        return F.linear(ins[0], params[f"{path}.weight"], p("bias"))
    if op == "frozen_bn":  # torchvision's FrozenBatchNorm2d formula
        shape = (1, -1, 1, 1)
        scale = p("weight").reshape(shape) * (p("running_var").reshape(shape) + a["eps"]).rsqrt()
        return ins[0] * scale + (p("bias").reshape(shape) - p("running_mean").reshape(shape) * scale)
    if op == "groupnorm":
        return F.group_norm(ins[0], a["groups"], p("weight"), p("bias"), a["eps"])
    if op == "layernorm":
        moved = ins[0].movedim(1, -1)
        return F.layer_norm(moved, moved.shape[-1:], p("weight"), p("bias"), a["eps"]).movedim(-1, 1)
    if op == "bn":
        return F.batch_norm(ins[0], p("running_mean"), p("running_var"), p("weight"), p("bias"),
                            training=training, momentum=a["momentum"], eps=a["eps"])
    if op == "relu":
        return F.relu(ins[0])
    if op == "sigmoid":
        return torch.sigmoid(ins[0])
    if op == "tanh":
        return torch.tanh(ins[0])
    if op == "elu":
        return F.elu(ins[0], a["alpha"])
    if op == "relu6":
        return F.relu6(ins[0])
    if op == "silu":
        return ins[0] * torch.sigmoid(ins[0])
    if op == "gelu":
        return F.gelu(ins[0], approximate=a["approximate"])
    if op == "hardswish":
        return ins[0] * F.relu6(ins[0] + 3) / 6
    if op == "hardsigmoid":
        return F.relu6(ins[0] + 3) / 6
    if op == "leaky_relu":
        return F.leaky_relu(ins[0], a["slope"])
    if op == "softmax":
        return torch.softmax(ins[0], 1)
    if op in ("identity", "dropout", "drop_path"):  # off: the tests compare the deterministic math
        return ins[0]
    if op == "maxpool":
        stride = a["stride"] if a["stride"] is not None else a["kernel"]
        return F.max_pool2d(ins[0], a["kernel"], stride, a["pad"], ceil_mode=a["ceil"])
    if op == "avgpool":
        stride = a["stride"] if a["stride"] is not None else a["kernel"]
        return F.avg_pool2d(ins[0], a["kernel"], stride, a["pad"], ceil_mode=a["ceil"],
                            count_include_pad=a["count_pad"])
    if op == "gap":
        return ins[0].mean((2, 3), keepdim=a["keep"])
    if op == "adaptive_avgpool":
        return F.adaptive_avg_pool2d(ins[0], a["size"])
    if op == "adaptive_maxpool":
        return F.adaptive_max_pool2d(ins[0], a["size"])
    if op == "channel_shuffle":
        n, c, h, w = ins[0].shape
        return ins[0].reshape(n, a["groups"], c // a["groups"], h, w).transpose(1, 2).reshape(n, c, h, w)
    if op == "flatten":
        return ins[0].flatten(1)
    if op == "upsample":
        size = {"size": a["size"]} if a["size"] is not None else {"scale_factor": a["scale"]}
        if a["mode"] == "bilinear":
            return F.interpolate(ins[0], **size, mode="bilinear", align_corners=a["align_corners"])
        return F.interpolate(ins[0], **size, mode="nearest")
    if op == "add":
        out = ins[0]
        for t in ins[1:]:
            out = out + t
        return out
    if op == "concat":
        # Place every operand where its edge says it lands (checks the channel ranges too).
        out = ins[0].new_zeros((ins[0].shape[0], d["shape"][0]) + tuple(ins[0].shape[2:]))
        parts, covered = [], 0
        for (_, _, e), t in zip(ir.in_edges_by_port(n), ins):
            lo, hi = e["channels"]
            assert hi - lo == t.shape[1] and lo == covered, (path, e["channels"], t.shape)
            parts.append(t)
            covered = hi
        assert covered == out.shape[1], (path, covered, out.shape)
        return torch.cat(parts, 1)
    if op == "gate":
        h, x, t = ins  # ports 0, 1, 2
        return t * h + (1 - t) * x
    if op == "mul":  # a [C] vector multiplies every position of a [C, H, W] tensor
        a, b = (t.reshape(t.shape + (1, 1)) if t.dim() == 2 and len(d["shape"]) == 3 else t for t in ins)
        return a * b
    if op == "join":
        return torch.stack(ins).mean(0)
    if op == "slice":
        return ins[0][:, a["lo"]:a["hi"]]
    raise AssertionError(f"the reference interpreter does not know op {op!r}")


# ---------------------------------------------------------------------------
# What crosses a module boundary: a tensor or a tuple of them (shared concat buffers
# included: their links are tensors).


def flatten_boundary(obj) -> list:
    """A module's argument or result as a list of tensors."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [v for o in obj for v in flatten_boundary(o)]
    return []


def snapshot(t: torch.Tensor) -> torch.Tensor:
    """A copy of a boundary value that later in-place writes cannot change."""
    return t.detach().clone()


class ModuleTrace:
    """Forward hooks on every module: what each call received and returned (copied when
    seen, so in-place ReLUs and later buffer writes do not change the record)."""

    def __init__(self, model: torch.nn.Module):
        self.calls: dict[str, list[tuple[list, list]]] = {}
        self._pending: dict[str, list] = {}
        self._hooks = []
        for name, mod in model.named_modules():
            self._hooks.append(mod.register_forward_pre_hook(self._pre(name)))
            self._hooks.append(mod.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(m, args):
            self._pending.setdefault(name, []).append([snapshot(v) for v in flatten_boundary(args)])
        return hook

    def _post(self, name):
        def hook(m, args, out):
            ins = self._pending[name].pop()
            self.calls.setdefault(name, []).append((ins, [snapshot(v) for v in flatten_boundary(out)]))
        return hook

    def close(self) -> None:
        for h in self._hooks:
            h.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def scope_boundary(ir: IR, path: str, topo: list[int] | None = None) -> tuple[list[int], list[int]]:
    """The values a scope reads from outside and the values of it read outside (from the
    IR alone: nodes whose ``scope`` is ``path`` or nested in it)."""
    members = {n for n, d in ir.nodes(data=True)
               if d["op"] not in ("input", "output") and within(d["scope"], path)}
    ins, outs = [], []
    for n in topo if topo is not None else ir.topo():
        if n not in members:
            continue
        for u in ir.inputs(n):
            if u not in members and u not in ins:
                ins.append(u)
        if any(v not in members for v in ir.consumers(n)):
            outs.append(n)
    return ins, outs


def close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if a.shape != b.shape:
        return False
    scale = max(float(b.abs().max()) if b.numel() else 0.0, 1.0)
    return bool(((a.to(b.dtype) - b).abs() <= atol * scale + rtol * b.abs()).all())


def match_boundary(seen: list, expected: list[torch.Tensor], rtol: float, atol: float) -> str | None:
    """Pair every observed value with a distinct expected one (equal shape and values).
    Returns None, or what could not be matched."""
    left = list(range(len(expected)))
    if len(seen) != len(expected):
        return f"{len(seen)} value(s) where the IR has {len(expected)}"
    for obj in seen:
        for i in left:
            if close(obj, expected[i], rtol, atol):
                left.remove(i)
                break
        else:
            want = [list(expected[i].shape) for i in left]
            return f"a value of shape {list(obj.shape)} equals none of the expected {want}"
    return None
