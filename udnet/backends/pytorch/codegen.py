"""Print the module hierarchy as PyTorch source.

Instances of one block whose structure is equal up to numbers share a class; the
numbers that differ become constructor parameters (named after the block's own
arguments where they match), the rest stay literals. Output is deterministic and
formatted the way ``ruff format`` formats it.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from udnet.backends.pytorch import runtime
from udnet.backends.pytorch.containers import Containers
from udnet.backends.pytorch.names import Namespace
from udnet.backends.pytorch.structure import (
    Child,
    Instance,
    Loop,
    Stmt,
    build_instances,
    fold_loops,
    label_pattern,
)
from udnet.elaborate.values import show
from udnet.ir.graph import IR
from udnet.ops import CONNECTIONS, OPS
from udnet.reserved import MODULE_ATTRS, RESERVED_IN_MODEL

LINE = 88
#: Statements are printed relative to a method body, which sits 8 columns in.
BODY_WIDTH = LINE - 8
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = RESERVED_IN_MODEL


class Num:
    """A number in a template: equal structure, possibly different value per instance."""

    __slots__ = ("value", "slot")

    def __init__(self, value):
        self.value = value
        self.slot = -1


class ChildNums:
    """The numbers of a scope child (one instance, or one per loop iteration): resolved
    when the child's class is finished, to its constructor's arguments only. Copying
    every number nested in the child instead would make each class as big as its
    subtree, and emitting quadratic in the depth of the module tree."""

    __slots__ = ("insts", "looped", "lists")

    def __init__(self, insts: list, looped: bool, lists: bool = False):
        self.insts = insts
        self.looped = looped
        self.lists = lists  # across the iterations, some number is not affine


@dataclass
class Affine:
    """Per-iteration numbers ``a + b * i`` (or an explicit list when not affine)."""

    a: Num | None
    b: Num | None
    values: list[Num] | None = None


@dataclass(eq=False)
class ClassDef:
    name: str
    instances: list[Instance]
    templates: list[Any]
    params: list[str] = field(default_factory=list)
    slot_code: list[str] = field(default_factory=list)  # per slot: literal or parameter name
    forward_attrs: set[str] = field(default_factory=set)
    param_slot: list[int] = field(default_factory=list)  # first slot of each parameter
    vectors: list[list] = field(default_factory=list)  # per instance: the value of each slot
    index: dict[int, int] = field(default_factory=dict)  # id(instance) -> its position


def _pyname(text: str, taken: Namespace | None = None) -> str:
    if text.startswith("__"):  # inside a class Python mangles __x, and __class__ is super()'s cell
        text = "_" + text.lstrip("_")
    name = text if _IDENT.fullmatch(text) and text not in _RESERVED else f"{text}_"
    if not _IDENT.fullmatch(name):  # ASCII only: Python folds unicode names (NFKC), so they could collide
        name = "v_" + re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if taken is None else taken.fresh(name)


def _lit(v: Any) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, tuple):
        return "(" + ", ".join(_lit(e) for e in v) + ("," if len(v) == 1 else "") + ")"
    raise TypeError(type(v))


def _safe_text(s: str) -> str:
    """Text from a spec inside a docstring: no quotes, backslashes or line breaks survive."""
    return s.encode("unicode_escape").decode("ascii").replace('"', "'")


class Emitter:
    def __init__(self, ir: IR, spec_name: str):
        self.ir = ir
        self.spec_name = spec_name
        self.root = build_instances(ir)
        self.classes: dict[tuple, ClassDef] = {}
        self.order: list[ClassDef] = []
        self.class_of_inst: dict[int, ClassDef] = {}
        self.class_names = Namespace()
        self.variants: dict[tuple, int] = {}
        self.op_keys: dict[int, tuple] = {}  # id(child) -> key; the children live as long as self
        self.tpl_of: dict[int, Any] = {}  # id(instance) -> its template (children unresolved)

    # ---- phase 1: templates and classes, innermost first ----

    def _collect(self, inst: Instance) -> None:
        for c in inst.children:
            if c.instance is not None:
                self._collect(c.instance)
        fold_loops(inst, self._child_key)
        tpl = self._template(inst)
        # A loop over explicit per-iteration lists reads worse than the unrolled code.
        listy = [k for k, item in enumerate(tpl[2]) if item[0] == "loop" and _has_lists(item)]
        if listy:
            body = []
            for k, item in enumerate(inst.body):
                body.extend(item.stmts if k in listy else [item])
            inst.body = body
            tpl = self._template(inst)
        key = (inst.kind, inst.name, _shape_key(tpl))
        cd = self.classes.get(key)
        if cd is None:
            n = self.variants[(inst.kind, inst.name)] = self.variants.get((inst.kind, inst.name), 0) + 1
            base = inst.name if inst.kind != "group" else _camel(inst.name)
            cd = ClassDef(self._class_name(base if n == 1 else f"{base}{n}"), [], [])
            self.classes[key] = cd
            self.order.append(cd)
        cd.instances.append(inst)
        cd.templates.append(tpl)
        self.class_of_inst[id(inst)] = cd
        self.tpl_of[id(inst)] = tpl

    def _child_key(self, child: Child) -> tuple:
        if child.kind == "scope":
            return ("scope", id(self.class_of_inst[id(child.instance)]))
        key = self.op_keys.get(id(child))  # loop folding asks for each child many times
        if key is None:
            key = self.op_keys[id(child)] = (child.kind, _shape_key(_numify(child.desc)))
        return key

    def _desc(self, child: Child) -> tuple:
        if child.kind == "scope":
            return ("scope", self.class_of_inst[id(child.instance)], ChildNums([child.instance], False))
        return _numify(child.desc)

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
                    desc = _per_iteration([self._desc(k) for k in kids])
                    if kids[0].kind == "scope":
                        desc[2].lists = self._lists_in([k.instance for k in kids])
                    childs = (pat if pat else ("list",) + tuple(labels), kids[0].kind, desc)
                nums = _per_iteration([tuple(None if n is None else Num(n) for n in t) for t in loop.nums[j]]) \
                    if s.nums else ()
                stmts.append(("lstmt", s.kind, tuple(local_ins), len(s.outs), childs, nums,
                              tuple(var(v) for v in s.outs)))
            out = ref(loop.out) if loop.out is not None else None
            body.append(("loop", Num(loop.count), carry, loop.carry_pos, out, tuple(stmts)))
        outs = tuple(ref(v) for v in inst.outputs)
        return ("class", len(inst.inputs), tuple(body), outs, inst.output_names)

    # ---- phase 2: constructor parameters, innermost first ----

    def _lists_in(self, insts: list[Instance]) -> bool:
        """Do the numbers of these instances of one class, every number nested in them
        included, vary other than affinely from one instance to the next?"""
        tpls = [self.tpl_of[id(i)] for i in insts]
        if any(_form([n.value for n in col]) is None for col in zip(*(_walk(t) for t in tpls))):
            return True
        for refs in zip(*(_refs(t) for t in tpls)):
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
                form = _form(list(col))
                assert form is not None, "a loop whose numbers are not affine is unrolled"
                out.append(Affine(Num(form[0]), Num(form[1])))
            return tuple(out)
        if isinstance(t, tuple):
            return tuple(self._resolve(e) for e in t)
        return t

    def _finish_class(self, cd: ClassDef) -> None:
        cd.templates = [self._resolve(t) for t in cd.templates]
        for t in cd.templates:
            _assign_slots(t)
        used = _used_slots(cd.templates[0])
        vectors = cd.vectors = [list(_slot_values(t)) for t in cd.templates]
        cd.index = {id(inst): k for k, inst in enumerate(cd.instances)}
        forward_slots = _forward_slots(cd.templates[0])
        params: dict[tuple, str] = {}
        # A parameter is also a plain attribute (self.n): it yields to every label of the
        # class (loop-made ones included), every class and helper, and nn.Module's own names.
        taken = Namespace(_RESERVED, MODULE_ATTRS, self.class_names,
                          (c.label.split(".")[0] for i in cd.instances for c in i.children))
        inst0 = cd.instances[0]
        cd.slot_code = []
        cd.param_slot = []
        for s in range(len(vectors[0])):
            col = tuple(v[s] for v in vectors)
            if s not in used or len(set(map(repr, col))) == 1:
                cd.slot_code.append(_lit(col[0]))
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
                pname = _pyname(pname or _slot_hint(cd.templates[0], s) or f"n{len(params)}", taken)
                params[key] = pname
                cd.params.append(pname)
                cd.param_slot.append(s)
            cd.slot_code.append(params[key])
            if s in forward_slots:
                cd.forward_attrs.add(params[key])

    def _name_variants(self) -> None:
        """Classes of one block that differ in structure are named by the arguments that
        tell them apart (FractalC3, DualPathProject), else numbered."""
        groups: dict[tuple, list[ClassDef]] = {}
        for cd in self.order:
            inst = cd.instances[0]
            groups.setdefault((inst.kind, inst.name), []).append(cd)
        self.class_names = Namespace()
        for (kind, base), cds in groups.items():
            base = base if kind != "group" else _camel(base)
            if len(cds) == 1:
                cds[0].name = self._class_name(base)
                continue
            suffixes = _distinguishing_suffixes(cds)
            for n, cd in enumerate(cds, 1):
                suffix = suffixes[n - 1] if suffixes else (str(n) if n > 1 else "")
                cd.name = self._class_name(base + suffix)

    def _class_name(self, base: str) -> str:
        return _pyname(base, self.class_names)

    # ---- entry ----

    def emit(self) -> str:
        self._collect(self.root)
        self._name_variants()
        for cd in self.order:
            self._finish_class(cd)
        helpers = "".join("\n\n" + h.strip("\n") + "\n" for h in self._helpers())
        classes = "".join("\n\n" + self._class_source(cd) for cd in self.order)
        root = self.class_of_inst[id(self.root)].name
        header = self._header()
        if "torch." not in helpers + classes:
            header = header.replace("import torch\n", "")
        return header + helpers + classes + f"\n\nROOT = {_lit(root)}\n"

    # ---- printing ----

    def _header(self) -> str:
        ir = self.ir
        params = ", ".join(f"{k}={show(v, 200)}" for k, v in ir.graph["params"].items())
        lines = [
            f'"""{_safe_text(ir.graph["network"])}, compiled by udnet from {_safe_text(self.spec_name)}.',
            "",
            f"Parameters: {_safe_text(params)}.",
            f"Input: [N, {', '.join(map(str, ir.nodes[ir.input_node]['shape']))}] -> {_outputs_doc(ir)}; "
            f"{ir.param_count():,} parameters.",
            "Standalone: this file needs only torch.",
            '"""',
            "",
            "import torch",
            "from torch import nn",
            "",
        ]
        out = []
        for line in lines:
            out.extend(_wrap_doc(line))
        return "\n".join(out)

    def _helpers(self) -> list[str]:
        ops = {d["op"] for _, d in self.ir.nodes(data=True)}
        parts: list[str] = []
        for name, spec in OPS.items():  # in the table's order, each helper once
            if name in ops:
                parts.extend(h for h in spec.torch.helpers if h not in parts)
        if "join" in ops:
            parts.append(runtime.JOIN)
        if self.ir.graph.get("buffers"):
            parts.append(runtime.CONCAT_BUFFER)
        return parts

    def _class_source(self, cd: ClassDef) -> str:
        tpl = cd.templates[0]
        inst = cd.instances[0]
        p = _Printer(cd.slot_code, cd)
        init = p.init_lines(tpl)
        fwd = p.forward_lines(tpl, inst)
        if inst.kind == "network" and "join" in {d["op"] for _, d in self.ir.nodes(data=True)}:
            fwd = self._drop_path_prologue() + fwd
        lines = [f"class {cd.name}(nn.Module):", f"    {self._class_doc(cd)}", ""]
        lines += _fmt_def("    ", "__init__", ["self"] + cd.params)
        lines.append("        super().__init__()")
        for a in sorted(cd.forward_attrs):
            lines.append(f"        self.{a} = {a}")
        lines += ["        " + ln if ln else "" for ln in init]
        lines.append("")
        lines += _fmt_def("    ", "forward", ["self"] + p.input_names)
        lines += ["        " + ln if ln else "" for ln in fwd]
        return "\n".join(lines) + "\n"

    def _drop_path_prologue(self) -> list[str]:
        joins = [d for _, d in self.ir.nodes(data=True) if d["op"] == "join"]
        drop_global = max(d["attrs"]["drop_global"] for d in joins)
        if drop_global == 0:
            return []
        from udnet.ir.analysis import join_columns

        num = max(max(c) for c in join_columns(self.ir).values())
        return fmt_call("", "set_drop_path_columns", ["self", "x.shape[0]", repr(drop_global), str(num), "x.device"])

    def _class_doc(self, cd: ClassDef) -> str:
        inst = cd.instances[0]
        if inst.kind == "network":
            what = f"The network {inst.name}."
        elif inst.kind == "block":
            what = f"Block {inst.name}" + (f", used {len(cd.instances)} times." if len(cd.instances) > 1 else ".")
        else:
            what = f"The group '{inst.name}'."
        return f'"""{_safe_text(what)}"""'


