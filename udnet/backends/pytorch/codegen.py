"""Print the module hierarchy as PyTorch source: the file's docstring and imports, the
helpers it needs, one class per template (classes.py) printed by class_body.py, and
``ROOT``. Output is deterministic and formatted the way ``ruff format`` formats it.
"""

from __future__ import annotations

from udnet.backends.pytorch import runtime
from udnet.backends.pytorch.class_body import ClassBody
from udnet.backends.pytorch.classes import ClassDef, Classes
from udnet.backends.pytorch.expr import SELF, Attr, Lit, Name, Subscript, call, render
from udnet.backends.pytorch.helpers import reads_torch
from udnet.backends.pytorch.layout import def_lines, safe_text, wrap_doc
from udnet.backends.pytorch.mirror.render import MirrorPrinter
from udnet.backends.pytorch.mirror import mirrored
from udnet.backends.pytorch.mirror.program import python_names
from udnet.backends.pytorch.structure import build_instances
from udnet.elaborate.values import show
from udnet.ir.graph import IR
from udnet.ops import OPS


class Emitter:
    def __init__(self, ir: IR, spec_name: str, mirror: bool = True):
        self.ir = ir
        self.spec_name = spec_name
        # A mirrored class's parameters and locals must not hide a class of the file (a
        # parameter n and a block n): where one would, translate again with those names taken.
        taken: set[str] = set()
        while True:
            self.root = build_instances(ir)
            self.why_not_mirrored: dict[str, str] = {}
            mirrors = mirrored(ir, self.root, self.why_not_mirrored, taken) if mirror else {}
            self.classes = Classes(ir, self.root, mirrors)
            names = {cd.name for cd in self.classes.order}
            clash = {n for mc in mirrors.values() for n in python_names(mc)} & names
            if not clash - taken:
                break
            taken |= clash
        self.order: list[ClassDef] = self.classes.order

    def emit(self) -> str:
        helpers = self._helpers()
        bodies = {id(cd): ClassBody(cd) if cd.mirror is None else MirrorPrinter(cd.mirror, self._class_name)
                  for cd in self.order}
        classes = "".join("\n\n" + self._class_source(cd, bodies[id(cd)]) for cd in self.order)
        uses_torch = any(map(reads_torch, helpers)) or any("torch" in b.reads for b in bodies.values())
        root = self.classes.class_of_inst[id(self.root)].name
        return (self._header(uses_torch) + "".join("\n\n" + h.strip("\n") + "\n" for h in helpers) + classes
                + f"\n\nROOT = {render(Lit(root))}\n")

    # ---- printing ----

    def _header(self, import_torch: bool) -> str:
        ir = self.ir
        params = ", ".join(f"{k}={show(v, 200)}" for k, v in ir.graph["params"].items())
        lines = [
            f'"""{safe_text(ir.graph["network"])}, compiled by udnet from {safe_text(self.spec_name)}.',
            "",
            f"Parameters: {safe_text(params)}.",
            f"Input: [N, {', '.join(map(str, ir.nodes[ir.input_node]['shape']))}] -> {_outputs_doc(ir)}; "
            f"{ir.param_count():,} parameters.",
            "Standalone: this file needs only torch.",
            '"""',
            "",
            *(["import torch"] if import_torch else []),
            "from torch import nn",
            "",
        ]
        out = []
        for line in lines:
            out.extend(wrap_doc(line))
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

    def _class_name(self, block: str) -> str:
        return self.classes.mirror_cds[block].name

    def _class_source(self, cd: ClassDef, p: ClassBody) -> str:
        if cd.mirror is not None:
            lines = [f"class {cd.name}(nn.Module):", *self._class_doc(cd), ""] + p.methods()
            return "\n".join(lines) + "\n"
        tpl = cd.templates[0]
        inst = cd.instances[0]
        init = p.init_lines(tpl)
        fwd = p.forward_lines(tpl, inst)
        if inst.kind == "network" and "join" in {d["op"] for _, d in self.ir.nodes(data=True)}:
            fwd = self._drop_path_prologue(p) + fwd
        lines = [f"class {cd.name}(nn.Module):", *self._class_doc(cd), ""]
        lines += def_lines("    ", "__init__", ["self"] + cd.params)
        lines.append("        super().__init__()")
        for a in sorted(cd.forward_attrs):
            lines.append(f"        self.{a} = {a}")
        lines += ["        " + ln if ln else "" for ln in init]
        lines.append("")
        lines += def_lines("    ", "forward", ["self"] + p.input_names)
        lines += ["        " + ln if ln else "" for ln in fwd]
        return "\n".join(lines) + "\n"

    def _drop_path_prologue(self, p: ClassBody) -> list[str]:
        joins = [d for _, d in self.ir.nodes(data=True) if d["op"] == "join"]
        drop_global = max(d["attrs"]["drop_global"] for d in joins)
        if drop_global == 0:
            return []
        from udnet.ir.analysis import join_columns

        num = max(max(c) for c in join_columns(self.ir).values())
        x = Name("x")
        batch, device = Subscript(Attr(x, "shape"), (Lit(0),)), Attr(x, "device")
        return p.statement("", call("set_drop_path_columns", SELF, batch, Lit(drop_global), Lit(num), device))

    def _class_doc(self, cd: ClassDef) -> list[str]:
        """The class docstring's lines: the spec's comment above the block or network, as
        written, or else what the class is."""
        if cd.mirror is not None:
            kind, name, uses = "block", cd.mirror.block, len(cd.instances)
        else:
            kind, name, uses = cd.instances[0].kind, cd.instances[0].name, len(cd.instances)
        doc = self.ir.graph.get("docs", {}).get(name, "") if kind != "group" else ""
        lines = [safe_text(line).rstrip() for line in doc.strip("\n").split("\n")] if doc.strip() else []
        if not lines:
            if kind == "network":
                what = f"The network {name}."
            elif kind == "block":
                what = f"Block {name}" + (f", used {uses} times." if uses > 1 else ".")
            else:
                what = f"The group '{name}'."
            lines = [safe_text(what)]
        if len(lines) == 1:
            return [f'    """{lines[0]}"""']
        return [f'    """{lines[0]}'] + [f"    {line}" if line else "" for line in lines[1:]] + ['    """']


def _outputs_doc(ir: IR) -> str:
    def dims(n: int) -> str:
        return f"[N, {', '.join(map(str, ir.nodes[n]['shape']))}]"

    if not ir.named_outputs():
        return f"output: {dims(ir.output_node)}"
    return "outputs: " + ", ".join(f"{safe_text(name)} {dims(n)}" for name, n in ir.outputs())


def emit_module(ir: IR, spec_name: str = "<spec>", mirror: bool = True) -> str:
    """PyTorch source for the IR: a standalone module that imports torch only. ``mirror``
    False prints every block by the instance path (the tests compare the two)."""
    return Emitter(ir, spec_name, mirror).emit()
