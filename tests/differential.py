"""The emitted module against the reference interpreter (tests/reference_interpreter.py).

``check_against_interpreter(ir, model)`` runs both on the same weights in float64 and
compares, in eval mode, the output, the IR shape of every node (connection nodes
included), and every module of the emitted network: each op's input and output and each
scope's inputs and outputs (forward hooks; a shared concat buffer crossing a module
boundary is compared as the tensor it stands for); in training mode (dropout and
drop-path off), the output, the gradients of the input and of every parameter, and the
BN running statistics after the step.
"""

from __future__ import annotations

import copy
import sys

import torch

from reference_interpreter import ModuleTrace, close, interpret, match_boundary, scope_boundary
from torch_helpers import instantiate
from udnet.ir.graph import IR

RTOL, ATOL = 1e-7, 1e-9


def model_for(ir: IR) -> torch.nn.Module:
    return instantiate(ir).double()


def _fused_nodes(ir: IR) -> set[int]:
    """bn -> relu -> conv readers the share-concat pass marked: one fused call, no module calls."""
    out = set()
    for n, d in ir.nodes(data=True):
        if d.get("fuse") is not None:
            relu = ir.consumers(n)[0]
            out.update((n, relu, ir.consumers(relu)[0]))
    return out


def _deterministic(model: torch.nn.Module) -> None:
    """Dropout and drop-path off, so that training mode is the deterministic math."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if type(m).__name__ == "DropPath":
            m.p = 0.0
        if type(m).__name__ == "Join":
            m.drop_local, m.drop_global, m.global_columns = 0.0, 0.0, None
    ns = sys.modules.get(type(model).__module__)
    if ns is not None and hasattr(ns, "set_drop_path_columns"):
        ns.set_drop_path_columns = lambda *args: None


def _params(model: torch.nn.Module, grad: bool) -> dict[str, torch.Tensor]:
    out = {}
    names = {k for k, _ in model.named_parameters()}
    for k, v in model.state_dict(keep_vars=False).items():
        v = v.detach().clone()
        if grad and v.is_floating_point() and k in names:
            v.requires_grad_()
        out[k] = v
    return out


def network_outputs(ir: IR, y) -> list[torch.Tensor]:
    """The emitted module's result as the IR's outputs in order: a tensor, or for named
    outputs an ordered dict whose keys are the output names in that order."""
    if not ir.named_outputs():
        return [y]
    assert isinstance(y, dict) and list(y) == [name for name, _ in ir.outputs()], list(y)
    return list(y.values())


def check_eval(ir: IR, model: torch.nn.Module, batch: int = 2, seed: int = 0) -> None:
    torch.manual_seed(seed)
    x = torch.randn(batch, *ir.nodes[ir.input_node]["shape"], dtype=torch.float64)
    model.eval()
    params = _params(model, grad=False)
    values = interpret(ir, x, params)  # raises ShapeMismatch where the IR's shape rule is wrong
    with torch.no_grad(), ModuleTrace(model) as trace:
        y = model(x)
    for got, (name, n) in zip(network_outputs(ir, y), ir.outputs(), strict=True):
        want = values[n]
        assert got.shape == want.shape, (name, tuple(got.shape), tuple(want.shape))
        assert close(got, want, RTOL, ATOL), f"eval output {name} differs by {(got - want).abs().max():.3g}"
    _check_modules(ir, model, trace, values)


def _check_modules(ir: IR, model: torch.nn.Module, trace: ModuleTrace, values: dict[int, torch.Tensor]) -> None:
    modules = dict(model.named_modules())
    fused = _fused_nodes(ir)
    mapped = {""}
    problems = []
    topo = ir.topo()
    for n, d in ir.op_nodes():
        if d["name"] is None:
            continue
        path = ir.path(n)
        mapped.add(path)
        if path not in modules:
            problems.append(f"{path}: no such module")
            continue
        calls = trace.calls.get(path, [])
        if not calls:
            if n not in fused:
                problems.append(f"{path} never ran")
            continue
        if len(calls) != 1:
            problems.append(f"{path} ran {len(calls)} times")
            continue
        ins, outs = calls[0]
        for what, seen, exp in (("input", ins, [values[u] for u in ir.inputs(n)]), ("output", outs, [values[n]])):
            bad = match_boundary(seen, exp, RTOL, ATOL)
            if bad:
                problems.append(f"{path} {what}: {bad}")
    for path, scope in ir.graph["scopes"].items():
        mapped.add(path)
        if scope.kind == "container":  # a module list: its modules run, it does not
            continue
        calls = trace.calls.get(path, [])
        if path not in modules or len(calls) != 1:
            problems.append(f"scope {path}: {'no module' if path not in modules else f'ran {len(calls)} times'}")
            continue
        ins_ids, outs_ids = scope_boundary(ir, path, topo)
        ins, outs = calls[0]
        for what, seen, ids in (("inputs", ins, ins_ids), ("outputs", outs, outs_ids)):
            if what == "outputs" and not ids:
                continue  # nothing outside reads the scope (its result is its input, or dead): its return is unused
            bad = match_boundary(seen, [values[u] for u in ids], RTOL, ATOL)
            if bad:
                problems.append(f"scope {path} {what}: {bad}")
    # Modules with no IR label (joins, helpers): whatever they return is some node's value.
    by_shape: dict[tuple, list[torch.Tensor]] = {}
    for v in values.values():
        by_shape.setdefault(tuple(v.shape), []).append(v)
    for path, calls in trace.calls.items():
        if path in mapped:
            continue
        for _, outs in calls:
            for o in outs:
                if not isinstance(o, torch.Tensor) or not any(
                        close(o, v, RTOL, ATOL) for v in by_shape.get(tuple(o.shape), [])):
                    problems.append(f"{path} returned a value that is no node's value")
    assert not problems, "\n".join(problems[:12])


def check_train(ir: IR, model: torch.nn.Module, batch: int = 3, seed: int = 1) -> None:
    """One training step: outputs, input and parameter gradients, BN running statistics."""
    model = copy.deepcopy(model)
    _deterministic(model)
    model.train()
    torch.manual_seed(seed)
    x = torch.randn(batch, *ir.nodes[ir.input_node]["shape"], dtype=torch.float64)
    params = _params(model, grad=True)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    values = interpret(ir, xb, params, training=True)
    wants = [values[n] for _, n in ir.outputs()]
    ws = [torch.randn(want.shape, dtype=torch.float64) for want in wants]
    ys = network_outputs(ir, model(xa))
    for y, want in zip(ys, wants, strict=True):
        assert close(y.detach(), want.detach(), RTOL, ATOL), f"training output differs by {(y - want).abs().max():.3g}"
    sum((y * w).sum() for y, w in zip(ys, ws)).backward()
    sum((want * w).sum() for want, w in zip(wants, ws)).backward()
    assert close(xa.grad, xb.grad, RTOL, ATOL), f"input gradient differs by {(xa.grad - xb.grad).abs().max():.3g}"
    problems = []
    for name, p in model.named_parameters():
        q = params[name]
        if p.grad is None or q.grad is None:
            if (p.grad is None) != (q.grad is None) and not (
                    (p.grad if p.grad is not None else q.grad).abs().max() == 0):
                problems.append(f"{name}: gradient only in {'the interpreter' if p.grad is None else 'the module'}")
            continue
        if not close(p.grad, q.grad, RTOL, ATOL):
            problems.append(f"{name}: gradient differs by {(p.grad - q.grad).abs().max():.3g}")
    for name, b in model.named_buffers():
        if b.is_floating_point() and name in params and not close(b, params[name], RTOL, ATOL):
            problems.append(f"{name}: running statistic differs by {(b - params[name]).abs().max():.3g}")
    assert not problems, "\n".join(problems[:12])


def check_against_interpreter(ir: IR, model: torch.nn.Module | None = None, batch: int = 2,
                              train: bool = True) -> None:
    model = model if model is not None else model_for(ir)
    check_eval(ir, model, batch)
    if train:
        check_train(ir, model, batch + 1)