def _outputs_doc(ir: IR) -> str:
    def dims(n: int) -> str:
        return f"[N, {', '.join(map(str, ir.nodes[n]['shape']))}]"

    if not ir.named_outputs():
        return f"output: {dims(ir.output_node)}"
    return "outputs: " + ", ".join(f"{_safe_text(name)} {dims(n)}" for name, n in ir.outputs())


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)  # 0.0 is not -0.0, [1] is not [true]


def _camel(label: str) -> str:
    parts = re.split(r"_+", label)
    name = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return name if name and not name[0].isdigit() else f"Group{name}"


def _numify(desc: tuple) -> tuple:
    out = []
    for v in desc:
        if isinstance(v, bool) or isinstance(v, str) or v is None:
            out.append(v)
        elif isinstance(v, (int, float)):
            out.append(Num(v))
        elif isinstance(v, tuple):
            out.append(_numify(v))
        else:
            out.append(v)
    return tuple(out)


def _per_iteration(descs: list[tuple]) -> tuple:
    """Merge per-iteration descriptions: every number position becomes an Affine."""
    first = descs[0]
    out = []
    for k, v in enumerate(first):
        column = [d[k] for d in descs]
        if isinstance(v, ChildNums):
            out.append(ChildNums([i for c in column for i in c.insts], True))
            continue
        if isinstance(v, Num):
            vals = [c.value for c in column]
            if all(isinstance(x, int) and not isinstance(x, bool) for x in vals):
                step = vals[1] - vals[0] if len(vals) > 1 else 0
                if all(b - a == step for a, b in zip(vals, vals[1:])):
                    out.append(Affine(Num(vals[0]), Num(step)))
                    continue
            if all(x == vals[0] for x in vals):
                out.append(Affine(Num(vals[0]), None))
                continue
            out.append(Affine(None, None, [Num(x) for x in vals]))
        elif isinstance(v, tuple):
            if all(isinstance(c, tuple) and len(c) == len(v) for c in column):
                out.append(_per_iteration(column))
            else:
                out.append(("mismatch",) + tuple(repr(c) for c in column))
        else:
            out.append(v if all(c == v for c in column) else ("mismatch",) + tuple(repr(c) for c in column))
    return tuple(out)


