"""The names the elaborator gives a block's unlabelled stages (``relu``, ``relu_1``, ...),
worked out from the syntax tree, for the mirrored class's modules."""

from __future__ import annotations

from typing import Any

from udnet.frontend import ast
from udnet.ops import OPS
from udnet.reserved import MODULE_ATTRS

def auto_names(stmts: list) -> tuple[dict[int, str], set[str]]:
    """The names the elaborator gives the block's unlabelled stages (relu, relu_1, ...),
    where every such stage runs once per instance: stages in loops get none."""
    found: list[tuple[Any, str, bool]] = []
    labels: set[str] = set()

    def base(stage: Any) -> str | None:
        if isinstance(stage, ast.Body):
            return "group"
        try:
            func, _, _ = callee(stage)
        except ValueError:
            return None
        return func if func in OPS else func.lower()

    def stage(value: Any, label: Any, looped: bool) -> None:
        """A stage applied here: its label, or the automatic name it takes."""
        if label is not None:
            labels.add("".join(p for p in label.parts if isinstance(p, str)))
        elif base(value):
            found.append((value, base(value), looped))

    def walk_expr(e: Any, looped: bool) -> None:
        if isinstance(e, ast.Pipe):  # (an inline { ... } stage's stages are its own scope's)
            walk_expr(e.value, looped)
            stage(e.stage, e.label, looped)
        elif isinstance(e, ast.BinOp):
            walk_expr(e.left, looped)
            walk_expr(e.right, looped)
        elif isinstance(e, (ast.TupleExpr,)):
            for i in e.items:
                walk_expr(i, looped)
        elif isinstance(e, ast.SliceExpr):
            walk_expr(e.value, looped)
        elif isinstance(e, ast.Call):
            for a in e.args:
                walk_expr(a, looped)

    def walk(stmts: list, looped: bool) -> None:
        for s in stmts:
            if isinstance(s, ast.ExprStmt):
                stage(s.value, s.label, looped)
                walk_expr(s.value, looped)
            elif isinstance(s, ast.ScopeStmt):
                labels.add("".join(p for p in s.label.parts if isinstance(p, str)))
            elif isinstance(s, (ast.Assign, ast.Return)):
                walk_expr(s.value, looped)
            elif isinstance(s, ast.For):
                walk(s.body.stmts, True)
            elif isinstance(s, ast.If):
                walk(s.body.stmts, looped)
                o = s.orelse
                while isinstance(o, ast.If):
                    walk(o.body.stmts, looped)
                    o = o.orelse
                if o is not None:
                    walk(o.stmts, looped)

    walk(stmts, False)
    counts: dict[str, int] = {}
    for _, b, _ in found:
        counts[b] = counts.get(b, 0) + 1
    seen: dict[str, int] = {}
    out: dict[int, str] = {}
    taken = set(labels)
    for stage, b, looped in found:
        seen[b] = seen.get(b, 0) + 1
        name = b if counts[b] == 1 else f"{b}_{seen[b]}"
        if name.startswith("__"):
            name = "_" + name.lstrip("_")
        while name in taken or name in MODULE_ATTRS:
            name += "_"
        taken.add(name)
        if not looped:
            out[id(stage)] = name
    return out, taken



def callee(stage: Any) -> tuple[str, list, list]:
    """The name a stage calls, with its arguments: ``conv(64, 3)``, ``relu``, ``Block(k)``."""
    if isinstance(stage, ast.Name):
        return stage.id, [], []
    if isinstance(stage, ast.Call) and isinstance(stage.func, ast.Name):
        return stage.func.id, stage.args, stage.kwargs
    raise ValueError(f"stage {type(stage).__name__}")


def called(defn: ast.Definition) -> set[str]:
    """The names a block calls as stages (and any other name it reads: filtered by the caller)."""
    found: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, ast.Name):
            found.add(node.id)
        if isinstance(node, ast.Node) or isinstance(node, list):
            items = node if isinstance(node, list) else vars(node).values()
            for v in items:
                if isinstance(v, (ast.Node, list)):
                    visit(v)

    visit(defn.body)
    return found
