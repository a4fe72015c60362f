"""Mirrored classes: one class per spec block, translated from the block's syntax tree,
so that model.py reads like the spec (its parameters, its ifs and loops, its recursion).

- translate.py: a block's syntax tree -> its class's program (program.py): statements,
  tensors and stages; its mixins values.py (value expressions, labels) and control.py
  (``if`` and ``for``); rewrite.py: what is rewritten once a block is translated;
- labels.py: the names the elaborator gives unlabelled stages, and the blocks a block calls;
- check.py: the program run on every instance's arguments against the elaborated IR;
  unchecked.py: the constructor fields of ops no instance built;
- render.py: the program as the lines of ``__init__`` and ``forward``;
- this module: which blocks are mirrored: those whose translation the check finds exact
  for every instance, whose called blocks are mirrored too. The others keep the
  instance path (classes.py). A block called by itself is translated with a guess of
  its output channels (its base case's), kept where every return agrees.
"""

from __future__ import annotations

from udnet.backends.pytorch.mirror.labels import called
from udnet.backends.pytorch.mirror.program import MirrorClass, Unsupported
from udnet.backends.pytorch.mirror.translate import Translator
from udnet.backends.pytorch.mirror.check import Checker
from udnet.backends.pytorch.mirror.unchecked import unchecked_fields
from udnet.backends.pytorch.structure import Instance
from udnet.frontend import ast
from udnet.ir.graph import IR
from udnet.reserved import RESERVED_IN_MODEL

#: Names a mirrored class's locals and parameters must not take: Python's and model.py's
#: own (the instance path's loop index ``i`` and ``name`` aside: spec variables keep those).
_RESERVED = set(RESERVED_IN_MODEL) - {"i", "name"}


def mirrored(ir: IR, root: Instance, why: dict[str, str] | None = None,
             taken: set[str] = frozenset()) -> dict[str, MirrorClass]:
    """The mirrored class of every block that has one; ``why`` collects, per other block,
    what kept it on the instance path. ``taken``: names the classes' parameters and locals
    must not take (the file's class names)."""
    blocks: dict[str, ast.Definition] = ir.graph.get("blocks", {})
    reserved = _RESERVED | set(taken)
    instances: dict[str, list[Instance]] = {}

    def walk(inst: Instance) -> None:
        if inst.kind == "block":
            instances.setdefault(inst.name, []).append(inst)
        for c in inst.children:
            if c.instance is not None:
                walk(c.instance)

    walk(root)
    why = {} if why is None else why
    # Every block an instantiated block may call, instantiated or not: a branch no
    # instance takes still names its class (Stage's Bottleneck in a ResNet-18).
    calls: dict[str, set[str]] = {}
    todo = [name for name in instances if name in blocks]
    while todo:
        name = todo.pop()
        if name not in calls:
            calls[name] = called(blocks[name]) & set(blocks)
            todo.extend(calls[name])
    classes: dict[str, MirrorClass] = {}
    for name in _callees_first(calls):
        if calls[name] - {name} - set(classes):
            why[name] = "it calls a block that is not mirrored"
            continue
        try:
            classes[name] = _translate(blocks[name], classes, blocks, reserved)
        except Unsupported as err:
            why[name] = str(err)
    checker = Checker(ir, classes)
    for name in list(classes):
        try:
            for inst in instances.get(name, ()):
                checker.check(classes[name], inst)
            unchecked_fields(classes[name])
        except Unsupported as err:
            why[name] = str(err)
            del classes[name]
    # A block whose callee lost its class loses its own.
    changed = True
    while changed:
        changed = False
        for name in list(classes):
            if calls[name] - set(classes):
                why[name] = "it calls a block that is not mirrored"
                del classes[name]
                changed = True
    return classes


def _translate(defn: ast.Definition, classes: dict, blocks: dict, reserved: set[str]) -> MirrorClass:
    if defn.name not in called(defn):
        return Translator(defn, classes, blocks, reserved).translate()
    # Recursion: guess the output channels from a return that does not read them from a
    # call of itself (the base case's), and keep the guess if every return agrees.
    first = Translator(defn, {**classes, defn.name: _provisional(defn, None, reserved)}, blocks, reserved).translate()
    for guess in first.returns:
        callee = _provisional(defn, guess, reserved)
        callee.returns_join = first.returns_join
        try:
            again = Translator(defn, {**classes, defn.name: callee}, blocks, reserved).translate()
        except Unsupported:
            continue
        if again.out_channels == guess:
            return again
    callee = _provisional(defn, None, reserved)
    callee.returns_join = first.returns_join
    result = Translator(defn, {**classes, defn.name: callee}, blocks, reserved).translate()
    result.keeps_out = callee.keeps_out
    return result


def _provisional(defn: ast.Definition, out, reserved: set[str]) -> MirrorClass:
    """The signature of a block being translated, for its calls of itself."""
    channel_params, params, defaults = Translator(defn, {}, {}, reserved).signature()
    return MirrorClass(defn.name, defn, channel_params + params, channel_params, defaults, [], [], [], out)


def _callees_first(calls: dict[str, set[str]]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            return  # mutual recursion: the check rejects what it cannot translate
        state[name] = 1
        for callee in sorted(calls.get(name, ())):
            if callee != name and callee in calls:
                visit(callee)
        state[name] = 2
        order.append(name)

    for name in calls:
        visit(name)
    return order