def _distinguishing_suffixes(cds: list[ClassDef]) -> list[str] | None:
    """Per class, a name suffix from the block arguments constant within it that tell
    the classes apart; None when no such arguments exist."""
    args = list(cds[0].instances[0].args)
    chosen: list[str] = []
    memo: dict[int, str] = {}

    def rep(v: Any) -> str:  # instances share big argument values; print each once
        if id(v) not in memo:
            memo[id(v)] = repr(v)
        return memo[id(v)]

    for arg in args:
        values = []
        for cd in cds:
            vals = {rep(i.args.get(arg)) for i in cd.instances}
            if len(vals) != 1:
                break
            values.append(cd.instances[0].args.get(arg))
        else:
            if len({rep(v) for v in values}) > 1:
                chosen.append(arg)
                keys = [tuple(rep(cd.instances[0].args.get(a)) for a in chosen) for cd in cds]
                if len(set(keys)) == len(cds):
                    break
    keys = [tuple(rep(cd.instances[0].args.get(a)) for a in chosen) for cd in cds]
    if not chosen or len(set(keys)) != len(cds):
        return None
    out = []
    for cd in cds:
        parts = []
        for a in chosen:
            v = cd.instances[0].args.get(a)
            cap = _camel(a) if not a[:1].isupper() else a
            if isinstance(v, bool):
                parts.append(cap if v else "")
            elif isinstance(v, int):
                parts.append(f"{cap}{v}" if v >= 0 else f"{cap}Minus{-v}")
            elif isinstance(v, str) and len(v) <= 32 and re.fullmatch(r"[A-Za-z0-9_]+", v):
                parts.append(_camel(v))
            else:
                return None
        out.append("".join(parts))
    return out if len(set(out)) == len(out) else None


