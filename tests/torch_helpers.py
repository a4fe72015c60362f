"""Shared checks of an emitted module against its IR (used by several test files)."""

from __future__ import annotations

import torch

from udnet.backends.pytorch.codegen import emit_module
from udnet.backends.pytorch.loader import import_source
from udnet.ir.graph import IR


def instantiate(ir: IR) -> torch.nn.Module:
    module = import_source(emit_module(ir, "test.ud"))
    return module.__dict__[module.ROOT]()


def check_shapes(ir: IR, model: torch.nn.Module, batch: int) -> None:
    """Run a real forward pass and compare every op node's input and output, every
    scope's inputs and outputs, and the network output with the IR's static shapes."""
    seen: dict[str, tuple] = {}
    hooks = []
    for name, mod in model.named_modules():
        def hook(m, args, out, name=name):
            outs = tuple(out.values()) if isinstance(out, dict) else out if isinstance(out, tuple) else (out,)
            seen[name] = ([tuple(a.shape[1:]) for a in args], [tuple(o.shape[1:]) for o in outs])

        hooks.append(mod.register_forward_hook(hook))
    x = torch.randn(batch, *ir.nodes[ir.input_node]["shape"])
    model.eval()
    with torch.no_grad():
        y = model(x)
    for h in hooks:
        h.remove()
    if isinstance(y, dict):  # named outputs, in the spec's order
        assert list(y) == [name for name, _ in ir.outputs()]
        for name, n in ir.outputs():
            assert y[name].shape == (batch,) + ir.nodes[n]["shape"], name
    else:
        assert y.shape == (batch,) + ir.output_shape
    for n, d in ir.op_nodes():
        if d["name"] is None:
            continue
        path = ir.path(n)
        assert path in seen, f"{path} never ran"
        ins, outs = seen[path]
        assert outs == [d["shape"]], (path, outs, d["shape"])
        assert ins == [ir.nodes[u]["shape"] for u in ir.inputs(n)], path
    for path, scope in ir.graph["scopes"].items():
        if path not in seen:
            continue  # a scope whose value nobody reads still ran if it has modules
        ins, _ = seen[path]
        assert ins[0] == ir.nodes[scope.input]["shape"], path


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
