"""Module lists: the containers that dotted labels (``convs.0:``, ``features.1.conv.0:``)
make inside an emitted class.

A container holds labelled modules and runs nothing; the class around it calls them.
One whose entries are numbered 0, 1, ..., n - 1 in every instance of the class is an
``nn.ModuleList`` (read as ``self.convs[0]``), any other a plain ``nn.Module``. Either
way the state_dict keys are the dotted labels, as in torchvision's nn.Sequential and
nn.ModuleList layouts.
"""

from __future__ import annotations

import keyword
import re
from typing import Iterable

from udnet.backends.pytorch.expr import SELF, Attr, Call, Expr, FString, Lit, Subscript, call, self_attr

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Containers:
    """The containers of one class, from the labels of its instances' children."""

    def __init__(self, instances: list, reserved: Iterable[str]):
        self.reserved = reserved
        keys: dict[str, list[set[str]]] = {}
        for k, inst in enumerate(instances):
            for child in inst.children:
                parts = child.label.split(".")
                for depth in range(1, len(parts)):
                    path = ".".join(parts[:depth])
                    per = keys.setdefault(path, [set() for _ in instances])
                    per[k].add(parts[depth])
        self.lists = {p: all(_numbered(s) for s in per) for p, per in keys.items()}
        self.made: set[str] = set()

    def make(self, label: str) -> list[tuple[Expr | None, Call]]:
        """The statements (target or None, value) that make the containers a module at
        dotted ``label`` goes into, those not made yet: each is made where it is first
        used, so the state_dict keys come in the order the spec first uses them."""
        stmts: list[tuple[Expr | None, Call]] = []
        parts = label.split(".")
        for depth in range(1, len(parts)):
            path = ".".join(parts[:depth])
            if path in self.made:
                continue
            self.made.add(path)
            container = call("nn.ModuleList" if self.lists[path] else "nn.Module")
            outer, _, name = path.rpartition(".")
            if not outer and self._plain(name):
                stmts.append((self_attr(name), container))
            else:
                stmts.append((None, Call(Attr(self.access(outer, True), "add_module"), (Lit(name), container))))
        return stmts

    def access(self, label: str, building: bool = False) -> Expr:
        """The module at dotted ``label`` inside ``self``. While the lists are ``building``
        (in ``__init__``) an entry is read by name: a list indexes only once every entry
        before it is in."""
        if not label:  # the class itself: a container at the top level goes into self
            return SELF
        outer, _, name = label.rpartition(".")
        base = self.access(outer, building) if outer else SELF
        if outer and self.lists.get(outer) and not building:
            return Subscript(base, (Lit(int(name)),))
        return Attr(base, name) if self._plain(name) else call("getattr", base, Lit(name))

    def put(self, label: str, module: Expr) -> tuple[Expr | None, Expr]:
        """The statement (target or None, value) that puts ``module`` at dotted ``label``."""
        outer, _, name = label.rpartition(".")
        into = self.access(outer, True)
        if not self.lists.get(outer) and self._plain(name):
            return Attr(into, name), module
        return None, Call(Attr(into, "add_module"), (Lit(name), module))

    def loop_access(self, prefix: str, index: Expr, suffix: str) -> Expr:
        """The module labelled ``prefix{index}suffix``, where ``prefix`` names its container."""
        outer, _, lead = prefix.rpartition(".")
        if self.lists.get(outer) and not lead and not suffix:
            return Subscript(self.access(outer), (index,))
        return call("getattr", self.access(outer), FString((lead, index, suffix)))

    def loop_put(self, prefix: str, index: Expr, suffix: str, module: Expr) -> Call:
        """The call that puts ``module`` at ``prefix{index}suffix``, inside ``prefix``'s container."""
        outer, _, lead = prefix.rpartition(".")
        return Call(Attr(self.access(outer, True), "add_module"), (FString((lead, index, suffix)), module))

    def _plain(self, name: str) -> bool:
        return bool(_IDENT.fullmatch(name)) and not keyword.iskeyword(name) and not name.startswith("__") \
            and name not in self.reserved


def _numbered(keys: set[str]) -> bool:
    return all(k.isdigit() and str(int(k)) == k for k in keys) and {int(k) for k in keys} == set(range(len(keys)))