def _form(vals: list) -> tuple | None:
    """Numbers of successive iterations as (first, step): affine integers or equal values."""
    if all(isinstance(x, int) and not isinstance(x, bool) for x in vals):
        step = vals[1] - vals[0] if len(vals) > 1 else 0
        if all(b - a == step for a, b in zip(vals, vals[1:])):
            return vals[0], step
    if all(x == vals[0] for x in vals):
        return vals[0], 0
    return None


def _refs(t: Any):
    """Yield the ChildNums leaves in a fixed order."""
    if isinstance(t, ChildNums):
        yield t
    elif isinstance(t, (tuple, list)):
        for e in t:
            yield from _refs(e)


def _has_lists(t: Any) -> bool:
    if isinstance(t, ChildNums):
        return t.lists
    if isinstance(t, Affine):
        return t.values is not None
    if isinstance(t, (tuple, list)):
        return any(_has_lists(e) for e in t)
    return False


def _walk(t: Any):
    """Yield Num leaves in a fixed order."""
    if isinstance(t, Num):
        yield t
    elif isinstance(t, Affine):
        if t.values is not None:
            yield from t.values
        else:
            if t.a is not None:
                yield t.a
            if t.b is not None:
                yield t.b
    elif isinstance(t, (tuple, list)):
        for e in t:
            yield from _walk(e)


