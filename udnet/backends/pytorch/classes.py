"""Classes from block instances: instances whose templates are equal up to numbers
share a class; the numbers that differ between them become constructor parameters
(named after the block's own arguments where they match), the rest stay literals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from udnet.backends.pytorch.expr import Expr, Lit, Name
from udnet.backends.pytorch.mirror.program import MirrorClass
from udnet.backends.pytorch.names import Namespace
from udnet.backends.pytorch.naming import name_classes, pyname
from udnet.backends.pytorch.structure import Child, Instance, Loop, Stmt, fold_loops, label_pattern
from udnet.backends.pytorch.templates import (
    Affine,
    ChildNums,
    Num,
    affine_form,
    assign_slots,
    child_nums,
    forward_slots,
    has_lists,
    num_leaves,
    numify,
    per_iteration,
    shape_key,
    slot_hint,
    slot_values,
    used_slots,
)
from udnet.ir.graph import IR
from udnet.reserved import MODULE_ATTRS, RESERVED_IN_MODEL


@dataclass(eq=False)
class ClassDef:
    name: str
    instances: list[Instance]
    templates: list[Any]
    params: list[str] = field(default_factory=list)
    slot_code: list[Expr] = field(default_factory=list)  # per slot: a literal or a parameter's Name
    forward_attrs: set[str] = field(default_factory=set)
    param_slot: list[int] = field(default_factory=list)  # first slot of each parameter
    vectors: list[list] = field(default_factory=list)  # per instance: the value of each slot
    index: dict[int, int] = field(default_factory=dict)  # id(instance) -> its position
    mirror: MirrorClass | None = None  # a block printed from its syntax tree (mirror.py)


def _names_called(mc: MirrorClass) -> set[str]:
    from udnet.backends.pytorch.mirror.labels import called

    return called(mc.defn)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)  # 0.0 is not -0.0, [1] is not [true]


class Classes:
    """The classes of a module tree, innermost first (each class before the classes that use it)."""

    def __init__(self, ir: IR, root: Instance, mirrors: dict[str, MirrorClass] | None = None):
        self.ir = ir
        self.mirrors = mirrors or {}
        self.mirror_cds: dict[str, ClassDef] = {}
        self.classes: dict[tuple, ClassDef] = {}
        self.order: list[ClassDef] = []
        self.class_of_inst: dict[int, ClassDef] = {}
        self.op_keys: dict[int, tuple] = {}  # id(child) -> key; the children live as long as self
        self.tpl_of: dict[int, Any] = {}  # id(instance) -> its template (children unresolved)
        self._collect(root)
        self._add_uninstantiated()
        self.class_names = name_classes(self.order)
        for cd in self.order:
            self._finish(cd)

    def _collect(self, inst: Instance) -> None:
        if inst.kind == "block" and inst.name in self.mirrors:
            self._collect_mirrored(inst)
            return
        for c in inst.children:
            if c.instance is not None:
                self._collect(c.instance)
        fold_loops(inst, self._child_key)
        tpl = self._template(inst)
        # A loop over explicit per-iteration lists reads worse than the unrolled code.
        listy = [k for k, item in enumerate(tpl[2]) if item[0] == "loop" and has_lists(item)]
        if listy:
            body = []
            for k, item in enumerate(inst.body):
                body.extend(item.stmts if k in listy else [item])
            inst.body = body
            tpl = self._template(inst)
        key = (inst.kind, inst.name, shape_key(tpl))
        cd = self.classes.get(key)
        if cd is None:
            cd = ClassDef("", [], [])  # named once every class is known (naming.name_classes)
            self.classes[key] = cd
            self.order.append(cd)
        cd.instances.append(inst)
        cd.templates.append(tpl)
        self.class_of_inst[id(inst)] = cd
        self.tpl_of[id(inst)] = tpl

    def _collect_mirrored(self, inst: Instance) -> None:
        """One class for every instance of the block; its arguments are its constructor's."""

        def nested(i: Instance) -> None:
            for c in i.children:
                if c.instance is not None:
                    self._collect(c.instance) if c.instance.kind == "block" else nested(c.instance)

        nested(inst)
        cd = self.mirror_cds.get(inst.name)
        if cd is None:
            cd = self.mirror_cds[inst.name] = ClassDef("", [], [], mirror=self.mirrors[inst.name])
            self.order.append(cd)
        mc = cd.mirror
        vector = [self.ir.nodes[v]["shape"][0] for v in inst.inputs[:len(mc.channel_params)]]
        vector += [inst.args[p.name] for p in mc.defn.params]
        if mc.span_chain is not None:  # the width of the buffer the pass starts here, if any
            vector.append(next((b.channels for b in self.ir.graph.get("buffers", []) if b.scope == inst.path),
                               None))
        cd.instances.append(inst)
        cd.vectors.append(vector)
        self.class_of_inst[id(inst)] = cd
        self.tpl_of[id(inst)] = ("mirror", tuple(Num(v) for v in vector))

    def _add_uninstantiated(self) -> None:
        """Mirrored classes no instance uses (a branch the configuration never takes), each
        before the first class that names it."""
        for block, mc in self.mirrors.items():
            if block in self.mirror_cds:
                continue
            cd = self.mirror_cds[block] = ClassDef("", [], [], mirror=mc)
            users = [k for k, other in enumerate(self.order)
                     if other.mirror is not None and block in _names_called(other.mirror)]
            self.order.insert(users[0] if users else len(self.order), cd)

    def _child_key(self, child: Child) -> tuple:
        if child.kind == "scope":
            return ("scope", id(self.class_of_inst[id(child.instance)]))
        key = self.op_keys.get(id(child))  # loop folding asks for each child many times
        if key is None:
            key = self.op_keys[id(child)] = (child.kind, shape_key(numify(child.desc)))
        return key

    def _desc(self, child: Child) -> tuple:
        if child.kind == "scope":
            return ("scope", self.class_of_inst[id(child.instance)], ChildNums([child.instance], False))
        return numify(child.desc)

    def _template(self, inst: Instance) -> Any:
        """A nested structure of the instance's code with Num leaves for every number."""
        canon: dict[int, int] = {}
        for v in inst.inputs:
            canon.setdefault(v, len(canon))

        def ref(v):
            return canon.setdefault(v, len(canon))

        def var(v):
            return inst.var_names.get(v, "")

        body = []
        for item in inst.body:
            if isinstance(item, Stmt):
                child = inst.children[item.child] if item.child is not None else None
                extras = tuple((inst.children[c].label, "op", self._desc(inst.children[c])) for c in item.extra)
                body.append((
                    "stmt", item.kind, tuple(ref(v) for v in item.ins), tuple(ref(v) for v in item.outs),
                    tuple(None if n is None else Num(n) for n in item.nums), tuple(var(v) for v in item.outs),
                    None if child is None else (child.label, child.kind, self._desc(child)),
                    extras,
                ))
                continue
            loop: Loop = item
            carry = ref(loop.carry_in) if loop.carry_in is not None else None
            stmts = []
            for j, s in enumerate(loop.body):
                local_ins = []
                for v in s.ins:
                    hit = next(((jj, k) for jj, ss in enumerate(loop.body[:j]) for k, vv in enumerate(ss.outs)
                                if vv == v), None)
                    local_ins.append(("w",) + hit if hit else ("c",) if v == loop.carry_in else ("o", ref(v)))
                childs = None
                if s.child is not None:
                    kids = [inst.children[c] for c in loop.children[j]]
                    labels = [k.label for k in kids]
                    pat = label_pattern(labels)
                    desc = per_iteration([self._desc(k) for k in kids])
                    if kids[0].kind == "scope":
                        desc[2].lists = self._lists_in([k.instance for k in kids])
                    childs = (pat if pat else ("list",) + tuple(labels), kids[0].kind, desc)
                nums = per_iteration([tuple(None if n is None else Num(n) for n in t) for t in loop.nums[j]]) \
                    if s.nums else ()
                stmts.append(("lstmt", s.kind, tuple(local_ins), len(s.outs), childs, nums,
                              tuple(var(v) for v in s.outs)))
            out = ref(loop.out) if loop.out is not None else None
            body.append(("loop", Num(loop.count), carry, loop.carry_pos, out, tuple(stmts)))
        outs = tuple(ref(v) for v in inst.outputs)
        return ("class", len(inst.inputs), tuple(body), outs, inst.output_names)

    def _lists_in(self, insts: list[Instance]) -> bool:
        """Do the numbers of these instances of one class, every number nested in them
        included, vary other than affinely from one instance to the next?"""
        tpls = [self.tpl_of[id(i)] for i in insts]
        if any(affine_form([n.value for n in col]) is None for col in zip(*(num_leaves(t) for t in tpls))):
            return True
        for refs in zip(*(child_nums(t) for t in tpls)):
            # A loop of children has the numbers of its first iteration and its steps.
            for k in range(2 if refs[0].looped else 1):
                if self._lists_in([r.insts[k] for r in refs]):
                    return True
        return False

    def _resolve(self, t: Any) -> Any:
        """The template with each child's numbers resolved to its constructor's arguments."""
        if isinstance(t, ChildNums):
            args = []
            for inst in t.insts:
                cd = self.class_of_inst[id(inst)]
                vec = cd.vectors[cd.index[id(inst)]]
                args.append([vec[s] for s in cd.param_slot])
            if not t.looped:
                return tuple(Num(v) for v in args[0])
            out = []
            for col in zip(*args):
                form = affine_form(list(col))
                assert form is not None, "a loop whose numbers are not affine is unrolled"
                out.append(Affine(Num(form[0]), Num(form[1])))
            return tuple(out)
        if isinstance(t, tuple):
            return tuple(self._resolve(e) for e in t)
        return t

    def _finish(self, cd: ClassDef) -> None:
        if cd.mirror is not None:
            cd.params = list(cd.mirror.params)
            cd.param_slot = list(range(len(cd.params)))
            cd.index = {id(inst): k for k, inst in enumerate(cd.instances)}
            return
        cd.templates = [self._resolve(t) for t in cd.templates]
        for t in cd.templates:
            assign_slots(t)
        used = used_slots(cd.templates[0])
        vectors = cd.vectors = [list(slot_values(t)) for t in cd.templates]
        cd.index = {id(inst): k for k, inst in enumerate(cd.instances)}
        read_in_forward = forward_slots(cd.templates[0])
        params: dict[tuple, str] = {}
        # A parameter is also a plain attribute (self.n): it yields to every label of the
        # class (loop-made ones included), every class and helper, and nn.Module's own names.
        taken = Namespace(RESERVED_IN_MODEL, MODULE_ATTRS, self.class_names,
                          (c.label.split(".")[0] for i in cd.instances for c in i.children))
        inst0 = cd.instances[0]
        cd.slot_code = []
        cd.param_slot = []
        for s in range(len(vectors[0])):
            col = tuple(v[s] for v in vectors)
            if s not in used or len(set(map(repr, col))) == 1:
                cd.slot_code.append(Lit(col[0]))
                continue
            key = tuple(map(repr, col))  # not col: 3 and 3.0 (or 0.0 and -0.0) must not share a parameter
            if key not in params:
                pname = None
                for arg in inst0.args:
                    if all(_same(i.args.get(arg), v) for i, v in zip(cd.instances, col)):
                        pname = arg
                        break
                if pname is None and all(
                    i.inputs and _same(self.ir.nodes[i.inputs[0]]["shape"][0], v) for i, v in zip(cd.instances, col)
                ):
                    pname = "in_channels"
                pname = pyname(pname or slot_hint(cd.templates[0], s) or f"n{len(params)}", taken)
                params[key] = pname
                cd.params.append(pname)
                cd.param_slot.append(s)
            cd.slot_code.append(Name(params[key]))
            if s in read_in_forward:
                cd.forward_attrs.add(params[key])