def _shape_key(t: Any) -> Any:
    if isinstance(t, Num):
        return "#"
    if isinstance(t, ChildNums):
        return ("child", t.looped)
    if isinstance(t, Affine):
        if t.values is not None:
            return ("list", len(t.values))
        return ("aff", t.a is not None, t.b is not None)
    if isinstance(t, (tuple, list)):
        return tuple(_shape_key(e) for e in t)
    return t


def _assign_slots(t: Any) -> int:
    n = 0
    for num in _walk(t):
        num.slot = n
        n += 1
    return n


def _slot_values(t: Any):
    for num in _walk(t):
        yield num.value


def _used_slots(t: Any) -> set[int]:
    """Slots that appear in the printed code (a child's numbers count only where they
    are that child's constructor arguments)."""
    used: set[int] = set()

    def desc_slots(desc: tuple) -> None:
        used.update(n.slot for n in _walk(desc))  # a child scope's numbers are its arguments

    for item in t[2]:
        if item[0] == "stmt":
            used.update(n.slot for n in _walk(item[4]))
            if item[6] is not None:
                desc_slots(item[6][2])
            for extra in item[7]:
                desc_slots(extra[2])
        else:
            used.add(item[1].slot)
            for s in item[5]:
                used.update(n.slot for n in _walk(s[5]))
                if s[4] is not None:
                    desc_slots(s[4][2])
    return used


def _forward_slots(t: Any) -> set[int]:
    """Slots the forward pass reads: loop counts and slice bounds."""
    found: set[int] = set()
    for item in t[2]:
        if item[0] == "stmt":
            found.update(n.slot for n in _walk(item[4]))
        else:
            found.add(item[1].slot)
            for s in item[5]:
                found.update(n.slot for n in _walk(s[5]))
    return found


def _slot_hint(t: Any, slot: int) -> str | None:
    """A readable parameter name from where a slot is used: conv1_out, num_denselayer, ..."""
    for item in t[2]:
        if item[0] == "stmt" and any(n is not None and n.slot == slot for n in item[4]):
            return {"start": "out_channels", "append": "offset", "bn_relu_conv": "width"}.get(item[1])
        if item[0] == "loop":
            if item[1].slot == slot:
                pat = item[5][0][4][0] if item[5] and item[5][0][4] else None
                return f"num_{pat[0]}" if pat and pat[0] != "list" and pat[0] else "repeats"
            continue
        child = item[6]
        if child is None:
            continue
        label, _, desc = child
        if desc[0] == "scope":
            names = desc[1].params
            found = [names[k] if k < len(names) else f"arg{k}" for k, n in enumerate(_walk(desc)) if n.slot == slot]
        elif desc[0] == "op":  # each number is named after its constructor field
            found = [hint for hint, *_, value in desc[2] for n in _walk(value) if n.slot == slot]
        else:
            found = [f"arg{k}" for k, n in enumerate(_walk(desc)) if n.slot == slot]
        if found:
            return f"{label}_{found[0]}" if _IDENT.fullmatch(label) else found[0]
    return None


def _wrap_doc(line: str) -> list[str]:
    if len(line) <= LINE:
        return [line]
    out, cur = [], ""
    for word in line.split(" "):
        if cur and len(cur) + 1 + len(word) > LINE:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    out.append(cur)
    return out


def _fmt_def(indent: str, name: str, args: list[str]) -> list[str]:
    one = f"{indent}def {name}({', '.join(args)}):"
    if len(one) <= LINE:
        return [one]
    inner = f"{indent}    {', '.join(args)}"
    if len(inner) <= LINE:
        return [f"{indent}def {name}(", inner, f"{indent}):"]
    return [f"{indent}def {name}("] + [f"{indent}    {a}," for a in args] + [f"{indent}):"]


def fmt_call(prefix: str, fn: str, args: list[str], indent: str = "", reserve: int = 0) -> list[str]:
    """``prefix fn(args)`` as ruff format lays it out (``reserve``: room for a trailing comma)."""
    one = f"{indent}{prefix}{fn}({', '.join(args)})"
    if len(one) + reserve <= BODY_WIDTH:
        return [one]
    inner = f"{indent}    {', '.join(args)}"
    if len(inner) <= BODY_WIDTH:
        return [f"{indent}{prefix}{fn}(", inner, f"{indent})"]
    lines = [f"{indent}{prefix}{fn}("]
    for a in args:
        lines += _arg_lines(a, indent + "    ")
    return lines + [f"{indent})"]


def _arg_lines(arg: str, indent: str) -> list[str]:
    """One argument of an exploded call, itself exploded if it does not fit."""
    if len(indent) + len(arg) + 1 <= BODY_WIDTH:
        return [f"{indent}{arg},"]
    m = re.fullmatch(r"([\w.]+)\((.*)\)", arg)
    if not m:
        return [f"{indent}{arg},"]
    inner = fmt_call("", m.group(1), _split_args(m.group(2)), indent, reserve=1)
    inner[-1] += ","
    return inner


class _Printer:
    def __init__(self, code: list[str], cd: ClassDef):
        self.code = code
        self.cd = cd
        self.input_names: list[str] = []
        self.containers = Containers(cd.instances, _RESERVED)

    def num(self, n: Num) -> str:
        return self.code[n.slot]

    def _attr(self, label: str) -> str:
        return self.containers.access(label) if "." in label else _attr(label)

    def aff(self, a: Affine, var: str = "i") -> str:
        if a.values is not None:
            return f"({', '.join(self.num(v) for v in a.values)},)[{var}]"
        base = self.num(a.a)
        if a.b is None:
            return base
        step = self.num(a.b)
        if step == "0":
            return base
        if step.startswith("-"):
            term = var if step == "-1" else f"{step[1:]} * {var}"
            return f"-{term}" if base == "0" else f"{base} - {term}"
        term = var if step == "1" else f"{step} * {var}"
        return term if base == "0" else f"{base} + {term}"

    # -- constructors --

    def ctor(self, desc: tuple, v) -> tuple[str, list[str]]:
        """(callable, args) constructing a child; ``v`` renders a number-like leaf."""
        kind = desc[0]
        if kind == "scope":
            cd = desc[1]
            values = [v(n) for n in desc[2]]
            if len(values) == 1:
                return cd.name, values
            return cd.name, [f"{p}={val}" for p, val in zip(cd.params, values)]
        if kind == "join":
            _, _, dl, dg, cols = desc
            return "Join", [v(dl), v(dg), "(" + ", ".join(v(c) for c in cols) + ("," if len(cols) == 1 else "") + ")"]
        _, module, fields = desc
        texts = {hint: _pair(value, v) for hint, _, _, _, value in fields}
        args: list[str] = []
        for hint, kw, default, same_as, _ in fields:
            text = texts[hint]
            if text == default or (same_as is not None and text == texts[same_as]):
                continue
            args.append(text if kw is None else f"{kw}={text}")
        return module, args

    def init_lines(self, tpl) -> list[str]:
        lines: list[str] = []
        for item in tpl[2]:
            if item[0] == "stmt":
                child = item[6]
                if child is None:
                    continue
                for label, _, desc in (child,) + item[7]:
                    fn, args = self.ctor(desc, self._leaf)
                    if "." in label:
                        lines += self._make_containers(label)
                        put, name = self.containers.register(label)
                        lines += fmt_call(f"{put} = ", fn, args) if name is None else fmt_call(
                            "", put, [name, f"{fn}({', '.join(args)})"])
                    elif _plain_attr(label):
                        lines += fmt_call(f"self.{label} = ", fn, args)
                    else:
                        lines += fmt_call("", "self.add_module", [_lit(label), f"{fn}({', '.join(args)})"])
            else:
                count = self.num(item[1])
                body = []
                for s in item[5]:
                    if s[4] is None:
                        continue
                    pat, _, desc = s[4]
                    fn, args = self.ctor(desc, lambda leaf: self._iter_leaf(leaf))
                    put, name = ("self.add_module", self._label_expr(pat))
                    if pat[0] != "list" and "." in pat[0]:
                        lines += self._make_containers(pat[0])
                        put, name = self.containers.loop_register(pat[0], _label_index(pat), pat[3])
                    body += fmt_call("", put, [name, f"{fn}({', '.join(args)})"], "    ")
                if body:
                    lines.append(f"for i in range({count}):")
                    lines += body
        return lines

    def _make_containers(self, label: str) -> list[str]:
        return [line for prefix, fn, args in self.containers.make_calls(label) for line in fmt_call(prefix, fn, args)]

    def _leaf(self, leaf) -> str:
        if isinstance(leaf, Num):
            return self.num(leaf)
        if isinstance(leaf, bool) or isinstance(leaf, str):
            return _lit(leaf)
        raise TypeError(leaf)

    def _iter_leaf(self, leaf) -> str:
        if isinstance(leaf, Affine):
            return self.aff(leaf)
        return self._leaf(leaf)

    def _label_expr(self, pat) -> str:
        if pat[0] == "list":
            return f"{_lit(tuple(pat[1:]))}[i]"
        prefix, _, _, suffix = pat
        text = prefix.replace("{", "{{").replace("}", "}}")
        return f'f"{text}{{{_label_index(pat)}}}{suffix}"'

    # -- forward --

    def forward_lines(self, tpl, inst: Instance) -> list[str]:
        n_in = tpl[1]
        names: dict[int, str] = {}
        live: set[str] = set()
        last_use = _last_uses(tpl)
        taken = set(_RESERVED)
        for k in range(n_in):
            nm = "x" if k == 0 else f"x{k + 1}"
            names[k] = nm
            live.add(nm)
        self.input_names = [names[k] for k in range(n_in)]
        lines: list[str] = []
        counter = [0]

        def fresh(pref: str, dying: list[str]) -> str:
            if (pref and _IDENT.fullmatch(pref) and pref not in taken and not pref.startswith("__")
                    and (pref not in live or pref in dying)):
                return pref
            for d in dying:
                return d
            while True:
                counter[0] += 1
                cand = "y" if counter[0] == 1 else f"y{counter[0]}"
                if cand not in live:
                    return cand

        for idx, item in enumerate(tpl[2]):
            if item[0] == "stmt":
                _, kind, ins, outs, nums, vars_, child, extras = item
                args = [names[v] for v in ins]
                dying = [names[v] for v in ins if last_use.get(v) == idx]
                if kind == "start":
                    lines += _stmt_lines(f"{args[0]} = ", f"concat_start({args[0]}, {self._fwd(self.num(nums[0]))})")
                    continue
                if kind == "bn_relu_conv":
                    modules = ", ".join(self._attr(m) for m in (child[0], extras[0][0], extras[1][0]))
                    expr = f"bn_relu_conv1x1({args[0]}, {modules})"
                else:
                    expr = self._expr(kind, args, nums, child, self._attr)
                for d in dying:
                    live.discard(d)
                if not outs or all(last_use.get(o) is None for o in outs):
                    lines += _stmt_lines("", expr)
                    continue
                out_names = []
                for o, vn in zip(outs, vars_):
                    nm = fresh(vn, [d for d in dying if d not in out_names])
                    names[o] = nm
                    live.add(nm)
                    out_names.append(nm)
                lines += _stmt_lines(", ".join(out_names) + " = ", expr)
            else:
                lines += self._loop_lines(item, idx, names, live, last_use, fresh)
        outs = tpl[3]
        rets = [names[o] for o in outs]
        if tpl[4]:  # named outputs: a dict in the spec's order (torchvision's FPN: an OrderedDict)
            lines += ["return {"] + [f"    {_lit(name)}: {ret}," for name, ret in zip(tpl[4], rets)] + ["}"]
        else:
            lines += _stmt_lines("return ", ", ".join(rets) if outs else "x")
        return lines

    def _loop_lines(self, item, idx, names, live, last_use, fresh) -> list[str]:
        _, count, carry, carry_pos, out, stmts = item
        carry_name = names.get(carry) if carry is not None else None
        prologue: list[str] = []
        if carry_name is not None and carry_pos is not None and last_use.get(carry, -1) > idx:
            # The loop's input is read after the loop: carry a copy of the name, not the name.
            new = fresh(stmts[carry_pos[0]][6][carry_pos[1]], [])
            live.add(new)
            prologue = _stmt_lines(f"{new} = ", carry_name)
            carry_name = new
        local: dict[tuple, str] = {}
        body: list[str] = []
        for j, s in enumerate(stmts):
            _, kind, ins, n_out, childs, nums, vars_ = s
            args = []
            for r in ins:
                if r[0] == "w":
                    args.append(local[(r[1], r[2])])
                elif r[0] == "c":
                    args.append(carry_name)
                else:
                    args.append(names[r[1]])
            module = None
            if childs is not None:
                pat = childs[0]
                if pat[0] != "list" and "." in pat[0]:
                    module = self.containers.loop_access(pat[0], _label_index(pat), pat[3])
                else:
                    module = f"getattr(self, {self._label_expr(pat)})"
            expr = self._expr(kind, args, nums, (None, None, None) if childs else None,
                              lambda _, module=module: module, looping=True)
            outs = []
            for k in range(n_out):
                if carry_pos is not None and (j, k) == carry_pos and carry_name:
                    nm = carry_name
                else:
                    nm = fresh(vars_[k] if vars_[k] != carry_name else "", [])
                    live.add(nm)
                local[(j, k)] = nm
                outs.append(nm)
            # A call whose result nothing reads (a block that returns its input) is a bare statement.
            body += _stmt_lines(", ".join(outs) + " = " if outs else "", expr, "    ")
        if out is not None:
            names[out] = carry_name
        return prologue + [f"for i in range({self._count(count)}):"] + body

    def _count(self, n: Num) -> str:
        c = self.num(n)
        return c if c[0].isdigit() else f"self.{c}"

    def _expr(self, kind, args, nums, child, attr, looping=False) -> str:
        if kind == "call":
            return f"{attr(child[0] if child else None)}({', '.join(args)})"
        name, form = kind if isinstance(kind, tuple) else (kind, ())
        if name in CONNECTIONS and CONNECTIONS[name].forward is not None:
            return CONNECTIONS[name].forward(args, form)
        if kind == "append":
            lo, drop = (None if n is None else self._fwd(self.aff(n) if looping else self.num(n)) for n in nums)
            head = f", head={args[2]}" if len(args) > 2 else ""
            drop = f", drop={drop}" if drop is not None else ""
            return f"concat_append({args[0]}, {args[1]}, {lo}{head}{drop})"
        if kind == "slice":
            bounds = []
            for b in nums:
                if b is None:
                    bounds.append("")
                else:
                    bounds.append(self._fwd(self.aff(b) if looping else self.num(b)))
            simple = all(re.fullmatch(r"-?\w*", b) for b in bounds)
            sep = ":" if simple else " : "
            lo, hi = bounds
            text = f"{lo}{sep}{hi}".strip() if not simple else f"{lo}:{hi}"
            return f"{args[0]}[:, {text}]"
        raise AssertionError(kind)

    def _fwd(self, code: str) -> str:
        """A number's code as read in forward: constructor parameters live on self."""
        params = set(self.cd.params)
        return re.sub(r"\b[A-Za-z_]\w*\b", lambda m: f"self.{m.group(0)}" if m.group(0) in params else m.group(0), code)


_RESERVED_ATTRS = {"training", "forward"}


def _plain_attr(label: str) -> bool:
    """Whether ``self.<label>`` may be written: an identifier, not a keyword, and not
    ``__x`` (Python would mangle it to ``_Class__x`` and change the state_dict keys)."""
    return (
        bool(_IDENT.fullmatch(label))
        and not keyword.iskeyword(label)
        and not label.startswith("__")
        and label not in _RESERVED_ATTRS
    )


def _label_index(pat) -> str:
    """The index expression of a loop's label pattern (prefix, start, step, suffix)."""
    _, start, step, _ = pat
    if step == 1:
        return "i" if start == 0 else f"i + {start}"
    return f"{step} * i" if start == 0 else f"{step} * i + {start}"


def _attr(label: str) -> str:
    return f"self.{label}" if _plain_attr(label) and label not in _RESERVED else f"getattr(self, {_lit(label)})"


def _pair(val, v) -> str:
    if isinstance(val, tuple):
        return "(" + ", ".join(v(e) for e in val) + ")"
    return v(val)


def _last_uses(tpl) -> dict[int, int]:
    last: dict[int, int] = {}
    for idx, item in enumerate(tpl[2]):
        if item[0] == "stmt":
            for v in item[2]:
                last[v] = idx
        else:
            if item[2] is not None:
                last[item[2]] = idx
            for s in item[5]:
                for r in s[2]:
                    if r[0] == "o":
                        last[r[1]] = idx
    for v in tpl[3]:
        last[v] = len(tpl[2])
    return last


def _stmt_lines(prefix: str, expr: str, indent: str = "") -> list[str]:
    one = f"{indent}{prefix}{expr}"
    if len(one) <= BODY_WIDTH:
        return [one]
    m = re.fullmatch(r"(.*?)\((.*)\)", expr)
    if m and m.group(2).count("(") == m.group(2).count(")"):
        args = _split_args(m.group(2))
        return fmt_call(prefix, m.group(1), args, indent)
    return [one]


def _split_args(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def emit_module(ir: IR, spec_name: str = "<spec>") -> str:
    """PyTorch source for the IR: a standalone module that imports torch only."""
    return Emitter(ir, spec_name).emit()
